"""Layers that are not local files are exported (in a QgsTask) to a GeoTIFF at the codebook's GSD."""

from __future__ import annotations

from pathlib import Path

import pytest
from osgeo import gdal, osr
from qgis.core import QgsApplication, QgsCoordinateReferenceSystem, QgsRasterLayer, QgsRectangle

from plugin_test_helpers import spin_until

from coredino_qgis.layer_export import (
    ExportError,
    LayerExportTask,
    export_layer,
    local_raster_path,
    metric_crs_for,
    plan_export,
)

DATA = Path(__file__).resolve().parents[2] / "tests" / "data"


def epsg(path: Path) -> str:
    ds = gdal.Open(str(path))
    srs = osr.SpatialReference(wkt=ds.GetProjection())
    srs.AutoIdentifyEPSG()
    ds = None
    return f"EPSG:{srs.GetAuthorityCode(None)}"


def test_local_files_go_by_path_other_layers_are_exported(qgis_app, tmp_path):
    path = DATA / "caranavi_collar_0p25m.tif"
    assert local_raster_path(QgsRasterLayer(str(path), "file")) == str(path)
    vrt = tmp_path / "caranavi.vrt"
    gdal.BuildVRT(str(vrt), [str(path)]).FlushCache()
    assert local_raster_path(QgsRasterLayer(str(vrt), "vrt")) == str(vrt)  # a VRT is a local GDAL file
    xyz = QgsRasterLayer("type=xyz&url=http://127.0.0.1:9/{z}/{x}/{y}.png&zmax=19&zmin=0", "tiles", "wms")
    assert local_raster_path(xyz) is None
    del xyz


def test_metric_crs_keeps_projected_metres_and_picks_utm_otherwise(qgis_app):
    utm19s = QgsCoordinateReferenceSystem("EPSG:32719")
    assert metric_crs_for(utm19s, QgsRectangle(0, 0, 1, 1)) == utm19s
    vegas = QgsRectangle(-115.234, 36.141, -115.232, 36.142)
    assert metric_crs_for(QgsCoordinateReferenceSystem("EPSG:4326"), vegas).authid() == "EPSG:32611"
    kampala = QgsRectangle(3627854, 38753, 3627930, 38830)  # web mercator metres are not ground metres
    assert metric_crs_for(QgsCoordinateReferenceSystem("EPSG:3857"), kampala).authid() == "EPSG:32636"


def test_export_of_a_file_forced_through_the_export_path(qgis_app, tmp_path):
    layer = QgsRasterLayer(str(DATA / "caranavi_collar_0p25m.tif"), "caranavi")
    plan = plan_export(layer, layer.extent(), layer.crs(), gsd=1.0, max_pixels=10_000_000)
    out = tmp_path / "export.tif"
    export_layer(layer.dataProvider().clone(), layer.crs(), plan, str(out))
    ds = gdal.Open(str(out))
    x0, dx, _, y1, _, dy = ds.GetGeoTransform()
    assert (dx, dy) == (1.0, -1.0)
    assert (ds.RasterXSize, ds.RasterYSize) == (plan.width, plan.height)
    assert plan.width in (320, 321) and plan.height in (256, 257)  # 1280 x 1024 at 0.25 m, snapped to 1 m
    src = layer.extent()
    assert 0 <= src.xMinimum() - x0 < 1 and 0 <= y1 - src.yMaximum() < 1
    assert 0 <= x0 + plan.width - src.xMaximum() < 1 and 0 <= src.yMinimum() - (y1 - plan.height) < 1
    assert ds.RasterCount == layer.bandCount()
    ds = None
    assert epsg(out) == "EPSG:32719"


def test_export_task_reprojects_web_mercator_to_utm_in_the_background(qgis_app, tmp_path):
    layer = QgsRasterLayer(str(DATA / "kampala_0p30m_3857.tif"), "kampala")
    plan = plan_export(layer, layer.extent(), layer.crs(), gsd=0.25, max_pixels=10_000_000)
    out = tmp_path / "kampala_utm.tif"
    task = LayerExportTask(layer, plan, str(out))
    done = []
    task.done.connect(lambda path, error: done.append((path, error)))
    QgsApplication.taskManager().addTask(task)
    assert spin_until(lambda: done, timeout=60)
    assert done == [(str(out), "")]
    assert epsg(out) == "EPSG:32636"
    ds = gdal.Open(str(out))
    assert ds.GetGeoTransform()[1] == pytest.approx(0.25)
    # 256 px of 0.2986 web-mercator metres at latitude 0.35 deg: about 76 ground metres, 306 cells of 0.25 m
    assert ds.RasterXSize == pytest.approx(306, abs=3)
    ds = None


def test_export_over_the_size_cap_is_refused_with_a_reason(qgis_app):
    layer = QgsRasterLayer(str(DATA / "caranavi_collar_0p25m.tif"), "caranavi")
    with pytest.raises(ExportError, match=r"128[01] x 102[45] pixels at the codebook's 0.25 m \(1.3 million\), more "
                                          r"than the 1.0 million allowed .* zoom in, or raise the limit in Settings"):
        plan_export(layer, layer.extent(), layer.crs(), gsd=0.25, max_pixels=1_000_000)
