"""Direct reads for identity grids: the same pixels and masks as the bilinear warped VRT.

Real imagery (a crop of the Caranavi test raster, EPSG:32719 at 0.25 m, the default codebook's
GSD) with the ways a raster declares validity: nodata, an alpha band with partial values, an
internal mask, float32 with NaN/inf, uint16, one band.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from osgeo import gdal

from coredino.raster import open_raster_source

DATA = Path(__file__).resolve().parents[1] / "data"
RIVER = DATA / "caranavi_river_0p25m.tif"
GSD = 0.25
WINDOW = 96  # read windows of this size over the whole padded grid, off the raster's edges too


def _image() -> tuple[np.ndarray, tuple, str]:
    ds = gdal.Open(str(RIVER))
    return ds.ReadAsArray(0, 0, 260, 300), ds.GetGeoTransform(), ds.GetProjection()


def _write(path: Path, bands: np.ndarray, dtype: int, nodata=None, alpha=None, mask=None,
           geotransform=None) -> str:
    _, gt, wkt = _image()
    count = len(bands) + (alpha is not None)
    ds = gdal.GetDriverByName("GTiff").Create(str(path), bands.shape[2], bands.shape[1], count, dtype,
                                              ["TILED=YES", "BLOCKXSIZE=128", "BLOCKYSIZE=128"])
    ds.SetGeoTransform(geotransform or gt)
    ds.SetProjection(wkt)
    for i, band in enumerate(bands):
        out = ds.GetRasterBand(i + 1)
        out.WriteArray(band)
        out.SetColorInterpretation((gdal.GCI_RedBand, gdal.GCI_GreenBand, gdal.GCI_BlueBand)[i])
        if nodata is not None:
            out.SetNoDataValue(nodata)
    if alpha is not None:
        ds.GetRasterBand(count).WriteArray(alpha)
        ds.GetRasterBand(count).SetColorInterpretation(gdal.GCI_AlphaBand)
    if mask is not None:
        ds.CreateMaskBand(gdal.GMF_PER_DATASET)
        ds.GetRasterBand(1).GetMaskBand().WriteArray(mask)
    ds = None
    return str(path)


def _holes(shape: tuple, seed: int) -> np.ndarray:
    """A fixed pattern of invalid pixels: scattered pixels and a block."""
    holes = np.random.default_rng(seed).random(shape) < 0.05
    holes[50:80, 50:90] = True
    return holes


def _variants(tmp: Path) -> dict[str, str]:
    pixels = _image()[0]
    shape = pixels.shape[1:]
    nodata = pixels.copy()
    for i in range(3):
        nodata[i][_holes(shape, i)] = 7  # per band: some pixels valid in one band only
    alpha = np.where(_holes(shape, 3), 0, 255).astype(np.uint8)
    alpha[100:110] = np.arange(260) % 5  # partial transparency, 0 included
    mask = np.where(_holes(shape, 4), 0, 255).astype(np.uint8)
    floats = pixels.astype(np.float32) * np.float32(3.7) + np.float32(0.123)
    floats[0, 10:20, 10:20] = np.nan
    floats[1, 30, ::3] = np.inf
    floats[2, 5, ::4] = 1e30
    floats[:, 60:70] = -9999
    floats[0][_holes(shape, 5)] = -9999
    wide = (pixels.astype(np.uint16) * 200 + 17).astype(np.uint16)
    wide[:, :, :9] = 0
    return {
        "plain": _write(tmp / "plain.tif", pixels, gdal.GDT_Byte),
        "one band": _write(tmp / "gray.tif", pixels[1:2], gdal.GDT_Byte),  # replicated to R, G, B
        "nodata": _write(tmp / "nodata.tif", nodata, gdal.GDT_Byte, nodata=7),
        "alpha": _write(tmp / "alpha.tif", pixels, gdal.GDT_Byte, alpha=alpha),
        "alpha+nodata": _write(tmp / "alpha_nodata.tif", nodata, gdal.GDT_Byte, nodata=7, alpha=alpha),
        "mask": _write(tmp / "mask.tif", pixels, gdal.GDT_Byte, mask=mask),
        "float32": _write(tmp / "float32.tif", floats, gdal.GDT_Float32),
        "float32+nodata": _write(tmp / "float32_nodata.tif", floats, gdal.GDT_Float32, nodata=-9999),
        "uint16+nodata": _write(tmp / "uint16.tif", wide, gdal.GDT_UInt16, nodata=0),
    }


@pytest.fixture(scope="module")
def variants(tmp_path_factory) -> dict[str, str]:
    return _variants(tmp_path_factory.mktemp("direct_read"))


def _windows(warped, size: int):
    """Windows tiling the padded grid (beyond the raster where the grid is padded or starts
    before it), shifted off the tile lattice."""
    width, height = warped._warped.RasterXSize, warped._warped.RasterYSize
    for y in range(0, height - size + 1, size - 13):
        for x in range(0, width - size + 1, size - 11):
            yield x, y, size, size


def _assert_same_reads(direct, warped) -> None:
    for window in _windows(warped, WINDOW):
        (a, mask_a), (b, mask_b) = direct.read_raw(*window), warped.read_raw(*window)
        assert a.dtype == b.dtype and a.tobytes() == b.tobytes(), window
        assert np.array_equal(mask_a, mask_b), window


@pytest.mark.parametrize("origin", [(0, 0), (-37, -21), (50, 30)])
@pytest.mark.parametrize("name", ["plain", "one band", "nodata", "alpha", "alpha+nodata", "mask",
                                  "float32", "float32+nodata", "uint16+nodata"])
def test_direct_read_is_the_warped_read_byte_for_byte(variants, name, origin):
    direct = open_raster_source(variants[name], GSD, pad_to=384, multiple_of=8, origin=origin)
    warped = open_raster_source(variants[name], GSD, pad_to=384, multiple_of=8, origin=origin, warp=True)
    assert direct._direct is not None and direct._warped is None
    assert warped._direct is None and warped._warped is not None
    assert direct.grid == warped.grid and direct.zero_is_nodata == warped.zero_is_nodata
    _assert_same_reads(direct, warped)
    valid = np.concatenate([direct.read_raw(*w)[1].ravel() for w in _windows(warped, WINDOW)])
    assert valid.any() and not valid.all()  # windows off the edges (and holes) were compared


def test_a_pixel_size_a_hair_off_reads_directly_only_for_integer_pixels(tmp_path):
    """0.25 m x (1 + 3e-9): under 1e-6 px off over the raster. 8-bit values and masks come out
    the same as the warper's (its bilinear weights round away), float32 values would not."""
    pixels, gt, _ = _image()
    off = (gt[0], gt[1] * (1 + 3e-9), 0.0, gt[3], 0.0, gt[5] * (1 + 3e-9))
    nodata = pixels.copy()
    nodata[0][_holes(nodata.shape[1:], 0)] = 7
    byte = _write(tmp_path / "byte.tif", nodata, gdal.GDT_Byte, nodata=7, geotransform=off)
    floats = _write(tmp_path / "float.tif", pixels.astype(np.float32) / 7, gdal.GDT_Float32,
                    geotransform=off)
    direct = open_raster_source(byte, GSD, pad_to=384, multiple_of=8, origin=(-9, -3))
    assert direct._direct is not None
    _assert_same_reads(direct, open_raster_source(byte, GSD, pad_to=384, multiple_of=8,
                                                  origin=(-9, -3), warp=True))
    assert open_raster_source(floats, GSD, pad_to=384)._direct is None


