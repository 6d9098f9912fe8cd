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


@pytest.mark.parametrize("cells", [(192, 192), (100, 37), (24, 24), (5, 3), (49, 200), (176, 176)])
def test_blended_weights_sum_to_one_and_fall_towards_tile_edges(cells):
    grid = TileGrid(*cells, tile=48, border=6, blend=True)
    assert grid.stride == 30  # 5/6 of the 36-cell core
    span_x, span_y = max(cells[0], 48), max(cells[1], 48)
    total = np.zeros((span_y, span_x))
    for t in grid:
        assert 0 <= t.x and t.x + 48 <= span_x and 0 <= t.y and t.y + 48 <= span_y
        w = grid.weights(t)
        total[t.y:t.y + 48, t.x:t.x + 48] += w
        if len(grid.columns) > 1 and 0 < t.x < span_x - 48:  # interior column: tapers both ways
            assert w[24, 0] < 0.1 * w[24, 24] and w[24, -1] < 0.1 * w[24, 24]
    np.testing.assert_allclose(total[:cells[1], :cells[0]], 1.0, atol=1e-6)


def test_blended_layout_costs_at_most_1_44x_the_cut_layout_on_large_rasters():
    cut, blended = TileGrid(2000, 2000, 48, 6), TileGrid(2000, 2000, 48, 6, blend=True)
    assert len(blended) / len(cut) == pytest.approx((36 / 30) ** 2, rel=0.02)


def test_seams_are_where_the_dominant_tile_changes():
    cut = TileGrid(100, 100, 24, 3)
    assert list(np.flatnonzero(np.diff(cut.owners(100)))) == [17, 35, 53, 71, 89]  # core borders
    blended = TileGrid(100, 100, 24, 3, blend=True)
    starts = [x for x, _, _ in blended.columns]
    # the middle of each overlap
    mids = [(b + a + 24) / 2 for a, b in zip(starts, starts[1:])]
    seams = np.flatnonzero(np.diff(blended.owners(100))) + 1
    assert np.abs(seams - mids).max() <= 1


def test_bands_of_cut_tiles_cover_the_grid_and_blended_tiles_are_not_split():
    from coredino.tiling import TileBand
    grid = TileGrid(100, 70, 24, 3)
    bands = [TileBand.of(grid, r, min(r + 2, len(grid.rows))) for r in range(0, len(grid.rows), 2)]
    assert [tile for band in bands for tile in band] == list(grid)
    assert bands[0].out_rows[0] == 0 and bands[-1].out_rows[1] == grid.cells_y
    with pytest.raises(UserError, match="blended tiles cannot be split"):
        TileBand.of(TileGrid(100, 70, 24, 3, blend=True), 0, 1)
