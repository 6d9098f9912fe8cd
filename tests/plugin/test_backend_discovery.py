"""Finding the backend (service-<port>.json, settings) and the messages when it cannot be started."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from plugin_test_helpers import free_port, spin_until

from coredino_qgis.backend_process import BackendLauncher, Connection, resolve_connection
from coredino_qgis.dock import IDLE, CoredinoDock
from coredino_qgis.settings import DEFAULT_URL, PluginSettings
from coredino_qgis.settings_dialog import SettingsDialog


def test_service_json_announces_the_running_backend(backend, monkeypatch, qgis_app):
    monkeypatch.setenv("COREDINO_CACHE", str(backend.cache))
    found = resolve_connection(PluginSettings())
    assert (found.url, found.token_file, found.origin) == (backend.url, str(backend.token_file), "service.json")
    assert found.token() == backend.token
    explicit = resolve_connection(PluginSettings(url=backend.url + "/"))
    assert (explicit.url, explicit.token_file, explicit.origin) == (backend.url, str(backend.token_file), "settings")


def test_a_stale_service_json_is_ignored(tmp_path, monkeypatch, qgis_app):
    monkeypatch.setenv("COREDINO_CACHE", str(tmp_path))
    (tmp_path / "service").mkdir()
    (tmp_path / "service" / "service-8765.json").write_text(json.dumps(
        {"url": "http://127.0.0.1:8765", "pid": 2 ** 22 + 17, "token_file": "/nowhere", "protocol": 1}))
    found = resolve_connection(PluginSettings())
    assert found == Connection(DEFAULT_URL, str(tmp_path / "service" / "token-8765"), "default")


def test_each_port_has_its_own_discovery_file(tmp_path, monkeypatch, qgis_app):
    """Two live backends (#10 R3): the plugin takes the token of the port it connects to."""
    monkeypatch.setenv("COREDINO_CACHE", str(tmp_path))
    folder = tmp_path / "service"
    folder.mkdir()
    for port in (8765, 9001):
        (folder / f"service-{port}.json").write_text(json.dumps(
            {"url": f"http://127.0.0.1:{port}", "pid": os.getpid(), "token_file": str(folder / f"token-{port}"),
             "protocol": 1}))
    assert resolve_connection(PluginSettings(url="http://127.0.0.1:9001")).token_file == str(folder / "token-9001")
    assert resolve_connection(PluginSettings()) == Connection(
        "http://127.0.0.1:8765", str(folder / "token-8765"), "service.json")  # the default port first
    (folder / "service-8765.json").unlink()
    assert resolve_connection(PluginSettings()).url == "http://127.0.0.1:9001"  # else the live one
    assert resolve_connection(PluginSettings(url="http://127.0.0.1:8765")).token_file == str(folder / "token-8765")


def test_dock_finds_the_backend_without_any_setting(qgis_iface, plugin_settings, backend, monkeypatch):
    monkeypatch.setenv("COREDINO_CACHE", str(backend.cache))
    plugin_settings()  # everything automatic
    launcher = BackendLauncher()
    dock = CoredinoDock(qgis_iface, launcher)
    try:
        dock.refresh_backend()
        assert spin_until(lambda: dock.state == IDLE, timeout=20)
        assert dock.status_label.text() == f"Connected to {backend.url}."
        assert dock.device_label.text() == "Backend: cpu · coredino 0.1.0"
        assert "coredino-n-default (k 6000, 0.25 m, core-dino:n@16)" in [
            dock.codebook_combo.itemText(i) for i in range(dock.codebook_combo.count())]
    finally:
        dock.deleteLater()
        launcher.deleteLater()


@pytest.mark.parametrize("python, expected", [
    ("/nonexistent/bin/python", "The Python set in Settings (/nonexistent/bin/python) does not exist"),
    ("/usr/bin/python3", "The Python set in Settings (/usr/bin/python3) has no coredino installed"),
])
def test_a_wrong_python_in_settings_is_explained(qgis_app, tmp_path, python, expected):
    if not Path(python).exists() and python != "/nonexistent/bin/python":
        pytest.skip(f"{python} missing")
    launcher = BackendLauncher()
    failures = []
    launcher.failed.connect(failures.append)
    launcher.start(python, Connection(f"http://127.0.0.1:{free_port()}", str(tmp_path / "token"), "settings"))
    assert spin_until(lambda: failures, timeout=30)
    assert failures[0].startswith(expected), failures[0]
    assert not launcher.is_running()
    launcher.deleteLater()


def test_settings_dialog_round_trip(qgis_app, plugin_settings):
    plugin_settings(python="/opt/venv/bin/python", url="http://127.0.0.1:9999", token_file="/tmp/t",
                    max_export_pixels=40_000_000)
    dialog = SettingsDialog()
    assert dialog.python_widget.filePath() == "/opt/venv/bin/python"
    assert dialog.max_pixels_spin.value() == 40
    assert dialog.runtime_combo.currentText() == "auto"
    dialog.url_edit.setText(" http://127.0.0.1:8766 ")
    dialog.runtime_combo.setCurrentText("torch")
    dialog.accept()
    assert PluginSettings.load() == PluginSettings("/opt/venv/bin/python", "http://127.0.0.1:8766", "/tmp/t", 40_000_000,
                                                   "torch")
    dialog.deleteLater()
