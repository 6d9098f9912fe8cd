"""Seamless features: overlapping tiles mixed cell by cell, streamed as bands of finished cells.

:func:`coredino.tile_stream.encode_batches` yields batches of encoded tiles; :class:`Blender`
adds each tile's features, times its weights (:meth:`coredino.tiling.TileGrid.weights`), into
blocks of output cells, and hands back every band of rows that no later tile row reaches, as an
:class:`~coredino.tile_stream.EncodedBatch` whose "tiles" are those blocks (offset 0, written area
= the block). Consumers (assignment, embeddings, codebook fitting) see the same interface as
before. Memory: only the blocks that received a tile, over about two tile rows (the features
stay on the encoder's device); a canvas that is mostly empty costs nothing where it is empty.
On the CPU the sums are numpy arrays: torch's multi-threaded kernels cost about 1 ms per small
slice update (70x numpy's) on a busy 2-core machine.
"""

from __future__ import annotations

import bisect
from typing import Iterable, Iterator

import numpy as np
import torch

from .tile_stream import EncodedBatch
from .tiling import Tile, TileGrid

BLOCK_STRIDES = 4  # output block width, in tile strides


class Blender:
    """Call it on encoded tile batches (grid order): yields batches of finished output blocks,
    in row order (:meth:`EncodedBatch.keep` marks their valid cells)."""

    def __init__(self, grid: TileGrid, device: torch.device, dim: int) -> None:
        self.grid, self.device, self.dim = grid, device, dim
        self.on_cpu = device.type == "cpu"
        rows = grid.rows  # band j: the cells rows [row_starts[j], row_starts[j + 1]) tile row j writes
        self.row_starts = [out for _, out, _ in rows]
        self.end = rows[-1][1] + rows[-1][2]  # the grid's last written row + 1 (a TileBand's too)
        self.block = BLOCK_STRIDES * grid.stride
        self.bands: dict[int, dict[int, tuple]] = {}  # band -> block -> (feature sums, valid)
        self.tiles = 0  # tiles encoded so far
        self._weights: dict[Tile, np.ndarray] = {}

    def __call__(self, batches: Iterable[EncodedBatch]) -> Iterator[EncodedBatch]:
        for batch in batches:
            yield from self._add(batch)
        yield from self._emit(lambda j: True)

    def _add(self, batch: EncodedBatch) -> Iterator[EncodedBatch]:
        self.tiles += len(batch.tiles)
        weights = np.stack([self._weight(t) for t in batch.tiles])
        if self.on_cpu:
            weighted = batch.features.numpy() * weights[..., None]
        else:
            weighted = batch.features * torch.from_numpy(weights).to(self.device)[..., None]
        cells = batch.valid & (weights > 0)
        for i, tile in enumerate(batch.tiles):
            self._accumulate(tile, weighted[i], cells[i])
        first_open = bisect.bisect_right(self.row_starts, batch.tiles[-1].y) - 1
        yield from self._emit(lambda j: j < first_open)

    def _weight(self, tile: Tile) -> np.ndarray:
        w = self._weights.get(tile)
        if w is None:
            if len(self._weights) > 4096:
                self._weights.clear()
            w = self._weights[tile] = self.grid.weights(tile)
        return w

    def _band_rows(self, j: int) -> tuple[int, int]:
        end = self.row_starts[j + 1] if j + 1 < len(self.row_starts) else self.end
        return self.row_starts[j], min(end, self.end)

    def _accumulate(self, tile: Tile, feats, cells: np.ndarray) -> None:
        size, g = self.grid.tile, self.grid
        y1, x1 = min(tile.y + size, g.cells_y), min(tile.x + size, g.cells_x)
        j = max(0, bisect.bisect_right(self.row_starts, tile.y) - 1)  # read rows before the first band: none
        while j < len(self.row_starts) and self.row_starts[j] < y1:
            r0, r1 = self._band_rows(j)
            r0, r1 = max(r0, tile.y), min(r1, y1)
            if r1 > r0:
                band = self.bands.setdefault(j, {})
                for b in range(tile.x // self.block, (x1 - 1) // self.block + 1):
                    c0, c1 = max(b * self.block, tile.x), min((b + 1) * self.block, x1)
                    acc, valid = band.get(b) or self._new_block(j)
                    band[b] = (acc, valid)
                    rows = slice(r0 - self._band_rows(j)[0], r1 - self._band_rows(j)[0])
                    cols = slice(c0 - b * self.block, c1 - b * self.block)
                    acc[rows, cols] += feats[r0 - tile.y:r1 - tile.y, c0 - tile.x:c1 - tile.x]
                    valid[rows, cols] |= cells[r0 - tile.y:r1 - tile.y, c0 - tile.x:c1 - tile.x]
            j += 1

    def _new_block(self, j: int) -> tuple:
        r0, r1 = self._band_rows(j)
        shape = (r1 - r0, self.block, self.dim)
        sums = np.zeros(shape, np.float32) if self.on_cpu else torch.zeros(shape, device=self.device)
        return sums, np.zeros((r1 - r0, self.block), bool)

    def _emit(self, done) -> Iterator[EncodedBatch]:
        for j in sorted(j for j in self.bands if done(j)):
            band = self.bands.pop(j)
            r0, r1 = self._band_rows(j)
            blocks = sorted(band)
            tiles = [Tile(b * self.block, r0, b * self.block, r0,
                          min(self.block, self.grid.cells_x - b * self.block), r1 - r0) for b in blocks]
            sums = [band[b][0] for b in blocks]
            features = torch.from_numpy(np.stack(sums)) if self.on_cpu else torch.stack(sums)
            yield EncodedBatch(tiles, features, np.stack([band[b][1] for b in blocks]))

