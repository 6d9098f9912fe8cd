"""The fair baseline: seeded random-init weights of the same architecture, BatchNorm
recalibrated on the same clean imagery as the trained export (raw random BN statistics
would make random features look worse than they are)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import torch

from ..encoders.calibrate import recalibrate_batchnorm
from ..encoders.yolo import build_yolo_backbone
from ..errors import UserError
from ..train.checkpoint import export_backbone
from ..train.data import WindowSampler


def random_calibrated(scale: str, rasters: Sequence[str], out_path: str | os.PathLike, gsd: float = 0.3,
                      crop: int = 256, batches: int = 32, batch_size: int = 8, seed: int = 0,
                      init_seed: int = 0) -> Path:
    """Write seeded random YOLO11 layers 0-22 (the init a training run with ``--seed init_seed``
    starts from) with BatchNorm recalibrated on clean ``crop`` px windows of ``rasters``."""
    if not rasters:
        raise UserError("no rasters to calibrate the random baseline's BatchNorm on; pass --calib")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(init_seed)
        layers = build_yolo_backbone(scale)
    sampler = WindowSampler(list(rasters), gsd, crop)
    try:
        recalibrate_batchnorm(layers, sampler.clean_batches(batches, batch_size, seed))
    finally:
        sampler.close()
    return export_backbone(layers, out_path)
