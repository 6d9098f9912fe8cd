"""Build the bundled default weights: YOLO11-n layers 0-22, seeded random init, BatchNorm
statistics calibrated on real aerial tiles. A stand-in until trained core-dino weights ship.

    .venv/bin/python tools/build_default_model.py OUT.pt RASTER [RASTER ...]
"""

from __future__ import annotations

import sys

import torch

from coredino.encoders.calibrate import recalibrate_batchnorm
from coredino.encoders.yolo import build_yolo_backbone
from coredino.raster import open_raster
from coredino.tiling import TileGrid

GSD, SIDE, BATCH = 0.25, 384, 8


def tiles(paths: list[str]):
    """Batches of fully valid 384 px tiles at 0.25 m, without overlap."""
    batch = []
    for path in paths:
        raster = open_raster(path, GSD, pad_to=SIDE, multiple_of=32)
        for t in TileGrid(raster.grid.width // 32, raster.grid.height // 32, SIDE // 32, 0):
            rgb, valid = raster.read(t.x * 32, t.y * 32, SIDE, SIDE)
            if valid.all():
                batch.append(torch.from_numpy(rgb))
            if len(batch) == BATCH:
                yield torch.stack(batch)
                batch = []
        raster.close()


def main(out: str, paths: list[str]) -> None:
    torch.manual_seed(0)
    layers = build_yolo_backbone("n")
    seen = recalibrate_batchnorm(layers, tiles(paths))
    torch.save(layers.state_dict(), out)
    print(f"{out}: YOLO11-n layers 0-22, BatchNorm calibrated on {seen} batches of {BATCH} tiles")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
