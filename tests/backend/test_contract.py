"""The contract shared by the backend and the plugin: one table of job kinds, typed both ways."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

from coredino.runners import RUNNERS
from coredino_contract import (
    JOB_KINDS,
    BatchParams,
    ClassifyOptions,
    ClassifyParams,
    ClassifyResult,
    FitParams,
    ModelSpec,
    ReclassifyParams,
    SimilarParams,
    SimilarResult,
    UserError,
    job_spec,
    parse_model,
    parse_result,
)
from coredino_contract.codec import from_json, to_json

CONTRACT = Path(__file__).resolve().parents[2] / "backend" / "coredino_contract"


def test_every_job_kind_has_a_runner():
    assert RUNNERS.keys() == JOB_KINDS.keys()


def test_contract_imports_only_the_standard_library():
    import sys
    for path in CONTRACT.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                assert top in sys.stdlib_module_names or top == "__future__", f"{path.name} imports {name}"


def test_model_strings_parse_once_for_every_door():
    assert parse_model("core-dino:x@22") == ModelSpec("core-dino", "x", "random", 22)
    assert parse_model("core-dino:n", layer=16).id == "core-dino:n@16"
    assert parse_model("core-dino:s@16", layer=22).layer == 16  # the text wins
    with pytest.raises(UserError, match="layer 17"):
        parse_model("core-dino:x@17")
    with pytest.raises(UserError, match="not a layer number"):
        parse_model("core-dino:x@top")
    with pytest.raises(UserError, match="scale 'q'"):
        parse_model("core-dino:q")


def test_specs_round_trip_through_json():
    cases = [
        ClassifyParams("a.tif", "b.tif", ClassifyOptions(bands=(3, 2, 1), embeddings=True)),
        BatchParams("in", "out", "*.tif", True, ClassifyOptions(device="cpu")),
        FitParams(["a.tif"], "c.npz", parse_model("core-dino:n@16"), k=12),
        SimilarParams("e.tif", "s.tif", [(1.5, -2.0)], [(3.0, 4.0)]),
        ReclassifyParams("c.tif", "n.tif", {"roofs": [1, 2]}),
    ]
    for params in cases:
        spec = json.loads(json.dumps(job_spec(params)))
        assert from_json(type(params), spec["params"]) == params
        assert JOB_KINDS[spec["kind"]].params is type(params)


def test_results_come_back_typed():
    result = ClassifyResult("c.tif", {12: 30, 7: 2}, 4, 1.5, "cpu", warnings=["w"])
    back = parse_result("classify", json.loads(json.dumps(to_json(result))) | {"added_later": 1})
    assert back == result and back.classes[12] == 30


@pytest.mark.parametrize("params, message", [
    (FitParams(["a.tif"], "c.npz", metric="manhattan"), "unknown metric"),
    (FitParams(["a.tif"], "c.npz", k=0), "--k must be at least 1"),
    (FitParams(["a.tif"], "c.npz", gsd=float("nan")), "--gsd must be a positive number"),
    (FitParams(["a.tif"], "c.npz", tile=6, border=3), "leaves no core"),
    (SimilarParams("e.tif", "s.tif", []), "at least one positive"),
    (SimilarParams("e.tif", "s.tif", [(float("nan"), 1.0)]), "two finite numbers"),
    (ReclassifyParams("c.tif", "n.tif"), "one of them"),
])
def test_one_rule_one_message(params, message):
    with pytest.raises(UserError, match=message):
        params.validate()


def test_similarity_area_is_counted_from_the_bin_at_or_above_the_threshold():
    histogram = [0] * 200
    histogram[150], histogram[151], histogram[199] = 5, 3, 2  # [0.50, 0.51), [0.51, 0.52), [0.99, 1]
    result = SimilarResult("s.tif", "e.tif", 10, 4.0, 0.5, 1.0, histogram)
    assert result.area_above(0.5) == 40.0 and result.area_above(0.505) == 20.0
    assert result.share_above(0.99) == 0.2
    assert result.threshold_for_share(0.5) == 0.51  # 2 + 3 cells from bin 151 up: half of them
