"""The dock as a first-time user meets it: state (not banners) before any action, a way to set up
the backend when none is found, and diagnostics to paste into a bug report."""

from __future__ import annotations

from pathlib import Path

import pytest
from qgis.core import Qgis, QgsProject, QgsRasterLayer
from qgis.PyQt.QtWidgets import QApplication

from plugin_test_helpers import free_port, spin_until

from coredino_qgis.backend_process import BackendLauncher
from coredino_qgis.dock import IDLE, CoredinoDock

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def dock(qgis_iface, plugin_settings, clean_project):
    qgis_iface.messageBar().clear_messages()
    layer = QgsRasterLayer(str(ROOT / "resources" / "montevideo_0p25m_demo.tif"), "montevideo")
    QgsProject.instance().addMapLayer(layer)
    launcher = BackendLauncher()
    dock = CoredinoDock(qgis_iface, launcher)
    yield dock
    dock.shutdown()
    dock.deleteLater()
    launcher.deleteLater()


def test_opening_without_a_backend_shows_state_and_set_up_but_no_banner(dock, qgis_iface, plugin_settings, tmp_path):
    url = f"http://127.0.0.1:{free_port()}"
    plugin_settings(url=url, token_file=str(tmp_path / "token"))
    assert dock.setup_button.isHidden()
    dock.refresh_backend()  # what opening the dock does
    assert spin_until(lambda: dock.state == IDLE, timeout=20)
    assert dock.status_label.text().startswith(f"No coredino backend at {url}")
    assert not dock.setup_button.isHidden()
    assert qgis_iface.messageBar().get_messages(Qgis.MessageLevel.Critical) == []
    dock.run_clicked()  # an action: now the failure is raised as a banner too
    assert spin_until(lambda: dock.state == IDLE, timeout=20)
    assert dock.status_label.text() in "\n".join(qgis_iface.messageBar().get_messages(Qgis.MessageLevel.Critical))
    text = dock.copy_diagnostics()
    assert f"last error: No coredino backend at {url}" in text and "backend: not connected" in text


def test_copy_diagnostics_names_versions_backend_and_device(dock, use_backend):
    dock.refresh_backend()
    assert spin_until(lambda: dock.state == IDLE and dock.connector.capabilities, timeout=60), \
        dock.status_label.text()
    text = dock.copy_diagnostics()
    assert QApplication.clipboard().text() == text
    assert "last error: (none)" in text
    lines = dict(line.split(": ", 1) for line in text.splitlines() if ": " in line)
    assert lines["plugin"] == "coredino 0.1.0"
    assert lines["QGIS"].startswith(Qgis.QGIS_VERSION) and " · Qt 5." in lines["QGIS"]
    assert lines["coredino backend"] == "0.1.0" and lines["device"] == "cpu"
    assert lines["torch"].startswith("2.") and lines["GDAL (backend)"].startswith("3.")
    assert lines["backend Python"].endswith("python") and Path(lines["backend package"]).name == "coredino"
    assert lines["backend address"] == f"{use_backend.url} (found through settings)"


def test_settings_dialog_is_wide_enough_and_tests_the_connection(use_backend, qgis_app):
    from coredino_qgis.settings_dialog import SettingsDialog

    launcher = BackendLauncher()
    dialog = SettingsDialog(launcher)
    try:
        assert dialog.minimumWidth() >= 600
        dialog.test_button.click()
        assert spin_until(lambda: dialog.note.text().startswith("Connected: "), timeout=60), dialog.note.text()
        assert dialog.note.text() == "Connected: Backend: cpu · coredino 0.1.0"
    finally:
        dialog.deleteLater()
        launcher.deleteLater()


def test_run_shows_percentage_time_left_and_a_task_in_the_task_manager(dock, plugin_settings, tmp_path):
    from qgis.core import QgsApplication

    from plugin_test_helpers import FakeBackend, capabilities, job

    fake = FakeBackend({
        "GET /v1/health": (200, {"ok": True, "protocol": 1}),
        "GET /v1/capabilities": (200, capabilities()),
        "POST /v1/jobs": (202, job("running", 0.1, "tile 1/10")),
        "GET /v1/jobs/j1": (200, job("running", 0.1, "tile 1/10")),
    })
    (tmp_path / "token").write_text("t")
    try:
        plugin_settings(url=fake.url, token_file=str(tmp_path / "token"))
        dock.use_active_layer()
        dock.layer_combo.setLayer(QgsProject.instance().mapLayersByName("montevideo")[0])
        dock.output_widget.setFilePath(str(tmp_path / "out_classes.tif"))
        dock.run_clicked()
        assert spin_until(lambda: dock.status_label.text() == "Running: tile 1/10", timeout=20)
        tasks = [t for t in QgsApplication.taskManager().activeTasks()
                 if t.description() == "coredino: classifying montevideo"]
        assert len(tasks) == 1
        spin_until(lambda: False, timeout=2.5)
        fake.routes["GET /v1/jobs/j1"] = (200, job("running", 0.5, "tile 5/10"))
        assert spin_until(lambda: dock.progress_bar.value() == 500, timeout=10)
        assert dock.progress_bar.isTextVisible()
        assert dock.progress_bar.text().startswith("50% · about ") and dock.progress_bar.text().endswith(" left")
        assert tasks[0].progress() == 50
        dock.cancel_clicked()
        fake.routes["GET /v1/jobs/j1"] = (200, job("cancelled"))
        fake.routes["POST /v1/jobs/j1/cancel"] = (200, job("cancelled"))
        assert spin_until(lambda: dock.state == IDLE, timeout=20)
        assert spin_until(lambda: not [t for t in QgsApplication.taskManager().activeTasks()
                                       if t.description() == "coredino: classifying montevideo"], timeout=10)
        assert not dock.progress_bar.isTextVisible()
    finally:
        fake.stop()


def test_remaining_time_is_estimated_from_the_pace_after_the_first_progress(qgis_app):
    from qgis.PyQt.QtWidgets import QProgressBar

    from coredino_qgis.run_progress import RunProgress, remaining_text

    progress = RunProgress("coredino: test", QProgressBar())
    assert progress.estimate(0.1, now=100.0) is None  # the first progress (after loading the model)
    assert progress.estimate(0.3, now=110.0) == 35.0  # 0.2 in 10 s: 0.7 left takes 35 s
    assert remaining_text(35.0) == "about 35 s left" and remaining_text(200.0) == "about 3 min left"
    progress.finish(True)


def test_default_output_goes_to_the_project_output_folder_not_beside_the_source(dock, tmp_path):
    from qgis.PyQt.QtCore import QStandardPaths

    documents = QStandardPaths.writableLocation(QStandardPaths.StandardLocation.DocumentsLocation)
    dock.use_active_layer()
    dock.layer_combo.setLayer(QgsProject.instance().mapLayersByName("montevideo")[0])
    assert dock.output_widget.filePath() == str(Path(documents) / "coredino" / "montevideo_0p25m_demo_classes.tif")
    QgsProject.instance().setPresetHomePath(str(tmp_path / "survey"))  # a project saved in survey/
    assert dock.output_widget.filePath() == str(tmp_path / "survey" / "coredino" / "montevideo_0p25m_demo_classes.tif")
    dock.output_widget.setFilePath(str(tmp_path / "mine.tif"))  # the user's choice is kept
    QgsProject.instance().setPresetHomePath(str(tmp_path / "other"))
    assert dock.output_widget.filePath() == str(tmp_path / "mine.tif")
