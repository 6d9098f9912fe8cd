"""Tiles of patch cells and how each tile's features weigh in every output cell.

Units are patch cells (one output pixel per encoder patch). Two layouts:

* **cut** (``blend=False``): a tile of ``tile`` cells keeps its central ``tile - 2 * border``
  cells (its core); the border only gives the model context, cores tile the raster exactly once.
* **blended** (``blend=True``, the default of classify and fit): tiles advance by
  :attr:`TileGrid.stride` (5/6 of the core), so neighbours overlap by more than two borders; in
  an overlap the two tiles' features are mixed with linear weights that fall to zero towards
  each tile's edge. The map is continuous across tiles: the same ground no longer changes class
  where one tile's context ends and the next begins (the tile-wide context of the YOLO11 neck
  and of ViT attention otherwise gives every tile its own offset). Costs (6/5)^2 = 1.44x the
  cut layout's encoder work.

Either way tiles at the raster's edge are shifted inward instead of running off it, and the
weights of the tiles covering a cell sum to 1 (per axis, so also in 2-D).

With a ``phase`` (cut only), tiles are read on a fixed lattice instead (first cells ``phase + k *
core``: the geocentroids notebook's tiles), each writing its centre; the last one writes up to its
far side and may reach beyond the grid (the reader pads it with invalid pixels, as the notebook
pads with black), and a tile at 0 writes what lies before the lattice's first centre.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterator, Optional

import numpy as np

from .errors import UserError

if TYPE_CHECKING:
    from .raster import RasterSource

BLEND_ADVANCE = 5 / 6  # blended tiles advance by this fraction of the core


@dataclass(frozen=True)
class Tile:
    """A tile window (x, y: first cell read) and the output cells it writes (its weight is > 0)."""

    x: int
    y: int
    out_x: int
    out_y: int
    out_w: int
    out_h: int

    @property
    def offset(self) -> tuple[int, int]:
        """Where the written cells start inside the tile's own output."""
        return self.out_x - self.x, self.out_y - self.y


@dataclass(frozen=True)
class TileGrid:
    """Cover ``cells_x`` x ``cells_y`` output cells with tiles of ``tile`` cells.

    The grid to read from must be at least one tile large (:func:`coredino.raster.open_raster_source`
    pads tiny rasters), i.e. ``cells_x, cells_y >= tile`` or the padded size given.
    Iterating is lazy (rows of tiles in order); only the per-axis layouts are held.
    """

    cells_x: int
    cells_y: int
    tile: int
    border: int
    phase: Optional[tuple[int, int]] = None  # (x, y) first cell of the lattice's first tile
    blend: bool = False

    def __post_init__(self) -> None:
        if self.tile - 2 * self.border < 1:
            raise UserError(f"tile of {self.tile} patches leaves nothing inside a border of "
                            f"{self.border} patches; use a larger tile or a smaller border")
        if self.blend and self.phase is not None:
            raise ValueError("a tile lattice (phase) is cut, not blended")

    @property
    def core(self) -> int:
        return self.tile - 2 * self.border

    @property
    def stride(self) -> int:
        """Cells between the first cells of neighbouring tiles (before edge snapping)."""
        return max(1, math.ceil(self.core * BLEND_ADVANCE)) if self.blend else self.core

    @property
    def columns(self) -> list[tuple[int, int, int]]:
        """(first read cell, first written cell, written cells) of each tile column."""
        return self._axis(self.cells_x, self.phase[0] if self.phase else None)

    @property
    def rows(self) -> list[tuple[int, int, int]]:
        """(first read cell, first written cell, written cells) of each tile row."""
        return self._axis(self.cells_y, self.phase[1] if self.phase else None)

    def row_tiles(self, row: int, columns: Iterator[int] | None = None) -> Iterator[Tile]:
        """The tiles of tile row ``row`` (all columns, or the column indices given, in order)."""
        y, out_y, out_h = self.rows[row]
        cols = self.columns
        for c in (range(len(cols)) if columns is None else columns):
            x, out_x, out_w = cols[c]
            yield Tile(x, y, out_x, out_y, out_w, out_h)

    def __iter__(self) -> Iterator[Tile]:
        for row in range(len(self.rows)):
            yield from self.row_tiles(row)

    def __len__(self) -> int:
        return len(self.columns) * len(self.rows)

    def weights(self, tile: Tile) -> np.ndarray:
        """(tile, tile) float32: the share of ``tile``'s feature in each cell it covers."""
        return np.outer(self._weights(self.rows)[tile.out_y], self._weights(self.columns)[tile.out_x])

    def owners(self, cells: int) -> np.ndarray:
        """(cells,) int: index of the tile with the largest weight at each cell along an axis
        (where it changes is a tile seam, see :mod:`coredino.evaluate.seams`)."""
        axis = self.columns if cells == self.cells_x else self.rows
        profiles = self._weights(axis)
        best = np.full(cells, -1.0)
        owner = np.zeros(cells, int)
        for i, (start, out, _) in enumerate(axis):
            w = profiles[out]
            end = min(start + self.tile, cells)
            better = w[:end - start] > best[start:end]
            owner[start:end][better] = i
            best[start:end][better] = w[:end - start][better]
        return owner

    @functools.lru_cache(maxsize=4)
    def _axis(self, cells: int, phase: Optional[int]) -> list[tuple[int, int, int]]:
        span = max(cells, self.tile)
        if phase is not None:
            return _lattice(cells, phase, self.tile, self.border, self.core)
        if not self.blend:
            return [(min(max(start - self.border, 0), span - self.tile), start,
                     min(self.core, cells - start)) for start in range(0, cells, self.core)]
        n = 1 + math.ceil((span - self.tile) / self.stride)
        starts = [round(i * (span - self.tile) / (n - 1)) if n > 1 else 0 for i in range(n)]
        return [(s, s, min(self.tile, cells - s)) for s in starts]

    def _weights(self, axis: list[tuple[int, int, int]]) -> dict[int, np.ndarray]:
        """First written cell -> (tile,) weights of that tile along one axis (``columns`` or
        ``rows``, from its first read cell), summing to 1 over the tiles at a cell."""
        key = (self.tile, self.blend, tuple(axis))
        if key not in _WEIGHTS:
            if len(_WEIGHTS) > 8:
                _WEIGHTS.clear()
            _WEIGHTS[key] = self._axis_weights(axis)
        return _WEIGHTS[key]

    def _axis_weights(self, axis: list[tuple[int, int, int]]) -> dict[int, np.ndarray]:
        raw = []
        for i, (start, out, n) in enumerate(axis):
            w = np.zeros(self.tile, np.float64)
            w[out - start:out - start + n] = 1.0
            if self.blend:
                pos = np.arange(self.tile) + 0.5
                if i > 0:  # rise across the overlap with the previous tile
                    w = np.minimum(w, pos / (axis[i - 1][0] + self.tile - start))
                if i < len(axis) - 1:  # fall across the overlap with the next tile
                    w = np.minimum(w, (self.tile - pos) / (start + self.tile - axis[i + 1][0]))
            raw.append(w)
        total = np.zeros(max(start for start, _, _ in axis) + self.tile)
        for (start, _, _), w in zip(axis, raw):
            total[start:start + self.tile] += w
        return {out: np.where(w > 0, w / np.maximum(total[start:start + self.tile], 1e-12), 0.0)
                .astype(np.float32) for (start, out, _), w in zip(axis, raw)}


