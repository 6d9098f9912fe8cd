"""`coredino eval`: metrics on known examples; the rotating evaluation end to end on real crops."""

import argparse
import json
import os
import shutil

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("YOLO_OFFLINE", "1")

import numpy as np
import pytest
import torch

from coredino.errors import UserError
from coredino.evaluate.clusters import nmi, overclustering_accuracy
from coredino.evaluate.commands import add_eval_parser
from coredino.evaluate.data import IGNORE, Pair, load, load_dubai
from coredino.evaluate.extractors import CELL, color_extractor, imagenet_extractor
from coredino.evaluate.probe import UNSCORED, Cells, cell_labels, conv_probe, linear_probe, scores
from coredino.evaluate.report import decision
from coredino.evaluate.rotation import load_tasks, summarise
from coredino.evaluate.similarity import click_auc

torch.set_num_threads(1)


# ----------------------------------------------------------------------------- metrics


def test_perfect_clustering_scores_one():
    labels = np.array([0, 0, 1, 1, 2, 2, 2, 0])
    ids = np.array([5, 5, 3, 3, 0, 0, 0, 5])  # a relabelling of the classes
    assert overclustering_accuracy(ids, labels, ids, labels, k=6) == 1.0
    assert nmi(ids, labels) == pytest.approx(1.0)


def test_overclustering_maps_clusters_on_one_split_and_scores_the_other():
    train_labels = np.array([0, 0, 0, 1, 1, 1, 0])
    train_ids = np.array([0, 1, 1, 2, 3, 3, 1])  # 4 pure clusters for 2 classes, class 0 majority
    test_ids = np.array([0, 1, 2, 3, 3, 7])  # cluster 7 never seen on train: overall majority
    test_labels = np.array([0, 0, 1, 1, 0, 0])
    acc = overclustering_accuracy(train_ids, train_labels, test_ids, test_labels, k=8, n_classes=2)
    assert acc == pytest.approx(5 / 6)  # predicted 0 0 1 1 1 0: only the 5th is wrong
    assert nmi(np.zeros(6, int), test_labels) == pytest.approx(0.0)  # one cluster: no information


def test_cell_labels_take_the_majority_and_skip_unlabelled_cells():
    label = np.zeros((4, 8), dtype=np.uint8)
    label[:, 4:] = 1
    label[:2, 4:6] = IGNORE  # right cell: 12 of 16 labelled, all building
    label[:, :4] = IGNORE
    label[0, 0] = 0  # left cell: 1 of 16 labelled
    assert cell_labels(label, 4, 2).tolist() == [[UNSCORED, 1]]


def test_scores_count_only_scored_cells():
    truth = Cells(torch.zeros(1, 2, 3), torch.tensor([[0, 1, 1], [UNSCORED, 0, 1]]))
    perfect = torch.tensor([[0, 1, 1], [1, 0, 1]])  # the unscored cell's prediction is ignored
    s = scores([perfect], [truth], 2)
    assert s["accuracy"] == 1.0 and s["iou"] == 1.0 and s["cells"] == 5
    s = scores([torch.ones(2, 3, dtype=torch.long)], [truth], 2)
    assert s["iou"] == pytest.approx(3 / 5) and s["accuracy"] == pytest.approx(3 / 5)


def test_spreads_are_over_folds_and_over_seeds():
    s = summarise({"a": [0.5, 0.7], "b": [0.1, 0.1]})
    assert s["mean"] == pytest.approx(0.35)  # mean of the fold means 0.6 and 0.1
    assert s["fold_std"] == pytest.approx(0.25) and s["seed_std"] == pytest.approx(0.05)


def test_decision_needs_a_margin_larger_than_the_spread():
    rows = [{"name": "new", "headline": {"mean": 0.60, "spread": 0.05}},
            {"name": "old", "headline": {"mean": 0.50, "spread": 0.03}},
            {"name": "close", "headline": {"mean": 0.58, "spread": 0.04}}]
    d = decision(rows, "new", ["old", "close"])
    assert d["old"]["wins"] and not d["close"]["wins"]


