"""The dock against a REAL backend: Run adds a styled layer in a group; Cancel leaves nothing behind."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from qgis.core import QgsLayerTreeGroup, QgsProject, QgsRasterLayer

from plugin_test_helpers import spin_until

from coredino_qgis.dock import CANCELLING, IDLE, RUNNING, CoredinoDock
from coredino_qgis.backend_process import BackendLauncher
from coredino_qgis.results import group_name

ROOT = Path(__file__).resolve().parents[2]
SOURCE = ROOT / "tests" / "data" / "caranavi_collar_0p25m.tif"


@pytest.fixture
def dock(qgis_iface, use_backend, clean_project):
    launcher = BackendLauncher()
    dock = CoredinoDock(qgis_iface, launcher)
    yield dock
    dock.shutdown()
    dock.deleteLater()
    launcher.deleteLater()


def add_source(tmp_path: Path, qgis_iface) -> QgsRasterLayer:
    source = tmp_path / SOURCE.name  # a copy: the default output goes beside it
    shutil.copy(SOURCE, source)
    layer = QgsRasterLayer(str(source), "caranavi")
    assert layer.isValid()
    QgsProject.instance().addMapLayer(layer)
    qgis_iface.setActiveLayer(layer)
    return layer


def test_run_adds_the_styled_result_in_a_group_above_the_source(dock, qgis_iface, tmp_path, backend):
    source = add_source(tmp_path, qgis_iface)
    dock.use_active_layer()
    assert dock.layer_combo.currentLayer() == source
    QgsProject.instance().setPresetHomePath(str(tmp_path / "project"))
    expected_output = tmp_path / "project" / "coredino" / "caranavi_collar_0p25m_classes.tif"
    assert dock.output_widget.filePath() == str(expected_output)  # the project's output folder

    dock.run_clicked()
    assert spin_until(lambda: dock.state == IDLE and dock.result_layer is not None, timeout=150), dock.status_label.text()
    assert dock.device_label.text().startswith("Backend: cpu")
    assert dock.codebook_combo.currentText().startswith("coredino-n-default (k 6000, 0.25 m, core-dino:n@16)")
    assert dock.license_label.text().startswith("Model licence: GPL-2.0-or-later")
    texts = [dock.codebook_combo.itemText(i) for i in range(dock.codebook_combo.count())]
    assert any(t.startswith("geocentroids-sa (catalogue, 0.25 m") for t in texts)  # the catalogue's
    assert dock.status_label.text().startswith("Done:")

    result = dock.result_layer
    assert result.source() == str(expected_output)
    assert result.renderer().type() == "paletted"
    job = backend.get("/v1/jobs")["jobs"][0]
    assert job["state"] == "done"
    present = {int(k) for k in job["result"]["classes"]}
    assert {c.value for c in result.renderer().classes()} == present
    assert result.crs() == source.crs()
    cell = result.rasterUnitsPerPixelX()
    for a, b in ((result.extent().xMinimum(), source.extent().xMinimum()),
                 (result.extent().xMaximum(), source.extent().xMaximum()),
                 (result.extent().yMinimum(), source.extent().yMinimum()),
                 (result.extent().yMaximum(), source.extent().yMaximum())):
        assert abs(a - b) <= cell

    root = QgsProject.instance().layerTreeRoot()
    group = root.findGroup(group_name("caranavi"))
    assert isinstance(group, QgsLayerTreeGroup)
    assert [node.layer() for node in group.findLayers()] == [result]
    children = root.children()
    assert children.index(group) < children.index(root.findLayer(source.id()))  # above the source
    assert QgsProject.instance().mapLayer(source.id()) is source  # the source stays


def test_cancel_stops_the_job_and_leaves_no_output(dock, qgis_iface, tmp_path, backend):
    add_source(tmp_path, qgis_iface)
    dock.use_active_layer()
    output = Path(dock.output_widget.filePath())
    dock.run_clicked()
    assert spin_until(lambda: dock.state == RUNNING and dock.current_run.job_id, timeout=60), dock.status_label.text()
    job_id = dock.current_run.job_id
    dock.cancel_clicked()
    assert dock.state in (CANCELLING, IDLE)
    assert spin_until(lambda: dock.state == IDLE, timeout=60), dock.status_label.text()
    assert backend.get(f"/v1/jobs/{job_id}")["state"] == "cancelled"
    assert dock.status_label.text() == "Cancelled; no output was written."
    assert not output.exists()
    assert not list(output.parent.glob("*_classes*"))
    assert dock.run_button.isEnabled() and not dock.cancel_button.isEnabled()
    assert dock.progress_bar.value() == 0