def test_reopen_keeps_the_read_path(variants):
    direct = open_raster_source(variants["nodata"], GSD, pad_to=96)
    warped = open_raster_source(variants["nodata"], GSD, pad_to=96, warp=True)
    again, again_warped = direct.reopen(), warped.reopen()
    assert again._direct is not None and again_warped._direct is None
    for a, b in ((direct, again), (warped, again_warped), (direct, warped)):
        assert a.read_raw(5, 5, 96, 96)[0].tobytes() == b.read_raw(5, 5, 96, 96)[0].tobytes()
    cover, cover_warped = direct.coverage(16), warped.coverage(16)
    assert (cover is None and cover_warped is None) or np.array_equal(cover, cover_warped)


@pytest.mark.parametrize("case", ["other gsd", "non-square pixels", "rotated", "other crs"])
def test_grids_that_are_not_the_source_grid_keep_the_warp(tmp_path, case):
    pixels, gt, _ = _image()
    path, gsd = str(RIVER), GSD
    if case == "other gsd":
        gsd = 0.3
    elif case == "non-square pixels":  # (the grid starts on the source's corner: never a fraction)
        path = _write(tmp_path / "tall.tif", pixels, gdal.GDT_Byte,
                      geotransform=(gt[0], gt[1], 0.0, gt[3], 0.0, gt[5] * 1.04))
    elif case == "rotated":
        path = _write(tmp_path / "rotated.tif", pixels, gdal.GDT_Byte,
                      geotransform=(gt[0], gt[1], 0.01, gt[3], 0.01, gt[5]))
    else:
        path = str(DATA / "kampala_0p30m_3857.tif")  # Web Mercator: read in auto-UTM
    raster = open_raster_source(path, gsd, pad_to=96)
    assert raster._direct is None and raster._warped is not None
    values, valid = raster.read_raw(0, 0, 96, 96)
    assert values.shape == (3, 96, 96) and valid.any()