def test_decision_pairs_the_folds_when_it_has_them():
    def row(name, folds):  # one headline metric on three folds of very different difficulty
        values = list(folds.values())
        return {"name": name, "tasks": {"dubai": {"conv_accuracy": {"folds": {g: [v] for g, v in folds.items()}}}},
                "headline": {"mean": float(np.mean(values)), "spread": float(np.std(values))}}
    hard_easy = {"a": 0.3, "b": 0.6, "c": 0.9}
    new = row("new", {g: v + 0.05 for g, v in hard_easy.items()})  # better by 0.05 on every fold
    old = row("old", hard_easy)
    mixed = row("mixed", {"a": 0.25, "b": 0.75, "c": 0.85})  # better on one fold only
    d = decision([new, old, mixed], "new", ["old", "mixed"])
    # unpaired, a 0.05 gain is lost in the 0.24 spread between folds; paired, it is the same on every fold
    assert not d["old"]["unpaired_wins"] and d["old"]["wins"]
    assert d["old"]["paired_margin"] == pytest.approx(0.05) and d["old"]["folds_better"] == 3
    assert not d["mixed"]["wins"] and d["mixed"]["folds_better"] == 2


# ----------------------------------------------------------------------------- real data


@pytest.fixture(scope="module")
def kampala(data):
    return load(Pair("kampala", str(data / "kampala_patch1_0p30m_3857.tif"),
                     str(data / "kampala_patch1_0p30m_3857_buildings.tif")), 0.3)


@pytest.fixture(scope="module")
def kampala_cells(kampala):
    return Cells(color_extractor()(kampala.rgb), cell_labels(kampala.label, CELL, 2))


