"""Raster input on real imagery: band choice, stretch, validity, warping, bad files."""

import numpy as np
import pytest
from osgeo import gdal, osr

from coredino.errors import UserError
from coredino.raster import open_raster_source


def epsg(wkt: str) -> int:
    srs = osr.SpatialReference(wkt=wkt)
    srs.AutoIdentifyEPSG()
    return int(srs.GetAuthorityCode(None))


def test_utm_rgb_is_read_on_its_own_grid(demo_raster):
    r = open_raster_source(str(demo_raster), 0.25, multiple_of=16)
    src = gdal.Open(str(demo_raster))
    gt = src.GetGeoTransform()
    assert epsg(r.grid.wkt) == 32721
    assert (r.grid.x0, r.grid.y0, r.grid.gsd) == pytest.approx((gt[0], gt[3], 0.25))
    assert (r.grid.width, r.grid.height) == (1536, 1536)
    rgb, valid = r.read(100, 200, 64, 32)
    assert valid.all()
    # same grid, same pixels: values are the source bytes / 255
    expected = src.ReadAsArray(100, 200, 64, 32).astype(np.float32) / 255
    np.testing.assert_allclose(rgb, expected, atol=1e-6)


def test_black_collar_without_declared_nodata_is_invalid(data):
    path = str(data / "caranavi_collar_0p25m.tif")
    r = open_raster_source(path, 0.25, multiple_of=16)
    assert r.zero_is_nodata
    src = gdal.Open(path).ReadAsArray()
    rgb, valid = r.read(0, 0, src.shape[2], src.shape[1])
    np.testing.assert_array_equal(valid, src.any(axis=0))
    assert 0.5 < valid.mean() < 0.8
    assert not valid[:, :50].any() and valid[:, -50:].all()  # collar on the left, town on the right
    assert (rgb[:, ~valid] == 0).all()


def test_geographic_uint16_pan_is_stretched_replicated_and_warped_to_utm(data):
    r = open_raster_source(str(data / "lasvegas_pan_uint16_4326.tif"), 0.25, multiple_of=16)
    assert epsg(r.grid.wkt) == 32611  # Las Vegas: UTM 11N
    assert r.bands == [1, 1, 1] and r.stretch is not None
    assert 0.2 < r.source_gsd < 0.35
    rgb, valid = r.read(0, 0, r.grid.width, r.grid.height)
    assert valid.mean() > 0.85
    np.testing.assert_array_equal(rgb[0], rgb[1])
    v = rgb[0][valid]
    assert v.min() == 0 and v.max() == 1
    assert 0.005 < (v == 1).mean() < 0.05  # 98th percentile: ~2% saturate
    assert 0.2 < v.mean() < 0.8


def test_four_band_rgbn_uses_rgb_and_honours_declared_nodata(data):
    path = str(data / "naip_rgbn_5m.tif")
    r = open_raster_source(path, 5.0)
    assert r.bands == [1, 2, 3] and not r.zero_is_nodata and r.stretch is None
    assert not r.warnings
    nir = open_raster_source(path, 5.0, bands=(4, 3, 2))
    a, _ = r.read(0, 0, 64, 64)
    b, _ = nir.read(0, 0, 64, 64)
    np.testing.assert_allclose(b[1], a[2])  # green slot of 4,3,2 is band 3
    assert open_raster_source(path, 0.25).warnings[0].endswith("20x coarser than the codebook's 0.25 m; expect blurry classes")


def test_web_mercator_is_rewarped_to_true_ground_metres(data):
    r = open_raster_source(str(data / "kampala_0p30m_3857.tif"), 0.25)
    assert epsg(r.grid.wkt) == 32636  # Kampala: UTM 36N
    # EPSG:3857 0.2986 m at 0.35 N is ~0.2986 m on the ground; 256 px -> ~306 px at 0.25 m
    assert r.grid.width == pytest.approx(256 * 0.2986 / 0.25, abs=3)


def test_tiny_raster_is_padded_to_one_tile(tmp_path, demo_raster):
    tiny = str(tmp_path / "tiny.tif")
    gdal.Translate(tiny, str(demo_raster), srcWin=[0, 0, 20, 20])
    r = open_raster_source(tiny, 0.25, pad_to=384, multiple_of=16)
    assert (r.grid.width, r.grid.height) == (32, 32)
    rgb, valid = r.read(0, 0, 384, 384)
    assert valid[:20, :20].all() and valid.sum() == 400


def test_bad_inputs_give_one_line_errors_naming_the_file(tmp_path, demo_raster):
    corrupt = tmp_path / "corrupt.tif"
    corrupt.write_bytes(demo_raster.read_bytes()[:5000])
    text = tmp_path / "notes.tif"
    text.write_text("not a raster")
    nocrs = str(tmp_path / "nocrs.tif")
    ds = gdal.GetDriverByName("GTiff").Create(nocrs, 64, 64, 3, gdal.GDT_Byte)
    ds.GetRasterBand(1).Fill(120)
    ds = None
    cases = {str(tmp_path / "missing.tif"): "no such file", str(corrupt): "GDAL cannot read it",
             str(text): "GDAL cannot read it", nocrs: "gdal_edit.py -a_srs"}
    for path, expected in cases.items():
        with pytest.raises(UserError) as err:
            open_raster_source(path, 0.25)
        message = str(err.value)
        assert message.startswith(path) and expected in message and "\n" not in message
    with pytest.raises(UserError, match="--bands 5"):
        open_raster_source(str(demo_raster), 0.25, bands=(5,))
