"""Stream a raster through an encoder tile by tile: the one loop behind classify and fit.

Reading. Tiles overlap (their borders are context), so a row of neighbouring tiles is read as
ONE window, in the raster's own dtype (uint8 for 8-bit imagery), by a reader thread while the
model runs; the reader decides from the window's validity which tiles have a valid cell in their
core. On a GPU the window goes to the device as is (pinned, copied asynchronously), is scaled to
[0, 1] there and the tiles are cut from it with one gather; on the CPU the reader thread scales
the window and cuts the tiles itself, off the model's thread. Either way each pixel is read and
normalised once instead of up to four times. Tiles outside the raster's data coverage
(the empty canvas of a VRT mosaic, sparse GeoTIFF tiles; see :meth:`RasterSource.coverage`) are
skipped without being read, so time follows the valid area, not the canvas.

Batches. The encoder sees ``batch_size`` tiles per forward pass (bf16 autocast on CUDA); the
features of the whole batch stay on the device, and :meth:`EncodedBatch.core_features` hands the
valid core cells of all its tiles to the caller in one tensor, so nearest-centroid assignment is
one matmul per batch on the device. ``compile=True`` runs the encoder through ``torch.compile``
(every batch padded to ``batch_size``: one static shape, one compilation).
"""

from __future__ import annotations

import os
import queue
import threading
import time
from dataclasses import dataclass
from typing import Iterator, Optional

import numpy as np
import torch

from .device import autocast
from .encoders import Encoder
from .errors import UserError
from .progress import Progress
from .raster import PixelScale, RasterSource
from .threads import usable_cores
from .tiling import Tile, TileGrid

MIN_VALID_FRACTION = 0.5  # a cell is valid when at least half of its pixels are
MAX_RUN = 32  # tiles per read window: bounds the window's memory (about 1-30 MB) on any raster
ESTIMATE_FROM = 1000  # tiles from which check_size times a batch to estimate the duration


@dataclass
class EncodedBatch:
    tiles: list[Tile]
    features: torch.Tensor  # (n, tile, tile, dim) float32 on the encoder's device
    valid: np.ndarray  # (n, tile, tile) bool: cells with enough valid pixels

    def keep(self) -> np.ndarray:
        """(n, tile, tile) bool: the valid cells each tile writes (its core, clipped at the edges)."""
        keep = np.zeros(self.valid.shape, bool)
        for i, tile in enumerate(self.tiles):
            ox, oy = tile.offset
            keep[i, oy:oy + tile.out_h, ox:ox + tile.out_w] = True
        return keep & self.valid

    def core_features(self) -> tuple[torch.Tensor, np.ndarray]:
        """Features (m, dim) on the device of the cells :meth:`keep` marks, in its C order.

        A gather by indices uploaded asynchronously: nothing here waits for the device.
        """
        keep = self.keep()
        index = torch.from_numpy(np.stack(np.nonzero(keep)))
        if self.features.device.type == "cuda":
            index = index.pin_memory()
        b, y, x = index.to(self.features.device, non_blocking=True)
        return self.features[b, y, x], keep


@dataclass
class _Run:
    """Neighbouring tiles of one tile row, read as one window (what a reader hands over)."""

    tiles: list[Tile]
    cols: torch.Tensor  # (n,) first pixel column of each tile inside the window
    values: Optional[torch.Tensor]  # (3, side, width) as read: uint8, or float32 for other dtypes
    valid: Optional[torch.Tensor]  # (side, width) bool
    cells: np.ndarray  # (n, tile, tile) bool cell validity of each tile
    skipped: int  # planned tiles of this run passed over (no valid cell where they write)
    pixels: Optional[torch.Tensor] = None  # (n, 3, side, side) float32, when cut by the reader