def test_color_cells_are_on_the_label_grid(kampala, kampala_cells):
    assert kampala_cells.features.shape == (6, kampala.label.shape[0] // CELL, kampala.label.shape[1] // CELL)
    assert kampala_cells.features.shape[1:] == kampala_cells.labels.shape
    assert set(kampala_cells.labels.unique().tolist()) <= {UNSCORED, 0, 1}


def test_imagenet_baseline_is_on_the_same_grid(kampala, kampala_cells):
    features = imagenet_extractor(torch.device("cpu"))(kampala.rgb)
    assert features.shape == (128, *kampala_cells.labels.shape) and torch.isfinite(features).all()


def test_probes_learn_buildings_from_color_on_real_imagery(kampala_cells):
    # fitted and scored on the same image: both probes must beat "everything is background"
    y = kampala_cells.labels[kampala_cells.labels != UNSCORED]
    majority = float((y == 0).float().mean())
    for probe in (linear_probe, conv_probe):
        s = scores(probe([kampala_cells], [kampala_cells], 2, 0), [kampala_cells], 2)
        assert s["accuracy"] > majority and s["iou"] > 0.2, (probe.__name__, s, majority)


def test_similarity_auc_is_one_for_features_that_are_the_label(kampala_cells):
    labels = kampala_cells.labels
    perfect = Cells(torch.stack([(labels == 1).float(), (labels == 0).float()]), labels)
    assert click_auc(perfect, np.random.default_rng(0)) == pytest.approx(1.0)
    auc = click_auc(kampala_cells, np.random.default_rng(0))
    assert 0.0 <= auc <= 1.0


def test_dubai_part_is_cropped_and_its_classes_shifted(data):
    item = load_dubai(Pair("dubai_tile1", str(data / "dubai_tile1_part001_image.jpg"),
                           str(data / "dubai_tile1_part001_mask_index.png")), crop=128)
    assert item.rgb.shape == (3, 128, 128) and item.label.shape == (128, 128)
    assert set(np.unique(item.label)) <= {0, 1, 2, 3, 4, IGNORE}  # mask 1..5 -> 0..4, 0 -> ignored
    assert 0.0 <= item.rgb.min() and item.rgb.max() <= 1.0


@pytest.fixture(scope="module")
def data_root(tmp_path_factory, data):
    """The layout of ../shared/data/labelled from the shipped crops: two 'cities', two Dubai tiles."""
    root = tmp_path_factory.mktemp("labelled")
    b, d = root / "oam_osm_buildings", root / "dubai_landcover"
    b.mkdir()
    d.mkdir()
    for city, stem in (("citya", "kampala_0p30m_3857"), ("cityb", "kampala_patch1_0p30m_3857")):
        (b / f"{city}_patch1_0p30m_image.tif").symlink_to(data / f"{stem}.tif")
        (b / f"{city}_patch1_0p30m_buildings_mask.tif").symlink_to(data / f"{stem}_buildings.tif")
    for tile in ("1", "2"):
        for suffix in ("image.jpg", "mask_index.png"):
            (d / f"dubai_tile{tile}_part001_{suffix}").symlink_to(data / f"dubai_tile{tile}_part001_{suffix}")
    return root


def test_tasks_rotate_over_scenes(data_root, tmp_path, data):
    tasks = load_tasks(str(data_root), ["buildings@0.30", "dubai"])
    assert [t.groups for t in tasks] == [["citya", "cityb"], ["dubai_tile1", "dubai_tile2"]]
    assert tasks[1].n_classes == 5
    with pytest.raises(UserError, match="unknown evaluation task"):
        load_tasks(str(data_root), ["roads"])
    one = tmp_path / "oam_osm_buildings"
    one.mkdir()
    (one / "citya_patch1_0p30m_image.tif").symlink_to(data / "kampala_0p30m_3857.tif")
    (one / "citya_patch1_0p30m_buildings_mask.tif").symlink_to(data / "kampala_0p30m_3857_buildings.tif")
    with pytest.raises(UserError, match="at least two scenes"):
        load_tasks(str(tmp_path), ["buildings@0.30"])


def test_cli_eval_writes_report_for_baselines_and_candidate(data_root, tmp_path, capsys):
    parser = argparse.ArgumentParser()
    add_eval_parser(parser.add_subparsers())
    random_weights = tmp_path / "w.pt"
    argv = ["eval", "--data", str(data_root), "--tasks", "buildings@0.30,dubai", "--seeds", "1",
            "--k", "4", "--baselines", "color,random", "--calib-batches", "1", "-o", str(tmp_path / "ev")]
    args = parser.parse_args(argv)
    assert args.run(args) == 0
    report = json.loads((tmp_path / "ev" / "eval.json").read_text())
    assert [r["name"] for r in report["rows"]] == ["colour only", "random init"]
    color = report["rows"][0]["tasks"]
    assert set(color["buildings@0.30"]["conv_iou"]["folds"]) == {"citya", "cityb"}
    assert set(color["dubai"]["linear_accuracy"]["folds"]) == {"dubai_tile1", "dubai_tile2"}
    assert "similarity_auc" in color["buildings@0.30"] and "similarity_auc" not in color["dubai"]
    assert "| colour only |" in (tmp_path / "ev" / "eval.md").read_text()
    # a candidate: the random export under a name; the baselines come from the cache
    shutil.copy(tmp_path / "ev" / "random-init-n-bn-calibrated.pt", random_weights)
    args = parser.parse_args(argv + ["--weights", f"cand={random_weights}"])
    capsys.readouterr()
    assert args.run(args) == 0
    assert capsys.readouterr().err.count("cached") == 4  # 2 baselines x 2 tasks
    report = json.loads((tmp_path / "ev" / "eval.json").read_text())
    assert report["candidate"] == "cand" and set(report["decision"]) == {"colour only", "random init"}
    cand, rand = report["rows"][2], report["rows"][1]
    assert cand["sha256"] == rand["sha256"] and cand["headline"] == rand["headline"]  # same weights, same numbers


def test_cli_eval_refuses_nothing_to_do(tmp_path):
    parser = argparse.ArgumentParser()
    add_eval_parser(parser.add_subparsers())
    args = parser.parse_args(["eval", "--baselines", "none", "-o", str(tmp_path)])
    with pytest.raises(UserError, match="nothing to evaluate"):
        args.run(args)


def test_context_agreement_is_one_for_local_features_and_drops_with_tile_context():
    from osgeo import gdal

    from coredino.evaluate.context import context_agreement
    from coredino.evaluate.extractors import Extractor, color_cells

    demo = os.path.join(os.path.dirname(__file__), "..", "..", "resources", "montevideo_0p25m_demo.tif")
    rgb = gdal.Open(demo).ReadAsArray(0, 0, 1024, 640)[:3].astype(np.float32) / 255
    local = context_agreement(color_extractor(), rgb)
    assert len(local) == 2 and min(local) > 0.9999  # two tile pairs fit; colour is purely local
    # the same cells plus a tile-wide term (what global attention can add) disagree across tiles
    tiled = Extractor("tile context", "color", lambda x: color_cells(x) + 0.5 * x.mean(dim=(-2, -1))[..., None, None]
                      .repeat(1, 2, 1, 1))
    assert max(context_agreement(tiled, rgb)) < min(local)
