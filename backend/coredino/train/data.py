"""Random training windows read from GeoTIFFs at the teacher GSD through warped VRTs.

Every window of a step is a pure function of ``(seed, rank, step)``, so a resumed run reads
exactly the windows an uninterrupted one would, and each torchrun rank reads its own stream.
"""

from __future__ import annotations

import glob
import os
from pathlib import Path
from typing import Iterable, Iterator, Optional, Sequence

import numpy as np
import torch

from ..errors import UserError
from ..raster import RasterSource, open_raster_source

RASTER_SUFFIXES = (".tif", ".tiff", ".vrt", ".jp2", ".img")
MAX_TRIES = 200


def find_rasters(paths: Sequence[str]) -> list[str]:
    """Files given, plus the rasters (by suffix, recursively) inside folders given."""
    found: list[str] = []
    for p in paths:
        if os.path.isdir(p):
            inside = sorted(f for f in glob.glob(os.path.join(p, "**", "*"), recursive=True)
                            if f.lower().endswith(RASTER_SUFFIXES) and os.path.isfile(f))
            if not inside:
                raise UserError(f"{p}: folder holds no raster ({', '.join(RASTER_SUFFIXES)})")
            found += inside
        elif os.path.isfile(p):
            found.append(p)
        else:
            raise UserError(f"{p}: no such file or folder")
    return found


def step_rng(seed: int, rank: int, step: int, stream: int = 0) -> np.random.Generator:
    """The random stream of one step of one rank (``stream`` separates independent uses)."""
    return np.random.default_rng([seed, rank, step, stream])


class WindowSampler:
    """Square windows of ``crop`` pixels at ``gsd`` with at least ``min_valid`` valid pixels."""

    def __init__(self, paths: Sequence[str], gsd: float, crop: int, min_valid: float = 0.9,
                 max_upsample: Optional[float] = None) -> None:
        """``max_upsample``: leave out rasters coarser than ``gsd`` times this, or smaller than a crop."""
        self.gsd, self.crop, self.min_valid = gsd, crop, min_valid
        self.sources: list[RasterSource] = []
        self.warnings: list[str] = []
        for path in find_rasters(paths):
            src = open_raster_source(path, gsd, pad_to=crop)
            if max_upsample and (src.source_gsd > gsd * max_upsample
                                 or min(src.grid.width, src.grid.height) < crop):
                src.close()
                continue
            self.sources.append(src)
            self.warnings += src.warnings
        if not self.sources:
            raise UserError(f"no raster of {', '.join(Path(p).name for p in paths)} fits {crop} px "
                            f"crops at {gsd} m without upsampling more than {max_upsample}x; drop "
                            f"that GSD or add finer rasters")
        self.paths = [s.path for s in self.sources]
        # windows are drawn from rasters in proportion to their area at the teacher GSD
        area = np.array([max(1, s.grid.width - crop + 1) * max(1, s.grid.height - crop + 1)
                         for s in self.sources], dtype=np.float64)
        self.weights = area / area.sum()

    def window(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, tuple]:
        """(RGB float32 (3, crop, crop) in [0, 1], valid (crop, crop), (raster index, x, y))."""
        for _ in range(MAX_TRIES):
            i = int(rng.choice(len(self.sources), p=self.weights))
            src = self.sources[i]
            x = int(rng.integers(0, max(1, src.grid.width - self.crop + 1)))
            y = int(rng.integers(0, max(1, src.grid.height - self.crop + 1)))
            rgb, valid = src.read(x, y, self.crop, self.crop)
            if valid.mean() >= self.min_valid:
                return rgb, valid, (i, x, y)
        raise UserError(f"no {self.crop} px window with {self.min_valid:.0%} valid pixels found in "
                        f"{MAX_TRIES} tries in {', '.join(Path(p).name for p in self.paths)}; "
                        f"use larger rasters, a smaller --crop, or fewer nodata collars")

    def batch(self, rng: np.random.Generator, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        """n windows: images (n, 3, crop, crop) and validity (n, crop, crop)."""
        rgb, valid = zip(*[self.window(rng)[:2] for _ in range(n)])
        return torch.from_numpy(np.stack(rgb)), torch.from_numpy(np.stack(valid))

    def clean_batches(self, n_batches: int, batch_size: int, seed: int) -> Iterator[torch.Tensor]:
        """Clean windows for BatchNorm recalibration (a fixed stream, separate from training)."""
        for b in range(n_batches):
            yield self.batch(step_rng(seed, 0, b, stream=7), batch_size)[0]

    def describe(self) -> list[dict]:
        return [{"path": str(Path(s.path).resolve()), "source_gsd": round(s.source_gsd, 4),
                 "width": s.grid.width, "height": s.grid.height} for s in self.sources]

    def close(self) -> None:
        for s in self.sources:
            s.close()


def to_device(batches: Iterable[torch.Tensor], device: torch.device) -> Iterator[torch.Tensor]:
    for b in batches:
        yield b.to(device)