def reader_count(device: torch.device) -> int:
    """Reader threads: one on the CPU (the model needs the cores), more to feed a GPU.

    ``COREDINO_READERS`` overrides.
    """
    if os.environ.get("COREDINO_READERS", "").isdigit():
        return max(1, int(os.environ["COREDINO_READERS"]))
    if device.type == "cpu":
        return 1
    # a GPU encodes the default model at tens of km²/s: one reader (2-3 km²/s of 8-bit
    # reads) cannot feed it; GDAL releases the GIL, so readers scale with the cores
    return max(2, min(8, usable_cores() // 2))


def encode_batches(raster: RasterSource, encoder: Encoder, grid: TileGrid, batch_size: int,
                   progress: Optional[Progress] = None, compile: bool = False,
                   readers: Optional[int] = None,
                   plan: Optional["TilePlan"] = None) -> Iterator[EncodedBatch]:
    """Yield batches of ``batch_size`` tiles (the last one shorter) with a valid cell where they
    write, planned lazily row by row (``plan``: from :func:`plan_tiles` when not given).

    Tiles come in grid order whatever the number of reader threads.
    """
    device = next(encoder.parameters()).device
    model = torch.compile(encoder, dynamic=False) if compile else encoder
    plan = plan or plan_tiles(raster, grid, encoder.patch)
    runs = _Readers(raster, grid, encoder.patch, device, readers or reader_count(device), plan)
    scale = PixelScale(raster.stretch)
    side = grid.tile * encoder.patch
    total, done = max(1, plan.tiles), 0
    pending = _Pending()
    try:
        for run in runs:
            done += run.skipped
            if run.tiles:
                pixels = run.pixels
                if pixels is None:  # cut on the device from the uploaded window
                    pixels = _cut(scale(run.values.to(device, non_blocking=True),
                                        run.valid.to(device, non_blocking=True)), run.cols, side)
                pending.add(run.tiles, pixels, run.cells)
            while len(pending) >= batch_size:
                batch = _batch(model, pending, device, batch_size, compile)
                done += len(batch.tiles)
                _report(progress, done, total)
                yield batch
            if not run.tiles:
                _report(progress, done, total)
        while len(pending):
            batch = _batch(model, pending, device, batch_size, compile)
            done += len(batch.tiles)
            _report(progress, done, total)
            yield batch
    finally:
        runs.close()


def _batch(model: torch.nn.Module, pending: "_Pending", device: torch.device, batch_size: int,
           compile: bool) -> EncodedBatch:
    tiles, pixels, cells = pending.take(batch_size)
    return EncodedBatch(tiles, _encode(model, pixels, device, batch_size if compile else len(tiles)),
                        cells)


def _report(progress: Optional[Progress], done: int, total: int) -> None:
    if progress is not None:
        progress.update(min(done, total) / total, f"tile {min(done, total)}/{total}")


@dataclass
class TilePlan:
    """Which tiles may hold data: tiles are listed lazily, row by row, from a coarse coverage.

    coverage: (units_y, units_x) bool, ``unit`` x ``unit`` cells each (None: all may hold data).
    tiles:    how many tiles of the grid may hold data (the work to do).
    """

    grid: TileGrid
    coverage: Optional[np.ndarray]
    unit: int
    tiles: int = 0

    def __post_init__(self) -> None:
        cols = self.grid.columns
        self._col_lo = np.array([out // self.unit for _, out, _ in cols])
        self._col_hi = np.array([(out + n - 1) // self.unit + 1 for _, out, n in cols])
        self.tiles = (len(self.grid) if self.coverage is None else
                      sum(int(self.columns(r).sum()) for r in range(len(self.grid.rows))))

    def columns(self, row: int) -> np.ndarray:
        """(tile columns,) bool: the tiles of tile row ``row`` that may hold data."""
        if self.coverage is None:
            return np.ones(len(self._col_lo), bool)
        _, out, n = self.grid.rows[row]
        band = self.coverage[out // self.unit:(out + n - 1) // self.unit + 1].any(axis=0)
        sums = np.concatenate([[0], np.cumsum(band)])
        return sums[np.minimum(self._col_hi, len(band))] > sums[np.minimum(self._col_lo, len(band))]


def check_size(plan: TilePlan, encoder: Encoder, batch_size: int, max_tiles: Optional[int],
               path: str) -> str:
    """The up-front estimate, e.g. "~790,000 tiles, ~160 h on cpu" (the time from one timed
    batch when there are many tiles); a :class:`UserError` above ``max_tiles`` (0/None: no limit)."""
    device = next(encoder.parameters()).device
    text = f"~{plan.tiles:,} tiles"
    if plan.tiles >= ESTIMATE_FROM:
        seconds = plan.tiles * _seconds_per_tile(encoder, plan.grid.tile * encoder.patch, batch_size)
        text += f", ~{_duration(seconds)} on {device.type}"
    if max_tiles and plan.tiles > max_tiles:
        raise UserError(f"{path}: {text}, more than the limit of {max_tiles:,} tiles; check the "
                        f"raster's extent and the codebook's GSD, or raise the limit with "
                        f"--max-tiles {plan.tiles} (0: no limit)")
    return text


def _seconds_per_tile(encoder: Encoder, side: int, batch_size: int) -> float:
    """Seconds per tile of one forward pass of ``batch_size`` blank tiles (after a warm-up)."""
    device = next(encoder.parameters()).device
    pixels = torch.zeros((batch_size, 3, side, side), device=device)
    _encode(encoder, pixels, device, batch_size)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    _encode(encoder, pixels, device, batch_size)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return (time.perf_counter() - start) / batch_size


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:,.0f} h"


def plan_tiles(raster: RasterSource, grid: TileGrid, patch: int) -> TilePlan:
    """The :class:`TilePlan` of ``grid`` over ``raster``: a coverage query per ``stride`` cells
    (milliseconds to a few seconds, whatever the raster's size)."""
    unit = max(1, grid.stride)
    return TilePlan(grid, raster.coverage(patch * unit), unit)


class _Pending:
    """Tiles waiting for a batch, in runs; a batch copies only the tiles it takes across runs."""

    def __init__(self) -> None:
        self.parts: list[tuple[list[Tile], torch.Tensor, np.ndarray]] = []
        self.count = 0

    def __len__(self) -> int:
        return self.count

    def add(self, tiles: list[Tile], pixels: torch.Tensor, cells: np.ndarray) -> None:
        self.parts.append((tiles, pixels, cells))
        self.count += len(tiles)

    def take(self, n: int) -> tuple[list[Tile], torch.Tensor, np.ndarray]:
        taken = []
        while n and self.parts:
            tiles, pixels, cells = self.parts[0]
            m = min(n, len(tiles))
            taken.append((tiles[:m], pixels[:m], cells[:m]))
            if m == len(tiles):
                self.parts.pop(0)
            else:
                self.parts[0] = (tiles[m:], pixels[m:], cells[m:])
            n -= m
            self.count -= m
        if len(taken) == 1:
            return taken[0]
        return ([t for part in taken for t in part[0]], torch.cat([part[1] for part in taken]),
                np.concatenate([part[2] for part in taken]))


def _encode(model: torch.nn.Module, pixels: torch.Tensor, device: torch.device,
            size: int) -> torch.Tensor:
    """(n, 3, s, s) -> (n, s/patch, s/patch, dim) float32; padded to ``size`` tiles for the model."""
    n = pixels.shape[0]
    size = max(size, 2)  # a lone tile takes other kernels (last bits differ): pair it with zeros
    if n < size:
        pixels = torch.cat([pixels, pixels.new_zeros((size - n,) + pixels.shape[1:])])
    with torch.inference_mode(), autocast(device):
        feats = model(pixels)
    return feats[:n].float().permute(0, 2, 3, 1)


def _cut(window: torch.Tensor, cols: torch.Tensor, side: int) -> torch.Tensor:
    """Tiles (n, 3, side, side) starting at ``cols`` of a (3, side, width) window: one gather."""
    index = cols.to(window.device, non_blocking=True)[:, None] + torch.arange(side, device=window.device)
    return window[:, :, index].permute(2, 0, 1, 3).contiguous()


_END = object()  # a reader's last item


class _Readers:
    """Reader threads producing :class:`_Run` in grid order from a lazily listed plan."""

    def __init__(self, raster: RasterSource, grid: TileGrid, patch: int, device: torch.device,
                 count: int, plan: TilePlan) -> None:
        self.plan = plan
        self.count = max(1, count)
        self.pin = device.type == "cuda"
        self.cut = device.type == "cpu"  # the reader thread cuts CPU tiles: off the model's thread
        self.stop = threading.Event()
        self.queues = [queue.Queue(maxsize=2) for _ in range(self.count)]
        sources = [raster] + [raster.reopen() for _ in range(self.count - 1)]
        self.owned = sources[1:]
        self.threads = [threading.Thread(target=self._read, daemon=True,
                                         args=(sources[i], grid, patch, i))
                        for i in range(self.count)]
        for thread in self.threads:
            thread.start()

    def __iter__(self) -> Iterator[_Run]:
        i = 0
        while True:
            item = self.queues[i % self.count].get()
            if item is _END:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
            i += 1

    def _read(self, raster: RasterSource, grid: TileGrid, patch: int, worker: int) -> None:
        out = self.queues[worker]
        try:
            for i, planned in enumerate(_plan(self.plan)):
                if self.stop.is_set():
                    return
                if i % self.count == worker:
                    out.put(_read_run(raster, grid, patch, planned, self.pin, self.cut))
            out.put(_END)
        except BaseException as exc:  # surfaced in the consumer thread
            out.put(exc)

    def close(self) -> None:
        self.stop.set()
        for thread, q in zip(self.threads, self.queues):
            while thread.is_alive():  # unblock a reader waiting on a full queue
                try:
                    q.get(timeout=0.1)
                except queue.Empty:
                    pass
        for source in self.owned:
            source.close()


def _plan(plan: TilePlan) -> Iterator[list[Tile]]:
    """Runs of up to MAX_RUN neighbouring tiles of one tile row that may hold data, in grid
    order, listed one tile row at a time."""
    for row in range(len(plan.grid.rows)):
        wanted = np.flatnonzero(plan.columns(row))
        run: list[Tile] = []
        for c, tile in zip(wanted, plan.grid.row_tiles(row, wanted)):
            if run and (c != last + 1 or len(run) == MAX_RUN):
                yield run
                run = []
            run.append(tile)
            last = c
        if run:
            yield run


def _read_run(raster: RasterSource, grid: TileGrid, patch: int, planned: list[Tile],
              pin: bool, cut: bool = False) -> _Run:
    """Read a run's window; keep its tiles with a valid cell in their core.

    cut: also scale the window to [0, 1] and cut the tiles here (the CPU path: the reader thread
    does it while the model runs); else the consumer does it on its device.
    """
    side = grid.tile * patch
    skipped = 0
    x0 = planned[0].x * patch
    width = planned[-1].x * patch + side - x0
    values, valid = raster.read_raw(x0, planned[0].y * patch, width, side)
    # cell validity for the whole window: a cell is valid when at least half its pixels are
    counts = valid.reshape(grid.tile, patch, width // patch, patch).sum(axis=(1, 3), dtype=np.int32)
    cells = counts >= MIN_VALID_FRACTION * patch * patch
    tiles, cols, tile_cells = [], [], []
    for tile in planned:
        c = tile.x - planned[0].x
        tc = cells[:, c:c + grid.tile]
        ox, oy = tile.offset
        if not tc[oy:oy + tile.out_h, ox:ox + tile.out_w].any():
            skipped += 1
            continue
        tiles.append(tile)
        cols.append(c * patch)
        tile_cells.append(tc)
    tile_cells = np.stack(tile_cells) if tiles else np.zeros((0, grid.tile, grid.tile), bool)
    if cut:
        unit = raster.to_unit(values, valid)
        pixels = torch.from_numpy(np.stack([unit[:, :, c:c + side] for c in cols])) if tiles else None
        return _Run(tiles, torch.tensor(cols, dtype=torch.long), None, None, tile_cells, skipped, pixels)
    values_t, valid_t = torch.from_numpy(values), torch.from_numpy(valid)
    cols_t = torch.tensor(cols, dtype=torch.long)
    if pin and tiles:  # page-locked: the copies to the GPU run asynchronously
        values_t, valid_t, cols_t = values_t.pin_memory(), valid_t.pin_memory(), cols_t.pin_memory()
    return _Run(tiles, cols_t, values_t, valid_t, tile_cells, skipped)
