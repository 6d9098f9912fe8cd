"""I-JEPA-style block masking on the feature grid: random rectangles of patches are dropped."""

from __future__ import annotations

import math

import numpy as np

BLOCK_SCALE = (0.05, 0.2)  # area of one block, as a fraction of the grid
BLOCK_ASPECT = (0.5, 2.0)  # height / width of one block
MAX_TRIES = 100


def block_mask(h: int, w: int, rng: np.random.Generator, ratio_min: float = 0.15,
               ratio_max: float = 0.4) -> np.ndarray:
    """Boolean (h, w) grid, True = masked, covering a fraction in [ratio_min, ratio_max].

    Rectangular blocks (random area and aspect) are added until a target ratio drawn uniformly
    from the range is reached; a block that would exceed ``ratio_max`` is rejected. If the
    blocks cannot reach ``ratio_min`` (tiny grids), single patches top it up. Grids of fewer
    than 4 patches are never masked (no ratio in the range is representable reliably).
    """
    mask = np.zeros((h, w), dtype=bool)
    n = h * w
    if n < 4 or ratio_max <= 0:
        return mask
    target = rng.uniform(ratio_min, ratio_max)
    lo, hi = math.ceil(ratio_min * n - 1e-9), math.floor(ratio_max * n + 1e-9)
    if lo > hi:  # no count of patches is inside the range on this grid
        return mask
    for _ in range(MAX_TRIES):
        if mask.sum() >= target * n:
            break
        area = rng.uniform(*BLOCK_SCALE) * n
        aspect = math.exp(rng.uniform(math.log(BLOCK_ASPECT[0]), math.log(BLOCK_ASPECT[1])))
        bh = int(min(h, max(1, round(math.sqrt(area * aspect)))))
        bw = int(min(w, max(1, round(math.sqrt(area / aspect)))))
        y, x = int(rng.integers(0, h - bh + 1)), int(rng.integers(0, w - bw + 1))
        trial = mask.copy()
        trial[y:y + bh, x:x + bw] = True
        if trial.sum() <= hi:
            mask = trial
    while mask.sum() < lo:  # top up with single patches
        free = np.flatnonzero(~mask.ravel())
        mask.ravel()[free[int(rng.integers(0, len(free)))]] = True
    return mask
