"""The explore dock's cluster panel end to end (real QGIS headless, REAL backend): cluster areas,
named classes, class map with its areas CSV, polygons in a GeoPackage, classes JSON."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from osgeo import gdal
from qgis.core import QgsProject, QgsRasterLayer

from plugin_test_helpers import spin_until

from coredino_qgis.backend_process import BackendLauncher
from coredino_qgis.explore_dock import ExploreDock


@pytest.fixture
def panel(qgis_iface, use_backend, clean_project, classified):
    layer = QgsRasterLayer(str(classified), "kampala_classes")
    QgsProject.instance().addMapLayer(layer)
    launcher = BackendLauncher()
    dock = ExploreDock(qgis_iface, launcher)
    dock.layer_combo.setLayer(layer)
    finished = []
    dock.job_finished.connect(lambda message, level: finished.append(message))
    yield dock.cluster_panel, dock, classified, finished
    dock.shutdown()
    dock.deleteLater()
    launcher.deleteLater()


def test_cluster_panel_reclassifies_and_polygonizes_end_to_end(panel, tmp_path):
    cluster_panel, dock, path, finished = panel
    assert spin_until(lambda: cluster_panel.stats is not None, timeout=30), dock.status_label.text()
    ids = gdal.Open(str(path)).ReadAsArray()
    cell = gdal.Open(str(path)).GetGeoTransform()[1] ** 2
    present, counts = np.unique(ids[ids != 65535], return_counts=True)
    table = cluster_panel.table
    assert table.rowCount() == len(present)
    largest = {int(v) for v in present[counts == counts.max()]}  # the largest area may be a tie
    assert int(table.item(0, 0).text()) in largest and float(table.item(0, 1).text()) == pytest.approx(
        counts.max() * cell / 1e4, abs=1e-3)
    ranked = [int(table.item(r, 0).text()) for r in range(table.rowCount())]

    cluster_panel.select_values(ranked[:3])
    assert sorted(cluster_panel.selected_values()) == sorted(ranked[:3])
    assert [c.value for c in dock.highlight.renderer().classes()] == sorted(ranked[:3])  # selection highlighted
    cluster_panel.name_edit.setText("roofs")
    cluster_panel.assign()
    cluster_panel.select_values(ranked[3:5] + ranked[:1])  # moving a cluster takes it out of roofs
    cluster_panel.name_edit.setText("trees")
    cluster_panel.assign()
    assert cluster_panel.classes == {"roofs": sorted(ranked[1:3]), "trees": sorted(ranked[3:5] + ranked[:1])}
    assert cluster_panel.class_list.count() == 2

    cluster_panel.make_class_map()
    assert spin_until(lambda: finished, timeout=60), dock.status_label.text()
    assert finished[-1].startswith("Class map added"), finished
    named = cluster_panel.class_layer
    assert named.source() == str(path.with_name("kampala_classes_named.tif"))
    assert named.renderer().type() == "paletted"
    assert [(c.value, c.label) for c in named.renderer().classes()] == [(0, "unclassified"), (1, "roofs"),
                                                                         (2, "trees")]
    values = gdal.Open(named.source()).ReadAsArray()
    assert np.array_equal(values == 1, np.isin(ids, ranked[1:3]))
    assert np.array_equal(values == 2, np.isin(ids, ranked[3:5] + ranked[:1]))
    with open(path.with_name("kampala_classes_named_areas.csv")) as f:
        rows = {row["class"]: row for row in csv.DictReader(f)}
    assert int(rows["roofs"]["cells"]) == (values == 1).sum()
    assert float(rows["trees"]["area_m2"]) == (values == 2).sum() * cell

    cluster_panel.class_list.setCurrentRow(1)  # trees
    finished.clear()
    cluster_panel.polygonize_selected()
    assert spin_until(lambda: finished, timeout=60), dock.status_label.text()
    polygons = cluster_panel.polygon_layer
    assert polygons is not None and polygons.isValid() and polygons.name() == "trees"
    assert polygons.source().startswith(str(path.with_name("kampala_classes_named_trees.gpkg")))
    areas = [f["area_m2"] for f in polygons.getFeatures()]
    assert len(areas) == polygons.featureCount() > 0
    assert sum(areas) == pytest.approx((values == 2).sum() * cell, rel=1e-3)
    assert sum(f.geometry().area() for f in polygons.getFeatures()) == pytest.approx(sum(areas), rel=1e-6)

    saved = tmp_path / "k.classes.json"
    cluster_panel.save_classes(str(saved))
    body = json.loads(saved.read_text())
    assert body["classes"] == cluster_panel.classes
    assert body["codebook_sha256"] == gdal.Open(str(path)).GetMetadataItem("CODEBOOK_SHA256")
    cluster_panel.classes = {}
    cluster_panel.load_classes(str(saved))
    assert cluster_panel.classes == body["classes"] and cluster_panel.class_list.count() == 2
    body["codebook_sha256"] = "0" * 64
    saved.write_text(json.dumps(body))
    cluster_panel.load_classes(str(saved))
    assert "another codebook" in dock.status_label.text()


def test_class_map_without_classes_is_explained(panel):
    cluster_panel, dock, _, finished = panel
    cluster_panel.make_class_map()
    assert "assign clusters to at least one class" in dock.status_label.text() and not finished
    cluster_panel.polygonize("roofs")
    assert "Make the class map first" in dock.status_label.text()
