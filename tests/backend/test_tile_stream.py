"""The tile loop: windows cut on the device equal per-tile reads, empty canvas is skipped unread,
several readers and torch.compile give the same classes."""

from pathlib import Path

import numpy as np
import pytest
import torch
from osgeo import gdal

from coredino import tile_stream
from coredino.engine import classify
from coredino.params import ClassifyOptions, ClassifyParams
from coredino.raster import PixelScale, RasterSource, open_raster_source
from coredino.tile_stream import MIN_VALID_FRACTION, TilePlan, _cut, _plan, _read_run, plan_tiles
from coredino.tiling import tile_grid

PATCH, TILE, BORDER = 8, 40, 4  # the session codebook's recipe (core-dino n, layer 16)


def mosaic(path: Path, size: int, placements: list[tuple[Path, int, int]]) -> str:
    """A VRT canvas of ``size`` x ``size`` px (0.25 m, the first source's CRS) holding each
    source at a pixel offset; the rest of the canvas is empty (reads as 0, no nodata declared)."""
    ref = gdal.Open(str(placements[0][0]))
    gt = ref.GetGeoTransform()
    bands = []
    for b, colour in ((1, "Red"), (2, "Green"), (3, "Blue")):
        sources = []
        for src, x, y in placements:
            ds = gdal.Open(str(src))
            w, h = ds.RasterXSize, ds.RasterYSize
            sources.append(f'<SimpleSource><SourceFilename relativeToVRT="0">{src}</SourceFilename>'
                           f'<SourceBand>{b}</SourceBand><SrcRect xOff="0" yOff="0" xSize="{w}" ySize="{h}"/>'
                           f'<DstRect xOff="{x}" yOff="{y}" xSize="{w}" ySize="{h}"/></SimpleSource>')
        bands.append(f'<VRTRasterBand dataType="Byte" band="{b}"><ColorInterp>{colour}</ColorInterp>'
                     f'{"".join(sources)}</VRTRasterBand>')
    path.write_text(f'<VRTDataset rasterXSize="{size}" rasterYSize="{size}"><SRS>{ref.GetProjection()}'
                    f'</SRS><GeoTransform>{gt[0]}, 0.25, 0, {gt[3]}, 0, -0.25</GeoTransform>'
                    f'{"".join(bands)}</VRTDataset>')
    return str(path)


@pytest.fixture(scope="module")
def canvas(tmp_path_factory, demo_raster, data) -> str:
    """2400 x 2400 px with the demo (1536 px) and the Caranavi collar crop (1280 x 1024) in it."""
    return mosaic(tmp_path_factory.mktemp("mosaic") / "canvas.vrt", 2400,
                  [(demo_raster, 100, 60), (data / "caranavi_collar_0p25m.tif", 1050, 1350)])


@pytest.mark.parametrize("name", ["caranavi_collar_0p25m.tif", "lasvegas_pan_uint16_4326.tif",
                                  "naip_rgbn_5m.tif"])
def test_tiles_cut_from_one_window_equal_per_tile_reads(data, name):
    raster = open_raster_source(str(data / name), 0.25, pad_to=TILE * PATCH, multiple_of=PATCH)
    grid = tile_grid(raster, PATCH, TILE, BORDER)
    side = TILE * PATCH
    scale = PixelScale(raster.stretch)
    seen = 0
    for planned in list(_plan(TilePlan(grid, None, 1)))[:6]:
        run = _read_run(raster, grid, PATCH, planned, pin=False)
        if not run.tiles:
            continue
        pixels = _cut(scale(run.values, run.valid), run.cols, side)  # the GPU path, on the CPU
        by_reader = _read_run(raster, grid, PATCH, planned, pin=False, cut=True)  # CPU path
        assert by_reader.tiles == run.tiles
        for i, tile in enumerate(run.tiles):
            rgb, valid = raster.read(tile.x * PATCH, tile.y * PATCH, side, side)
            np.testing.assert_array_equal(pixels[i].numpy(), rgb)
            np.testing.assert_array_equal(by_reader.pixels[i].numpy(), rgb)
            cells = valid.reshape(TILE, PATCH, TILE, PATCH).mean(axis=(1, 3)) >= MIN_VALID_FRACTION
            np.testing.assert_array_equal(run.cells[i], cells)
            seen += 1
    assert seen >= 4
    raster.close()


