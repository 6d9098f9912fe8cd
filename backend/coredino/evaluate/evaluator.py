"""Run the rotating evaluation for candidate weights beside the baselines; write JSON + markdown.

Baselines: ``color`` (cell RGB mean and std), ``random`` (seeded random-init weights of the same
architecture, BatchNorm recalibrated on clean imagery), ``imagenet`` (the ImageNet MobileNetV2 of
the training extra). Results of each encoder are cached under ``OUT/cache`` by name, weights
checksum and settings, so adding one candidate does not recompute the others.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Optional, Sequence

from ..device import pick_device
from ..encoders.weights import resolve_weights
from ..errors import UserError
from .baseline import random_calibrated
from .context import MIN_AGREEMENT, context_summary
from .data import DUBAI_CROP
from .extractors import Extractor, color_extractor, coredino_extractor, imagenet_extractor
from .report import decision, markdown
from .rotation import TASKS, evaluate, headline, load_tasks

DEFAULT_DATA = "../shared/data/labelled"  # the development data set beside a checkout
DEFAULT_CALIB = str(Path(__file__).resolve().parents[3] / "resources" / "montevideo_0p25m_demo.tif")
BASELINES = ("color", "random", "imagenet")
METHOD = 2  # bump when a probe, metric or sample size changes: cached results are then recomputed


@dataclass
class EvalParams:
    weights: list[tuple[str, str]]  # (name, core-dino .pt) candidates
    baselines: Sequence[str] = BASELINES
    scale: str = "n"
    layer: int = 16
    data: str = DEFAULT_DATA
    tasks: Sequence[str] = TASKS
    seeds: int = 3
    k: int = 32
    calib: Sequence[str] = (DEFAULT_CALIB,)
    calib_batches: int = 16
    out: str = "out/eval"
    device: str = "cpu"
    candidate: Optional[str] = None  # the model the ship decision is about (default: the last weights)
    command: str = ""


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def extractors(p: EvalParams, log: Callable[[str], None]) -> list[Extractor]:
    device = pick_device(p.device)
    out = []
    for base in p.baselines:
        if base == "color":
            out.append(color_extractor())
        elif base == "imagenet":
            out.append(imagenet_extractor(device))
        elif base == "random":
            path = Path(p.out) / f"random-init-{p.scale}-bn-calibrated.pt"
            random_calibrated(p.scale, list(p.calib), path, gsd=0.3, crop=256, batches=p.calib_batches)
            log(f"random-init baseline: BatchNorm recalibrated on {', '.join(p.calib)} -> {path}")
            out.append(coredino_extractor("random init", p.scale, str(path), p.layer, device))
        else:
            raise UserError(f"unknown baseline {base!r}; use {', '.join(BASELINES)}")
    for name, weights in p.weights:
        out.append(coredino_extractor(name, p.scale, str(resolve_weights(weights)), p.layer, device))
    return out


def run_eval(p: EvalParams, log: Callable[[str], None] = print) -> dict:
    for _, weights in p.weights:
        resolve_weights(weights)  # a missing file is reported before any work
    out = Path(p.out)
    (out / "cache").mkdir(parents=True, exist_ok=True)
    tasks = load_tasks(p.data, p.tasks)
    settings = json.dumps({"tasks": list(p.tasks), "seeds": p.seeds, "k": p.k, "layer": p.layer,
                           "data": str(Path(p.data).resolve()), "calib": list(p.calib), "method": METHOD}, sort_keys=True)
    rows = []
    for ext in extractors(p, log):
        sha = ext.sha256 or hashlib.sha256(ext.kind.encode()).hexdigest()
        key = hashlib.sha256((settings + sha).encode()).hexdigest()[:16]
        result = {}
        for task in tasks:  # cached per task, so an interrupted run keeps what it finished
            cache = out / "cache" / f"{_slug(ext.name)}-{_slug(task.name)}-{key}.json"
            result[task.name], hit = _cached(cache, lambda: evaluate(ext, [task], p.seeds, p.k, log)[task.name])
            if hit:
                log(f"{ext.name}: {task.name}: cached ({cache.name})")
        context, _ = _cached(out / "cache" / f"{_slug(ext.name)}-context-{key}.json",
                             lambda: context_summary(ext, tasks))
        rows.append({"name": ext.name, "kind": ext.kind, "weights": ext.weights, "sha256": ext.sha256,
                     "tasks": result, "headline": headline(result), "context": context})
    candidate = p.candidate or (p.weights[-1][0] if p.weights else None)
    report = {"params": {**asdict(p),
                         "tasks": list(p.tasks), "dubai_crop": DUBAI_CROP,
                         "images": {t.name: [i.pair.image for i in t.items] for t in tasks}},
              "rows": rows, "candidate": candidate,
              "decision": decision(rows, candidate, [r["name"] for r in rows if r["name"] != candidate]),
              "context_gate": MIN_AGREEMENT}
    (out / "eval.json").write_text(json.dumps(report, indent=1))
    (out / "eval.md").write_text(markdown(report))
    return report


def _cached(path: Path, compute: Callable[[], dict]) -> tuple[dict, bool]:
    """The JSON at ``path`` if it exists (and True), else ``compute()`` written there (and False)."""
    if path.is_file():
        return json.loads(path.read_text()), True
    value = compute()
    path.write_text(json.dumps(value, indent=1))
    return value, False


def weights_arg(text: str) -> tuple[str, str]:
    """``NAME=PATH`` or ``PATH`` (named after the file)."""
    name, sep, path = text.partition("=")
    return (name, path) if sep else (Path(text).stem, text)
