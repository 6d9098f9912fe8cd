"""Context agreement: does a location get the same feature whatever tile it is seen in?

The engine encodes a raster in overlapping tiles and keeps each tile's core. An encoder with
global operations (YOLO11's attention block, layer 10) can let a tile's content shift every
feature in it; a codebook then splits the same ground into different clusters tile by tile, and
the map changes palette at tile borders. Here each image is encoded as two tiles offset by a
third of a tile, and the features of the cells both tiles hold (tile borders excluded, as in the
engine) are compared: the mean cosine, 1 for a purely local encoder such as plain colour.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from .extractors import CELL, Extractor
from .rotation import Task, summarise

TILE = 384  # pixels: the engine's default tile core (48 cells of 8 px)
SHIFT = 128  # pixels between the two tiles (a third of a tile), on both axes
BORDER = 4  # cells at each tile edge left out (their context is cut off in either tile)
# the ship gate, on the lowest pair over the held-out building images: the ImageNet prior's lowest
# is 0.99, the bundled model's 0.93; the first distilled candidates (0.72, 0.49), whose demo maps
# change palette at tile borders, fail it
MIN_AGREEMENT = 0.9


@torch.no_grad()
def context_agreement(extractor: Extractor, rgb: np.ndarray) -> list[float]:
    """Mean cosine over the shared cells, one value per pair of tiles that fits in ``rgb`` (3, H, W)."""
    x = torch.from_numpy(rgb)[None]
    h, w = x.shape[-2:]
    s, n = SHIFT // CELL, TILE // CELL
    # the cells both tiles hold, in the first tile's and in the shifted tile's cell coordinates
    in_first, in_shifted = slice(s + BORDER, n - BORDER), slice(BORDER, n - s - BORDER)
    values = []
    for y in range(0, h - TILE - SHIFT + 1, TILE):
        for xx in range(0, w - TILE - SHIFT + 1, TILE):
            a = extractor.fn(x[..., y:y + TILE, xx:xx + TILE])[0, :, in_first, in_first]
            y2, x2 = y + SHIFT, xx + SHIFT
            b = extractor.fn(x[..., y2:y2 + TILE, x2:x2 + TILE])[0, :, in_shifted, in_shifted]
            values.append(float(F.cosine_similarity(a.float(), b.float(), dim=0).mean()))
    return values


def context_summary(extractor: Extractor, tasks: list[Task]) -> dict:
    """Context agreement over every image of ``tasks``: mean and spread over scenes
    (:func:`summarise`) and the lowest tile pair (``min``, what the ship gate reads)."""
    per_scene: dict[str, list[float]] = {}
    for task in tasks:
        for item in task.items:
            per_scene.setdefault(item.pair.scene, []).extend(context_agreement(extractor, item.rgb))
    lowest = min((v for values in per_scene.values() for v in values), default=float("nan"))
    return {**summarise(per_scene), "min": lowest}