def test_coverage_is_conservative_and_skips_the_empty_canvas(canvas):
    raster = open_raster_source(canvas, 0.25, pad_to=TILE * PATCH, multiple_of=PATCH)
    cov = raster.coverage(PATCH)
    g = raster.grid
    assert cov is not None and cov.shape == (g.height // PATCH, g.width // PATCH)
    _, valid = raster.read(0, 0, g.width, g.height)
    has_valid = valid.reshape(cov.shape[0], PATCH, cov.shape[1], PATCH).any(axis=(1, 3))
    assert not (has_valid & ~cov).any()  # never drops a cell that holds a valid pixel
    assert has_valid.mean() < cov.mean() < 0.85  # but prunes empty canvas (256 px granularity)
    raster.close()
    demo = open_raster_source(str(Path(__file__).parents[2] / "resources" / "montevideo_0p25m_demo.tif"), 0.25)
    assert demo.coverage(PATCH) is None  # a plain GeoTIFF full of data: nothing to prune


@pytest.mark.parametrize("blend", [False, True])
def test_plan_skips_uncovered_tiles_without_reading_them(canvas, blend):
    raster = open_raster_source(canvas, 0.25, pad_to=TILE * PATCH, multiple_of=PATCH)
    grid = tile_grid(raster, PATCH, TILE, BORDER, blend=blend)
    plan = plan_tiles(raster, grid, PATCH)
    runs = list(_plan(plan))
    planned = [t for tiles in runs for t in tiles]
    assert len(planned) == plan.tiles <= len(grid)
    if not blend:  # big cut tiles on a small canvas: a few are pruned (blended ones all overlap data)
        assert plan.tiles < len(grid)
    assert all(len(tiles) <= tile_stream.MAX_RUN and len({t.y for t in tiles}) <= 1 for tiles in runs)
    # every tile holding a valid cell where it writes is planned, in grid order
    _, valid = raster.read(0, 0, raster.grid.width, raster.grid.height)
    cells = valid.reshape(grid.cells_y, PATCH, grid.cells_x, PATCH).any(axis=(1, 3))
    needed = [t for t in grid if cells[t.out_y:t.out_y + t.out_h, t.out_x:t.out_x + t.out_w].any()]
    assert set(needed) <= set(planned)
    assert planned == [t for t in grid if t in set(planned)]
    raster.close()


def test_skipping_and_several_readers_change_nothing(tmp_path, canvas, codebook, monkeypatch):
    def run(name):
        out = tmp_path / f"{name}.tif"
        result = classify(ClassifyParams(canvas, str(out), ClassifyOptions(codebook=codebook, batch_size=5)))
        ds = gdal.Open(str(out))
        ids = ds.ReadAsArray()
        ds = None
        return result, ids

    fast, ids = run("default")
    monkeypatch.setattr(RasterSource, "coverage", lambda self, cell: None)
    full, ids_full = run("no_coverage")
    monkeypatch.setenv("COREDINO_READERS", "3")
    many, ids_many = run("three_readers")
    np.testing.assert_array_equal(ids, ids_full)
    np.testing.assert_array_equal(ids, ids_many)
    assert fast.classes == full.classes == many.classes
    assert fast.tiles == full.tiles == many.tiles
    assert 0.3 < (ids != 255).mean() < 0.7


def test_compile_option_end_to_end(tmp_path, data):
    """torch.compile (inductor, on the CPU here) gives the classes of eager mode."""
    from transformers import Dinov2WithRegistersConfig, Dinov2WithRegistersModel

    from coredino.codebook import Codebook
    from coredino.encoders import ModelSpec
    from coredino.engine import fit_codebook
    from coredino.params import FitParams

    folder = tmp_path / "dinov2-reg-tiny"
    torch.manual_seed(0)
    Dinov2WithRegistersModel(Dinov2WithRegistersConfig(
        hidden_size=48, num_hidden_layers=2, num_attention_heads=2, intermediate_size=96,
        patch_size=14, image_size=224, num_register_tokens=4)).save_pretrained(folder)
    image = str(data / "caranavi_collar_0p25m.tif")
    book = str(tmp_path / "dino.codebook.npz")
    fit_codebook(FitParams([image], book, ModelSpec("dinov2", str(folder), "", None), gsd=0.25,
                           tile=16, border=3, k=12, max_features=4000, niter=5, device="cpu"))
    assert Codebook.load(book).k == 12
    outs = {}
    for flag in (False, True):
        out = tmp_path / f"compiled_{flag}.tif"
        classify(ClassifyParams(image, str(out), ClassifyOptions(codebook=book, batch_size=16,
                                                                 compile=flag, device="cpu")))
        ds = gdal.Open(str(out))
        outs[flag] = ds.ReadAsArray()
        ds = None
    assert (outs[True] == outs[False]).mean() > 0.99
    assert (outs[True] != 255).mean() > 0.5
