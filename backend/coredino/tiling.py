"""Tiles with a discarded context border, snapped inward so every output cell is covered once.

Units are patch cells (one output pixel per encoder patch). A tile of ``tile`` cells keeps its
central ``tile - 2 * border`` cells; the border only gives the model context. Tiles at the
raster's edge are shifted inward instead of running off it, so the margins are classified too
(the edge cells then simply have less context on one side).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterator

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

    def __post_init__(self) -> None:
        if self.tile - 2 * self.border < 1:
            raise UserError(f"tile of {self.tile} patches leaves nothing inside a border of "
                            f"{self.border} patches; use a larger tile or a smaller border")

    @property
    def core(self) -> int:
        return self.tile - 2 * self.border

    def __iter__(self) -> Iterator[Tile]:
        columns = self._axis(self.cells_x)
        for out_y, y in self._row_axis():
            for out_x, x in columns:
                yield Tile(x, y, out_x, out_y,
                           min(self.core, self.cells_x - out_x), min(self.core, self.cells_y - out_y))

    def __len__(self) -> int:
        return len(self._axis(self.cells_x)) * len(self._row_axis())

    def _row_axis(self) -> list[tuple[int, int]]:
        return self._axis(self.cells_y)

    @property
    def tile_rows(self) -> int:
        return len(self._axis(self.cells_y))

    def _axis(self, cells: int) -> list[tuple[int, int]]:
        """(first written cell, first read cell) along one axis."""
        span = max(cells, self.tile)
        return [(start, min(max(start - self.border, 0), span - self.tile))
                for start in range(0, cells, self.core)]


def tile_grid(raster: "RasterSource", patch: int, tile: int, border: int) -> TileGrid:
    """The tiles covering ``raster``'s grid of ``patch`` x ``patch`` pixel cells."""
    return TileGrid(raster.grid.width // patch, raster.grid.height // patch, tile, border)


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
        return cls(grid.cells_x, grid.cells_y, grid.tile, grid.border, first_row, stop_row)

    @property
    def out_rows(self) -> tuple[int, int]:
        """(first output cell row, stop row) written by the band's tiles."""
        return self.first_row * self.core, min(self.stop_row * self.core, self.cells_y)

    def _row_axis(self) -> list[tuple[int, int]]:
        return self._axis(self.cells_y)[self.first_row:self.stop_row]