def _lattice(cells: int, phase: int, tile: int, border: int, core: int) -> list[tuple[int, int, int]]:
    """(first read cell, first written cell, cells written) of the lattice tiles along one axis."""
    reads = [phase]
    while reads[-1] + tile < cells:  # the last tile writes up to its far side
        reads.append(reads[-1] + core)
    starts = [read + border for read in reads]
    if phase > 0:  # before the lattice: a tile at 0
        reads.insert(0, 0)
        starts.insert(0, 0)
    starts[0] = 0
    bounds = [min(start, cells) for start in starts] + [cells]
    return [(reads[i], bounds[i], bounds[i + 1] - bounds[i]) for i in range(len(reads))
            if bounds[i + 1] > bounds[i]]


_WEIGHTS: dict[tuple, dict[int, np.ndarray]] = {}  # per-axis weights of the last few layouts


def tile_grid(raster: "RasterSource", patch: int, tile: int, border: int,
              phase: Optional[tuple[int, int]] = None, blend: bool = False) -> TileGrid:
    """The tiles covering ``raster``'s grid of ``patch`` x ``patch`` pixel cells (``phase``: the
    lattice, see :class:`TileGrid`; ``blend``: overlapping blended tiles)."""
    return TileGrid(raster.grid.width // patch, raster.grid.height // patch, tile, border, phase,
                    blend)


@dataclass(frozen=True)
class TileBand(TileGrid):
    """The tile rows ``first_row`` to ``stop_row`` (exclusive) of a cut (not blended) :class:`TileGrid`.

    Its tiles are the grid's own (same windows, same context border), so classifying the bands
    of a grid one by one writes exactly the cells of the whole grid; :attr:`out_rows` are the
    output cell rows the band writes. Blended tiles share cells with the next row's, so a blended
    grid is not split.
    """

    first_row: int = 0
    stop_row: int = 0

    @classmethod
    def of(cls, grid: TileGrid, first_row: int, stop_row: int) -> "TileBand":
        if grid.blend:
            raise UserError("blended tiles cannot be split into bands of rows; classify the raster in "
                            "one piece (--band-rows 0) or with cut tiles (--no-blend)")
        rows = len(grid.rows)
        if not 0 <= first_row < stop_row <= rows:
            raise UserError(f"tile rows {first_row}..{stop_row} are outside the grid's {rows} rows")
        return cls(grid.cells_x, grid.cells_y, grid.tile, grid.border, grid.phase, grid.blend,
                   first_row, stop_row)

    @property
    def rows(self) -> list[tuple[int, int, int]]:
        return TileGrid.rows.fget(self)[self.first_row:self.stop_row]

    @property
    def out_rows(self) -> tuple[int, int]:
        """(first output cell row, stop row) written by the band's tiles."""
        rows = self.rows
        return rows[0][1], rows[-1][1] + rows[-1][2]
