import numpy as np
import pytest

from coredino.errors import UserError
from coredino.tiling import TileGrid


@pytest.mark.parametrize("cells", [(96, 96), (100, 37), (24, 24), (5, 3), (1, 1), (25, 200)])
def test_every_cell_written_exactly_once_from_inside_its_tile(cells):
    grid = TileGrid(*cells, tile=24, border=3)
    written = np.zeros(cells[::-1], int)
    span_x, span_y = max(cells[0], 24), max(cells[1], 24)
    for t in grid:
        ox, oy = t.offset
        assert 0 <= t.x and t.x + 24 <= span_x and 0 <= t.y and t.y + 24 <= span_y
        assert 0 <= ox and ox + t.out_w <= 24 and 0 <= oy and oy + t.out_h <= 24
        written[t.out_y:t.out_y + t.out_h, t.out_x:t.out_x + t.out_w] += 1
    assert (written == 1).all()
    assert len(grid) == len(list(grid))


def test_interior_tiles_keep_their_border_and_edge_tiles_snap_inward():
    tiles = list(TileGrid(100, 18, tile=24, border=3))  # one row of tiles
    assert [t.out_x for t in tiles] == [0, 18, 36, 54, 72, 90]
    assert tiles[1].offset == (3, 0)  # full left context
    assert tiles[-1].x == 100 - 24  # last tile shifted inward, not running off the raster
    assert tiles[-1].offset[0] == 90 - 76 and tiles[-1].out_w == 10


def test_border_larger_than_tile_is_a_clear_error():
    with pytest.raises(UserError, match="larger tile or a smaller border"):
        TileGrid(10, 10, tile=6, border=3)
