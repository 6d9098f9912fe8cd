"""What the dock says when the backend is missing, refuses the token, speaks another protocol,
is busy, or dies in the middle of a job. Messages go to the status line and the message bar."""

from __future__ import annotations

from pathlib import Path

import pytest
from qgis.core import Qgis, QgsProject, QgsRasterLayer

from plugin_test_helpers import FakeBackend, capabilities, free_port, job, spin_until

from coredino_qgis.backend_process import BackendLauncher
from coredino_qgis.dock import IDLE, RUNNING, CoredinoDock

ROOT = Path(__file__).resolve().parents[2]
SOURCE = ROOT / "resources" / "montevideo_0p25m_demo.tif"


@pytest.fixture
def dock(qgis_iface, plugin_settings, clean_project, tmp_path):
    qgis_iface.messageBar().clear_messages()
    layer = QgsRasterLayer(str(SOURCE), "montevideo")
    QgsProject.instance().addMapLayer(layer)
    qgis_iface.setActiveLayer(layer)
    launcher = BackendLauncher()
    dock = CoredinoDock(qgis_iface, launcher)
    dock.output_widget.setFilePath(str(tmp_path / "out_classes.tif"))
    yield dock
    dock.shutdown()
    dock.deleteLater()
    launcher.deleteLater()


def critical_messages(qgis_iface) -> str:
    return "\n".join(qgis_iface.messageBar().get_messages(Qgis.MessageLevel.Critical))


def run_and_wait(dock, timeout: float = 20.0) -> str:
    dock.run_clicked()
    assert spin_until(lambda: dock.state == IDLE, timeout=timeout)
    return dock.status_label.text()


def test_no_backend_listening(dock, qgis_iface, plugin_settings, tmp_path):
    url = f"http://127.0.0.1:{free_port()}"
    plugin_settings(url=url, token_file=str(tmp_path / "token"))  # no Python: the plugin cannot start one
    status = run_and_wait(dock)
    assert status == (f"No coredino backend at {url}: start one with `coredino serve` or set the Python "
                      "to start it in Settings (Raster > coredino > Settings).")
    assert status in critical_messages(qgis_iface)
    assert dock.device_label.text() == "Backend: not connected"
    assert dock.run_button.isEnabled()


def test_wrong_token(dock, qgis_iface, plugin_settings, backend, tmp_path):
    token_file = tmp_path / "stale_token"
    token_file.write_text("a-token-from-an-earlier-start\n")
    plugin_settings(url=backend.url, token_file=str(token_file))
    status = run_and_wait(dock)
    assert status.startswith(f"The backend refused the token in {token_file}:")
    assert "Settings > Token file" in status
    assert status in critical_messages(qgis_iface)


def test_other_protocol_version(dock, qgis_iface, plugin_settings, tmp_path):
    fake = FakeBackend({"GET /v1/health": (200, {"ok": True, "protocol": 2})})
    try:
        plugin_settings(url=fake.url, token_file=str(tmp_path / "token"))
        status = run_and_wait(dock)
    finally:
        fake.stop()
    assert status.startswith(f"The backend at {fake.url} speaks protocol 2 but this plugin speaks protocol 1: "
                             "update the backend")


def test_busy_backend_queues_then_killed_backend_is_reported(dock, qgis_iface, plugin_settings, tmp_path):
    fake = FakeBackend({
        "GET /v1/health": (200, {"ok": True, "protocol": 1}),
        "GET /v1/capabilities": (200, capabilities(running="other-job", queued=0)),
        "POST /v1/jobs": (202, job("queued")),
        "GET /v1/jobs/j1": (200, job("queued", message="queued")),
    })
    (tmp_path / "token").write_text("t")
    plugin_settings(url=fake.url, token_file=str(tmp_path / "token"))
    dock.run_clicked()
    assert spin_until(lambda: dock.status_label.text().startswith("Queued"), timeout=20), dock.status_label.text()
    assert dock.status_label.text() == ("Queued: the backend is busy with another job; this one starts when it "
                                        "ends (Cancel withdraws it).")
    assert dock.device_label.text().startswith("Backend: cuda (NVIDIA H100, 80 GB)")
    assert dock.state == RUNNING
    fake.routes["GET /v1/jobs/j1"] = (200, job("running", 0.4, "tile 4/10"))
    assert spin_until(lambda: dock.status_label.text() == "Running: tile 4/10", timeout=10)
    assert dock.progress_bar.value() == 400
    fake.stop()  # the backend dies in the middle of the job
    assert spin_until(lambda: dock.state == IDLE, timeout=20)
    status = dock.status_label.text()
    assert status.startswith(f"The coredino backend at {fake.url} stopped answering while the job was running")
    assert status in critical_messages(qgis_iface)


def test_failed_job_shows_the_engine_message(dock, plugin_settings, tmp_path):
    failed = dict(job("failed"), error="x.tif: GDAL cannot read it (not a TIFF); check that the file is complete")
    fake = FakeBackend({
        "GET /v1/health": (200, {"ok": True, "protocol": 1}),
        "GET /v1/capabilities": (200, capabilities()),
        "POST /v1/jobs": (202, job("queued")),
        "GET /v1/jobs/j1": (200, failed),
    })
    try:
        plugin_settings(url=fake.url, token_file=str(tmp_path / "token"))
        status = run_and_wait(dock)
    finally:
        fake.stop()
    assert status == f"The classification failed: {failed['error']}"
