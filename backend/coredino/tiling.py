"""Tiles with a discarded context border, snapped inward so every output cell is covered once.

Units are patch cells (one output pixel per encoder patch). A tile of ``tile`` cells keeps its
central ``tile - 2 * border`` cells; the border only gives the model context. Tiles at the
raster's edge are shifted inward instead of running off it, so the margins are classified too
(the edge cells then simply have less context on one side).

With a ``phase``, tiles are read on a fixed lattice instead (first cells ``phase + k * core``: the
geocentroids notebook's tiles), each writing its centre; the last one writes up to its far side
and may reach beyond the grid (the reader pads it with invalid pixels, as the notebook pads with
black), and a tile at 0 writes what lies before the lattice's first centre.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterator, Optional

from .errors import UserError

if TYPE_CHECKING:
    from .raster import RasterSource


@dataclass(frozen=True)
class Tile:
    """A tile window (x, y: first cell read) and the output cells it writes."""

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
    """

    cells_x: int
    cells_y: int
    tile: int
    border: int
    phase: Optional[tuple[int, int]] = None  # (x, y) first cell of the lattice's first tile

    def __post_init__(self) -> None:
        if self.tile - 2 * self.border < 1:
            raise UserError(f"tile of {self.tile} patches leaves nothing inside a border of "
                            f"{self.border} patches; use a larger tile or a smaller border")

    @property
    def core(self) -> int:
        return self.tile - 2 * self.border

    def __iter__(self) -> Iterator[Tile]:
        px = self.phase[0] if self.phase else None
        for out_y, y, out_h in self._row_axis():
            for out_x, x, out_w in self._axis(self.cells_x, px):
                yield Tile(x, y, out_x, out_y, out_w, out_h)

    def __len__(self) -> int:
        px = self.phase[0] if self.phase else None
        return len(self._axis(self.cells_x, px)) * len(self._row_axis())

    def _row_axis(self) -> list[tuple[int, int, int]]:
        return self._axis(self.cells_y, self.phase[1] if self.phase else None)

    @property
    def tile_rows(self) -> int:
        return len(TileGrid._row_axis(self))

    def _axis(self, cells: int, phase: Optional[int]) -> list[tuple[int, int, int]]:
        """(first written cell, first read cell, cells written) along one axis."""
        span = max(cells, self.tile)
        if phase is None:
            return [(start, min(max(start - self.border, 0), span - self.tile),
                     min(self.core, cells - start)) for start in range(0, cells, self.core)]
        reads = [phase]
        while reads[-1] + self.tile < cells:  # the last tile writes up to its far side
            reads.append(reads[-1] + self.core)
        starts = [read + self.border for read in reads]
        if phase > 0:  # before the lattice: a tile at 0
            reads.insert(0, 0)
            starts.insert(0, 0)
        starts[0] = 0
        bounds = [min(start, cells) for start in starts] + [cells]
        return [(bounds[i], reads[i], bounds[i + 1] - bounds[i]) for i in range(len(reads))
                if bounds[i + 1] > bounds[i]]


def tile_grid(raster: "RasterSource", patch: int, tile: int, border: int,
              phase: Optional[tuple[int, int]] = None) -> TileGrid:
    """The tiles covering ``raster``'s grid of ``patch`` x ``patch`` pixel cells (``phase``: the
    lattice, see :class:`TileGrid`)."""
    return TileGrid(raster.grid.width // patch, raster.grid.height // patch, tile, border, phase)


@dataclass(frozen=True)
class TileBand(TileGrid):
    """The tile rows ``first_row`` to ``stop_row`` (exclusive) of a :class:`TileGrid`.

    Its tiles are the grid's own (same windows, same context border), so classifying the bands
    of a grid one by one writes exactly the cells of the whole grid; :attr:`out_rows` are the
    output cell rows the band writes.
    """

    first_row: int = 0
    stop_row: int = 0

    @classmethod
    def of(cls, grid: TileGrid, first_row: int, stop_row: int) -> "TileBand":
        rows = grid.tile_rows
        if not 0 <= first_row < stop_row <= rows:
            raise UserError(f"tile rows {first_row}..{stop_row} are outside the grid's {rows} rows")
        return cls(grid.cells_x, grid.cells_y, grid.tile, grid.border, grid.phase, first_row, stop_row)

    @property
    def out_rows(self) -> tuple[int, int]:
        """(first output cell row, stop row) written by the band's tiles."""
        rows = self._row_axis()
        return rows[0][0], rows[-1][0] + rows[-1][2]

    def _row_axis(self) -> list[tuple[int, int, int]]:
        return TileGrid._row_axis(self)[self.first_row:self.stop_row]
