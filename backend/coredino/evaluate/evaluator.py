"""Run the probe and the cluster metrics for trained weights and the random-init baseline."""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Optional, Sequence

import torch

from ..codebook import Codebook
from ..device import autocast, pick_device
from ..encoders.base import ModelSpec
from ..encoders.registry import build_encoder
from ..encoders.weights import resolve_weights
from ..errors import UserError
from .baseline import calibration_of, random_calibrated
from .clusters import cluster_quality
from .data import DEFAULT_PATTERN, Labelled, find_pairs, load, split
from .probe import FeatureMap, run_probe

DEFAULT_DATA = "../shared/data/labelled/oam_osm_buildings"  # the development data set beside a checkout


@dataclass
class EvalParams:
    weights: str  # a core-dino .pt, or "random" (only the baseline)
    scale: str = "n"
    layer: int = 19
    data: str = DEFAULT_DATA
    pattern: str = DEFAULT_PATTERN
    train_scenes: Sequence[str] = ("kampala", "nairobi")
    test_scenes: Sequence[str] = ("kathmandu",)
    gsd: float = 0.3
    iters: int = 300
    seeds: int = 3
    lr: float = 3e-3
    k: int = 32
    codebook: Optional[str] = None
    baseline: bool = True
    calib: Optional[Sequence[str]] = None  # rasters for the baseline BN (default: from export.json)
    calib_batches: int = 32  # used when the weights have no export.json beside them
    out: str = "out/eval"
    device: str = "cpu"
    extra: dict = field(default_factory=dict)


@torch.no_grad()
def encode(encoder, images: list[Labelled]) -> list[FeatureMap]:
    device = next(encoder.parameters()).device
    maps = []
    for item in images:
        x = torch.from_numpy(item.rgb)[None].to(device)
        with autocast(device):
            f = encoder(x)[0].float().cpu()
        maps.append(FeatureMap(f, torch.from_numpy(item.label)))
    return maps


def evaluate_model(name: str, weights_path: str, p: EvalParams, train: list[Labelled],
                   test: list[Labelled], log: Callable[[str], None]) -> dict:
    device = pick_device(p.device)
    encoder = build_encoder(ModelSpec("core-dino", p.scale, weights_path, p.layer), device)
    t0 = time.perf_counter()
    tr, te = encode(encoder, train), encode(encoder, test)
    log(f"{name}: features of {len(tr)} + {len(te)} images in {time.perf_counter() - t0:.1f} s")
    row = {"model": name, "weights": weights_path, "weights_sha256": encoder.weights_sha256,
           "layer": p.layer, "patch": encoder.patch, "dim": encoder.dim}
    row["probe"] = run_probe(tr, te, p.iters, p.seeds, p.lr)
    row["clusters"] = cluster_quality(tr, te, encoder.patch, p.k)
    if p.codebook and name != "random-init":
        cb = Codebook.load(p.codebook)
        cb.check_matches(encoder.recipe())
        if cb.metric not in ("cosine", "l2"):
            raise UserError(f"{p.codebook}: unknown metric {cb.metric}")
        row["codebook"] = {"path": p.codebook, **cluster_quality(tr, te, encoder.patch,
                                                                 centroids=cb.centroids, metric=cb.metric)}
    log(f"{name}: probe IoU {row['probe']['iou']:.3f} +- {row['probe']['iou_std']:.3f}, "
        f"over-clustering acc {row['clusters']['accuracy']:.3f}, NMI {row['clusters']['nmi']:.3f}")
    return row


def run_eval(p: EvalParams, log: Callable[[str], None] = print) -> dict:
    if p.weights != "random":
        resolve_weights(p.weights)  # a missing file is reported before any work
    out = Path(p.out)
    out.mkdir(parents=True, exist_ok=True)
    pairs = find_pairs(p.data, p.pattern)
    train_pairs, test_pairs = split(pairs, p.train_scenes, p.test_scenes)
    if set(train_pairs) & set(test_pairs):
        log("coredino: warning: the train and test scenes overlap; the probe IoU is not held-out")
    train = [load(x, p.gsd) for x in train_pairs]
    test = [load(x, p.gsd) for x in test_pairs]
    rows = []
    if p.weights != "random":
        rows.append(evaluate_model("trained", p.weights, p, train, test, log))
    if p.baseline or p.weights == "random":
        calib = calibration_of(p.weights) or {}
        rasters = list(p.calib or calib.get("rasters") or [x.image for x in train_pairs])
        path = out / f"random-init-{p.scale}-bn-calibrated.pt"
        random_calibrated(p.scale, rasters, path, gsd=calib.get("gsd", p.gsd), crop=calib.get("crop", 256),
                          batches=calib.get("batches", p.calib_batches), batch_size=calib.get("batch_size", 8),
                          seed=calib.get("seed", 0))
        log(f"random-init baseline: BatchNorm recalibrated on {len(rasters)} rasters -> {path}")
        rows.append(evaluate_model("random-init", str(path), p, train, test, log))
        rows[-1]["calibration_rasters"] = rasters
    result = {"params": {k: v for k, v in asdict(p).items() if k != "extra"},
              "train_images": [x.image for x in train_pairs], "test_images": [x.image for x in test_pairs],
              "rows": rows}
    result["params"]["train_scenes"] = list(p.train_scenes)
    result["params"]["test_scenes"] = list(p.test_scenes)
    (out / "eval.json").write_text(json.dumps(result, indent=2))
    (out / "eval.md").write_text(markdown(result))
    return result


def markdown(result: dict) -> str:
    p = result["params"]
    lines = [f"Held-out building segmentation: train scenes {', '.join(p['train_scenes'])}, test scenes "
             f"{', '.join(p['test_scenes'])}; GSD {p['gsd']} m; core-dino:{p['scale']} layer {p['layer']}.",
             "",
             "| model | probe IoU (test) | probe IoU (train) | over-clustering acc (k) | majority baseline | NMI | cluster-map IoU |",
             "|---|---|---|---|---|---|---|"]
    for r in result["rows"]:
        pr, cl = r["probe"], r["clusters"]
        lines.append(f"| {r['model']} | {pr['iou']:.3f} ± {pr['iou_std']:.3f} | {pr['train_iou']:.3f} | "
                     f"{cl['accuracy']:.3f} ({cl['k']}) | {cl['majority_baseline']:.3f} | {cl['nmi']:.3f} | "
                     f"{cl['cluster_iou']:.3f} |")
        if "codebook" in r:
            cb = r["codebook"]
            lines.append(f"| {r['model']} + codebook {Path(cb['path']).name} | | | {cb['accuracy']:.3f} ({cb['k']}) | "
                         f"{cb['majority_baseline']:.3f} | {cb['nmi']:.3f} | {cb['cluster_iou']:.3f} |")
    lines += ["", f"Probe: 2-layer conv head (3x3 conv 64, BN, ReLU, 1x1 conv) on frozen, standardised "
              f"features, soft-IoU loss, {p['iters']} full-batch AdamW iterations, mean ± std over "
              f"{p['seeds']} seeds; IoU of class 1 (building) pooled over the test pixels, logits upsampled "
              f"bilinearly to the mask grid. Clusters: spherical K-means on the train scenes' patch features "
              f"(labels unused), each cluster mapped to its majority class on the train scenes, accuracy / "
              f"NMI / IoU of that map on the test scenes' patches (majority label per patch)."]
    return "\n".join(lines) + "\n"
