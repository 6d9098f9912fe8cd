"""The explore dock's map tools in real QGIS (headless) against the REAL backend: Inspect, Find similar."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from osgeo import gdal
from qgis.core import QgsPointXY, QgsProject, QgsRasterLayer, QgsRectangle
from qgis.gui import QgsMapMouseEvent
from qgis.PyQt.QtCore import QEvent, QPoint, Qt

from plugin_test_helpers import spin_until

from coredino_qgis.backend_process import BackendLauncher
from coredino_qgis.explore_dock import ExploreDock
from coredino_qgis.explore_style import HIGHLIGHT_NAME

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def explore(qgis_iface, use_backend, clean_project, classified):
    source = QgsRasterLayer(str(ROOT / "tests" / "data" / "kampala_0p30m_3857.tif"), "kampala")
    layer = QgsRasterLayer(str(classified), "kampala_classes")
    assert source.isValid() and layer.isValid()
    QgsProject.instance().addMapLayers([source, layer])
    canvas = qgis_iface.mapCanvas()
    canvas.resize(800, 600)
    canvas.setDestinationCrs(layer.crs())
    canvas.setExtent(layer.extent())
    launcher = BackendLauncher()
    dock = ExploreDock(qgis_iface, launcher)
    dock.layer_combo.setLayer(layer)
    yield dock, layer, classified
    dock.shutdown()
    dock.deleteLater()
    launcher.deleteLater()


def cell_centre(path: Path, col: int, row: int) -> QgsPointXY:
    gt = gdal.Open(str(path)).GetGeoTransform()
    return QgsPointXY(gt[0] + (col + 0.5) * gt[1], gt[3] + (row + 0.5) * gt[5])


def click(tool, point: QgsPointXY, button=Qt.MouseButton.LeftButton, modifiers=Qt.KeyboardModifier.NoModifier):
    """A real mouse release at the canvas pixel showing ``point`` (the view zoomed around it first, so
    that a pixel is much smaller than a cell)."""
    canvas = tool.canvas()
    canvas.setExtent(QgsRectangle(point.x() - 10, point.y() - 10, point.x() + 10, point.y() + 10))
    pixel = canvas.getCoordinateTransform().transform(point)
    event = QgsMapMouseEvent(canvas, QEvent.Type.MouseButtonRelease, QPoint(round(pixel.x()), round(pixel.y())),
                             button, button, modifiers)
    tool.canvasReleaseEvent(event)


def test_inspect_reports_the_cluster_its_share_and_highlights_it(explore):
    dock, layer, path = explore
    ids = gdal.Open(str(path)).ReadAsArray()
    valid = ids != 65535
    row, col = 8, 9
    value = int(ids[row, col])
    assert valid[row, col]
    dock.inspect_button.click()
    assert dock.canvas().mapTool() is dock.inspect_tool
    click(dock.inspect_tool, cell_centre(path, col, row))
    assert spin_until(lambda: "% of the layer" in dock.inspect_label.text(), timeout=30), dock.inspect_label.text()
    share = 100 * (ids == value).sum() / valid.sum()
    text = dock.inspect_label.text()
    assert text.startswith(f"cluster {value} (#") and f"{share:.2f} % of the layer's area" in text
    gt = gdal.Open(str(path)).GetGeoTransform()
    assert f"{(ids == value).sum() * gt[1] ** 2:,.0f} m²" in text
    colour = layer.renderer().classes()[[c.value for c in layer.renderer().classes()].index(value)].color
    assert colour.name() in text
    assert dock.inspect_swatch.pixmap().toImage().pixelColor(8, 8) == colour  # the swatch beside the text
    overlays = [lyr for lyr in QgsProject.instance().mapLayers().values() if lyr.name().startswith(HIGHLIGHT_NAME)]
    assert overlays == [dock.highlight]
    assert [c.value for c in dock.highlight.renderer().classes()] == [value]
    # a click outside the layer clears the highlight
    extent = layer.extent()
    click(dock.inspect_tool, QgsPointXY(extent.xMaximum() + 50, extent.yMaximum() + 50))
    assert dock.inspect_label.text().startswith("No cluster here") and dock.highlight is None


def test_find_similar_adds_a_layer_and_the_threshold_sets_the_area(explore):
    dock, layer, path = explore
    dock.similar_button.click()
    assert dock.canvas().mapTool() is dock.similar_tool and not dock.inspect_button.isChecked()
    tool = dock.similar_tool
    click(tool, cell_centre(path, 5, 5))
    click(tool, cell_centre(path, 12, 6))
    click(tool, cell_centre(path, 15, 15), Qt.MouseButton.RightButton)
    click(tool, cell_centre(path, 2, 14), Qt.MouseButton.LeftButton, Qt.KeyboardModifier.ShiftModifier)
    panel = dock.similar_panel
    assert (len(panel.positives), len(panel.negatives), len(tool.markers)) == (2, 2, 4)
    assert panel.clicks_label.text() == "2 positive, 2 negative clicks"
    finished = []
    dock.job_finished.connect(lambda message, level: finished.append(message))
    panel.run()
    assert spin_until(lambda: finished, timeout=60), dock.status_label.text()
    assert finished[0].startswith("Similarity of"), finished
    sim = panel.similarity_layer
    assert sim is not None and QgsProject.instance().mapLayer(sim.id()) is sim
    assert sim.source() == str(path.with_name("kampala_classes_similar.tif"))
    assert sim.renderer().type() == "singlebandpseudocolor"
    values = gdal.Open(sim.source()).ReadAsArray()
    valid = values != -2
    cell = gdal.Open(sim.source()).GetGeoTransform()[1] ** 2
    areas = {}
    for threshold in (0.0, 0.5):
        panel.slider.setValue(int(threshold * 100))
        assert sim.renderer().classificationMin() == pytest.approx(threshold)
        expected = ((values >= threshold) & valid).sum() * cell
        text = panel.area_label.text()
        assert text.startswith(f"Similarity ≥ {threshold:.2f}: {expected:,.0f} m² ({expected / 1e4:,.2f} ha)"), text
        areas[threshold] = expected
    assert areas[0.0] > areas[0.5] > 0
    # a second run replaces the similarity layer instead of stacking a new one
    panel.clear_clicks()
    assert not tool.markers and not panel.positives
    click(tool, cell_centre(path, 5, 5))
    finished.clear()
    panel.run()
    assert spin_until(lambda: finished, timeout=60)
    similar_layers = [lyr for lyr in QgsProject.instance().mapLayers().values() if lyr.name() == "similarity"]
    assert similar_layers == [panel.similarity_layer]
    values = gdal.Open(panel.similarity_layer.source()).ReadAsArray()
    assert values[5, 5] == pytest.approx(1.0, abs=1e-5) and np.nanmax(values) == values[5, 5]


def test_find_similar_explains_missing_embeddings(explore, tmp_path):
    dock, layer, path = explore
    Path(str(path).replace(".tif", "_embeddings.tif")).unlink()
    dock.similar_panel.add_click(cell_centre(path, 5, 5), True)
    dock.similar_panel.run()
    assert "no embeddings beside it" in dock.status_label.text()


def test_a_tool_button_shows_whether_its_tool_is_active(explore):
    dock, _layer, _path = explore
    canvas = dock.canvas()
    canvas.setMapTool(dock.similar_tool)  # set from elsewhere (a shortcut, another plugin), not by the button
    assert dock.similar_button.isChecked() and not dock.inspect_button.isChecked()
    dock.inspect_button.click()
    assert canvas.mapTool() is dock.inspect_tool
    assert dock.inspect_button.isChecked() and not dock.similar_button.isChecked()
    canvas.unsetMapTool(dock.inspect_tool)
    assert not dock.inspect_button.isChecked()
