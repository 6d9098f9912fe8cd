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
