"""Real QGIS (headless) opens a classified COG styled with only the classes present."""

import shutil

import pytest
from osgeo import gdal

from coredino.engine import classify
from coredino.params import ClassifyOptions, ClassifyParams

qgis_core = pytest.importorskip("qgis.core")


@pytest.fixture(scope="module")
def classified(tmp_path_factory, data):
    out = tmp_path_factory.mktemp("qgis") / "caranavi_classes.tif"
    result = classify(ClassifyParams(str(data / "caranavi_collar_0p25m.tif"), str(out), ClassifyOptions()))
    return result, out


def test_qgis_loads_the_qml_sidecar_with_only_used_classes(qgis_app, classified):
    result, out = classified
    layer = qgis_core.QgsRasterLayer(str(out), "classes")
    assert layer.isValid()
    renderer = layer.renderer()
    assert renderer.type() == "paletted"
    classes = renderer.classes()
    assert {c.value for c in classes} == set(result.classes)
    assert len(result.classes) < 6000  # far fewer entries than the 65536-entry palette
    ds = gdal.Open(str(out))
    colors = ds.GetRasterBand(1).GetColorTable().Clone()
    first = classes[0]
    assert (first.color.red(), first.color.green(), first.color.blue()) == colors.GetColorEntry(int(first.value))[:3]
    assert result.classes[int(first.value)] == max(result.classes.values())  # largest class first
    gt = ds.GetGeoTransform()
    extent = layer.extent()
    assert extent.xMinimum() == pytest.approx(gt[0]) and extent.yMaximum() == pytest.approx(gt[3])
    assert extent.width() == pytest.approx(gt[1] * ds.RasterXSize)
    assert layer.crs().authid() == "EPSG:32719"
    ds = None


def test_without_the_sidecar_qgis_would_list_the_whole_palette(qgis_app, classified, tmp_path):
    _, out = classified
    bare = tmp_path / "bare.tif"
    shutil.copy(out, bare)  # no .qml beside it
    layer = qgis_core.QgsRasterLayer(str(bare), "bare")
    assert layer.renderer().type() == "paletted"
    assert len(layer.renderer().classes()) >= 6000  # the reason the sidecar exists
