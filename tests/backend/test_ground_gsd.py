"""True ground resolution: a projected CRS whose metres are not ground metres at the raster
(World Mercator away from the equator, polar stereographic far from its standard parallel) is
re-warped to UTM, so the model sees the codebook's GSD and the output's cell size is honest."""

import math

import pytest
from osgeo import gdal, osr

from coredino.engine import classify
from coredino.params import ClassifyOptions, ClassifyParams
from coredino.raster import MAX_SCALE_ERROR, open_raster_source, scale_error


def reproject(src, dst, epsg: int) -> str:
    gdal.Warp(str(dst), str(src), dstSRS=f"EPSG:{epsg}", resampleAlg="bilinear")
    return str(dst)


def epsg(wkt: str) -> int:
    srs = osr.SpatialReference(wkt=wkt)
    srs.AutoIdentifyEPSG()
    return int(srs.GetAuthorityCode(None))


def valid_area(path: str) -> float:
    """m² of valid pixels on the grid ``open_raster_source`` reads at 0.25 m (ground metres if honest)."""
    r = open_raster_source(path, 0.25)
    _, valid = r.read(0, 0, r.grid.width, r.grid.height)
    r.close()
    return float(valid.sum()) * 0.25 ** 2


@pytest.mark.parametrize("scene, epsg_code, lat, utm", [
    ("caranavi_river_0p25m.tif", 3395, -15.8, 32719),  # World Mercator: 3.9 % too long at 15.8 S
    ("montevideo_0p25m_demo.tif", 3395, -34.8, 32721),  # 22 % too long at 34.8 S
    ("caranavi_river_0p25m.tif", 3031, -15.8, 32719),  # Antarctic polar stereographic (71 S): 53 %
])
def test_stretched_projection_is_rewarped_to_utm_at_ground_gsd(tmp_path, data, demo_raster, scene,
                                                               epsg_code, lat, utm):
    source = demo_raster if scene.startswith("montevideo") else data / scene
    moved = reproject(source, tmp_path / f"{epsg_code}.tif", epsg_code)
    ds = gdal.Open(moved)
    assert scale_error(ds, ds.GetSpatialRef(), ds.GetGeoTransform()) > MAX_SCALE_ERROR
    ds = None
    r = open_raster_source(moved, 0.25)
    assert epsg(r.grid.wkt) == utm and r.grid.gsd == 0.25
    r.close()
    # the same ground area as the original, not the stretched metres (+8 % .. +134 % here)
    assert valid_area(moved) == pytest.approx(valid_area(str(source)), rel=0.01)


def test_projection_true_to_scale_at_the_raster_is_kept(tmp_path, data):
    # World Mercator at 0.35 N (Kampala): 0.002 % off, so its metres are ground metres
    moved = reproject(data / "kampala_0p30m_3857.tif", tmp_path / "3395.tif", 3395)
    r = open_raster_source(moved, 0.25)
    assert epsg(r.grid.wkt) == 3395
    r.close()


def test_output_cell_size_is_ground_metres(tmp_path, data, codebook):
    moved = reproject(data / "caranavi_river_0p25m.tif", tmp_path / "3395.tif", 3395)
    out = tmp_path / "classes.tif"
    classify(ClassifyParams(moved, str(out), ClassifyOptions(codebook=codebook, device="cpu")))
    ds = gdal.Open(str(out))
    gt = ds.GetGeoTransform()
    assert epsg(ds.GetProjection()) == 32719
    assert math.isclose(gt[1], 2.0) and math.isclose(-gt[5], 2.0)  # 8 px patches at 0.25 m
    # 256 m of ground across (1024 px at 0.25 m, rotated a little by the round trip): 128 cells
    # of 2 m, not the 133 that the stretched Mercator metres would give
    assert 128 <= ds.RasterXSize <= 132
    ds = None
