"""Adding a result: only the classes present in the legend, in a group above the source layer."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from osgeo import gdal, osr
from qgis.core import QgsLayerTreeGroup, QgsRasterLayer

from coredino_qgis.results import add_classified_layer, group_name, style_with_present_classes

DATA = Path(__file__).resolve().parents[2] / "tests" / "data"


def write_ids(path: Path, ids: np.ndarray) -> None:
    """A UInt16 GeoTIFF of cluster ids with a colour table, as the backend writes (without the .qml)."""
    ds = gdal.GetDriverByName("GTiff").Create(str(path), ids.shape[1], ids.shape[0], 1, gdal.GDT_UInt16)
    ds.SetGeoTransform((500000, 4, 0, 8000000, 0, -4))
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(32719)
    ds.SetProjection(srs.ExportToWkt())
    table = gdal.ColorTable()
    for i in range(1200):
        table.SetColorEntry(i, (i % 256, (7 * i) % 256, (13 * i) % 256, 255))
    band = ds.GetRasterBand(1)
    band.SetColorTable(table)
    band.SetNoDataValue(65535)
    band.WriteArray(ids)
    band, ds = None, None


def test_without_sidecar_only_present_classes_are_listed_largest_first(clean_project, tmp_path):
    path = tmp_path / "ids.tif"
    write_ids(path, np.array([[3, 7, 7, 1000], [7, 7, 3, 65535]], dtype=np.uint16))
    layer = QgsRasterLayer(str(path), "ids")
    assert len(layer.renderer().classes()) > 1000  # QGIS's own style lists the whole colour table
    assert style_with_present_classes(layer, {"7": 4, "3": 2, "1000": 1})
    classes = layer.renderer().classes()
    assert [(c.value, c.label) for c in classes] == [
        (7, "cluster 7 (57.1%)"), (3, "cluster 3 (28.6%)"), (1000, "cluster 1000 (14.3%)")]
    assert (classes[0].color.red(), classes[0].color.green(), classes[0].color.blue()) == (7, 49, 91)

    unknown = QgsRasterLayer(str(path), "ids")
    assert style_with_present_classes(unknown, None)  # counts unknown: scanned from the raster
    assert sorted(c.value for c in unknown.renderer().classes()) == [3, 7, 1000]


def test_result_goes_into_a_group_above_its_source_and_replaces_a_previous_run(clean_project, tmp_path):
    project = clean_project
    other = QgsRasterLayer(str(DATA / "kampala_0p30m_3857.tif"), "other")
    source = QgsRasterLayer(str(DATA / "caranavi_collar_0p25m.tif"), "caranavi")
    project.addMapLayers([other, source])
    subgroup = project.layerTreeRoot().addGroup("imagery")
    subgroup.addLayer(source)
    project.layerTreeRoot().removeChildNode(project.layerTreeRoot().findLayer(source.id()))
    path = tmp_path / "ids.tif"
    write_ids(path, np.array([[3, 7], [7, 7]], dtype=np.uint16))

    first = add_classified_layer(str(path), source, {"3": 1, "7": 3})
    group = subgroup.children()[0]
    assert isinstance(group, QgsLayerTreeGroup) and group.name() == group_name("caranavi") == "caranavi — coredino"
    assert subgroup.children()[1].layerId() == source.id()
    assert [n.layer() for n in group.findLayers()] == [first]
    assert first.name() == "ids" and first.renderer().type() == "paletted"

    first_id = first.id()
    second = add_classified_layer(str(path), source, {"3": 1, "7": 3})  # same output again
    assert [n.layer() for n in group.findLayers()] == [second]
    assert project.mapLayer(first_id) is None  # the previous layer was removed (and deleted)
    assert project.mapLayer(source.id()) is source and project.mapLayer(other.id()) is other
