"""Stream a raster through an encoder tile by tile: the one loop behind classify and fit."""

from __future__ import annotations

import queue
import threading
from dataclasses import dataclass
from typing import Iterator, Optional

import numpy as np
import torch

from .device import autocast
from .encoders import Encoder
from .progress import Progress
from .raster import RasterSource
from .tiling import Tile, TileGrid

MIN_VALID_FRACTION = 0.5  # a cell is valid when at least half of its pixels are


@dataclass
class EncodedTile:
    tile: Tile
    features: torch.Tensor  # (tile, tile, dim) on the encoder's device
    valid: np.ndarray  # (tile, tile) bool: cells with enough valid pixels

    def core(self) -> tuple[torch.Tensor, np.ndarray]:
        """Features and validity of the cells this tile writes."""
        ox, oy = self.tile.offset
        h, w = self.tile.out_h, self.tile.out_w
        return self.features[oy:oy + h, ox:ox + w], self.valid[oy:oy + h, ox:ox + w]


def tile_grid(raster: RasterSource, patch: int, tile: int, border: int) -> TileGrid:
    return TileGrid(raster.grid.width // patch, raster.grid.height // patch, tile, border)


def encode_raster(raster: RasterSource, encoder: Encoder, grid: TileGrid, batch_size: int,
                  progress: Optional[Progress] = None) -> Iterator[EncodedTile]:
    """Yield every tile with at least one valid cell in its core, encoded.

    A reader thread cuts and stacks the next batch (GDAL releases the GIL) while the model runs.
    """
    device = next(encoder.parameters()).device
    batches: queue.Queue = queue.Queue(maxsize=2)
    stop = threading.Event()
    reader = threading.Thread(target=_read_batches, daemon=True,
                              args=(raster, grid, encoder.patch, batch_size, batches, stop))
    reader.start()
    total, done = max(1, len(grid)), 0
    try:
        while (item := batches.get()) is not None:
            if isinstance(item, BaseException):
                raise item
            tiles, pixels, valid, skipped = item
            with torch.inference_mode(), autocast(device):
                feats = encoder(torch.from_numpy(pixels).to(device, non_blocking=True))
            feats = feats.float().permute(0, 2, 3, 1)
            for i, tile in enumerate(tiles):
                yield EncodedTile(tile, feats[i], valid[i])
            done += len(tiles) + skipped
            if progress is not None:
                progress.update(done / total, f"tile {done}/{total}")
    finally:
        stop.set()
        while reader.is_alive():  # unblock a reader waiting on a full queue
            try:
                batches.get(timeout=0.1)
            except queue.Empty:
                pass


def _read_batches(raster: RasterSource, grid: TileGrid, patch: int, batch_size: int,
                  out: queue.Queue, stop: threading.Event) -> None:
    side = grid.tile * patch
    tiles, pixels, valid, skipped = [], [], [], 0
    try:
        for tile in grid:
            if stop.is_set():
                return
            rgb, mask = raster.read(tile.x * patch, tile.y * patch, side, side)
            cells = mask.reshape(grid.tile, patch, grid.tile, patch).mean(axis=(1, 3))
            cells = cells >= MIN_VALID_FRACTION
            ox, oy = tile.offset
            if not cells[oy:oy + tile.out_h, ox:ox + tile.out_w].any():
                skipped += 1
                continue
            tiles.append(tile)
            pixels.append(rgb)
            valid.append(cells)
            if len(tiles) == batch_size:
                out.put((tiles, np.stack(pixels), np.stack(valid), skipped))
                tiles, pixels, valid, skipped = [], [], [], 0
        if tiles:
            out.put((tiles, np.stack(pixels), np.stack(valid), skipped))
        out.put(None)
    except BaseException as exc:  # surfaced in the consumer thread
        out.put(exc)
