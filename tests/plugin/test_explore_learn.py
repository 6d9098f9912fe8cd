"""The explore dock's Learn tab, detail slider and cluster table end to end (real QGIS headless,
REAL backend): click examples, learn, click again, learn again; coarser views; sorted, searched
and map-selected clusters."""

from __future__ import annotations

import numpy as np
import pytest
from osgeo import gdal
from qgis.core import QgsPointXY, QgsProject, QgsRasterLayer

from plugin_test_helpers import spin_until

from coredino_qgis.backend_process import BackendLauncher
from coredino_qgis.explore_dock import ExploreDock

ROOT = __import__("pathlib").Path(__file__).resolve().parents[2]


@pytest.fixture
def dock(qgis_iface, use_backend, clean_project, classified):
    layer = QgsRasterLayer(str(classified), "kampala_classes")
    QgsProject.instance().addMapLayer(layer)
    launcher = BackendLauncher()
    dock = ExploreDock(qgis_iface, launcher)
    dock.layer_combo.setLayer(layer)
    canvas = dock.canvas()
    if canvas is not None:  # clicks arrive in the canvas CRS: make it the layer's
        canvas.setDestinationCrs(layer.crs())
    finished = []
    dock.job_finished.connect(lambda message, level: finished.append(message))
    yield dock, layer, classified, finished
    dock.shutdown()
    dock.deleteLater()
    launcher.deleteLater()


def building_clicks(path, n, seed):
    """(name, point) clicks on cells that the OSM mask calls building / background."""
    ds = gdal.Open(str(path))
    gt = ds.GetGeoTransform()
    mask = gdal.Warp("", str(ROOT / "tests" / "data" / "kampala_0p30m_3857_buildings.tif"), format="MEM",
                     dstSRS=ds.GetProjection(), width=ds.RasterXSize, height=ds.RasterYSize, resampleAlg="mode",
                     outputBounds=[gt[0], gt[3] + gt[5] * ds.RasterYSize, gt[0] + gt[1] * ds.RasterXSize, gt[3]],
                     srcNodata=255, dstNodata=255).ReadAsArray()
    valid = ds.ReadAsArray() != 65535
    rng = np.random.default_rng(seed)
    out = []
    for name, value in (("building", 1), ("ground", 0)):
        rows, cols = np.nonzero((mask == value) & valid)
        for i in rng.choice(len(rows), n, replace=False):
            out.append((name, QgsPointXY(gt[0] + (cols[i] + 0.5) * gt[1], gt[3] + (rows[i] + 0.5) * gt[5])))
    return out


def test_click_learn_reclick_learn(dock):
    dock, layer, path, finished = dock
    panel = dock.learn_panel
    for name, point in building_clicks(path, 6, 0):
        panel.class_combo.setEditText(name)
        panel.add_click(point, True)
    assert panel.examples is not None and panel.examples.featureCount() == 12
    assert panel.class_order() == ["building", "ground"]
    assert [c.label() for c in panel.examples.renderer().categories()] == ["building", "ground"]
    panel.learn()
    assert spin_until(lambda: finished, timeout=90), dock.status_label.text()
    assert finished[-1].startswith("Learned map added"), finished
    named, confidence, margin = panel.layers[2], panel.layers[1], panel.layers[0]
    assert named.source() == str(path.with_name("kampala_classes_learned.tif"))
    assert [(c.value, c.label) for c in named.renderer().classes()] == [(0, "unclassified"), (1, "building"),
                                                                         (2, "ground")]
    assert confidence.isValid() and margin.isValid() and margin.renderer().type() == "singlebandpseudocolor"
    root = QgsProject.instance().layerTreeRoot()
    assert root.findLayer(named.id()).isVisible() and not root.findLayer(margin.id()).isVisible()
    assert "cross-validated" in panel.scores_label.text() and "overall" in panel.scores_label.text()
    first = gdal.Open(named.source()).ReadAsArray()

    # click where it hesitates (lowest margin), as ground, and a wrong click removed again
    margins = gdal.Open(margin.source()).ReadAsArray().astype(float)
    margins[margins == 255] = np.inf
    row, col = np.unravel_index(np.argmin(margins), margins.shape)
    gt = gdal.Open(str(path)).GetGeoTransform()
    hesitant = QgsPointXY(gt[0] + (col + 0.5) * gt[1], gt[3] + (row + 0.5) * gt[5])
    panel.class_combo.setEditText("ground")
    panel.add_click(hesitant, True)
    panel.add_click(QgsPointXY(hesitant.x() + 0.1, hesitant.y()), False)  # right click: removes it
    assert panel.examples.featureCount() == 12
    panel.add_click(hesitant, True)
    finished.clear()
    panel.learn()
    assert spin_until(lambda: finished, timeout=90), dock.status_label.text()
    assert finished[-1].startswith("Learned map added"), finished
    second = gdal.Open(panel.layers[2].source()).ReadAsArray()
    assert second[row, col] == 2  # the corrected cell is ground now
    assert first.shape == second.shape
    names = [l.name() for l in QgsProject.instance().mapLayers().values()]
    assert names.count("learned classes") == 1  # the rerun replaced the layers


def test_detail_slider_switches_coarser_views(dock):
    dock, layer, path, finished = dock
    slider = dock.detail_slider
    assert slider.levels[-1] == 6000 and slider.slider.value() == len(slider.levels) - 1
    slider.slider.setValue(slider.levels.index(16))
    assert spin_until(lambda: finished, timeout=90), dock.status_label.text()
    view = slider.view_layer
    assert view is not None and view.isValid() and view.name().endswith("16 groups")
    classes = view.renderer().classes()
    assert view.renderer().type() == "paletted" and 0 < len(classes) <= 16
    assert all(" ha (" in c.label for c in classes)
    slider.slider.setValue(slider.levels.index(4))  # written already: no job
    assert slider.view_layer.name().endswith("4 groups") and len(slider.view_layer.renderer().classes()) <= 4
    assert len(finished) == 1
    slider.slider.setValue(len(slider.levels) - 1)
    assert slider.view_layer is None and slider.label.text() == "all clusters"


def test_cluster_table_sorts_searches_and_selects_from_the_map(dock):
    dock, layer, path, finished = dock
    panel = dock.cluster_panel
    assert spin_until(lambda: panel.stats is not None, timeout=30), dock.status_label.text()
    table = panel.table
    areas = [float(table.item(r, 1).text()) for r in range(table.rowCount())]
    assert areas == sorted(areas, reverse=True)
    table.sortItems(0)
    ids = [int(table.item(r, 0).text()) for r in range(table.rowCount())]
    assert ids == sorted(ids)  # numeric, not text order
    panel.search_edit.setText(f"{ids[3]}, {ids[5]}")
    shown = [int(table.item(r, 0).text()) for r in range(table.rowCount()) if not table.isRowHidden(r)]
    assert shown == [ids[3], ids[5]]
    panel.search_edit.setText("")
    values = gdal.Open(str(path)).ReadAsArray()
    gt = gdal.Open(str(path)).GetGeoTransform()

    def click(row, col, ctrl):
        dock.inspect_tool.additive = ctrl
        dock.inspect_at(QgsPointXY(gt[0] + (col + 0.5) * gt[1], gt[3] + (row + 0.5) * gt[5]))
        return int(values[row, col])

    first = click(5, 5, False)
    second = next(click(r, 20, True) for r in range(40) if values[r, 20] not in (first, 65535))
    assert sorted(panel.selected_values()) == sorted({first, second})
    assert sorted(c.value for c in dock.highlight.renderer().classes()) == sorted({first, second})
    click(5, 5, False)
    assert panel.selected_values() == [first]
