"""classFactory -> initGui -> unload in real QGIS; the plugin starts its own backend and stops it."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

from qgis.core import QgsApplication
from qgis.PyQt import sip
from qgis.PyQt.QtCore import QCoreApplication, QEvent

from plugin_test_helpers import free_port, spin_until

import coredino_qgis
from coredino_qgis.dock import IDLE


def flush_deletes() -> None:
    QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
    QgsApplication.processEvents()


def test_load_and_unload_leave_nothing_behind(qgis_iface, qgis_processing, plugin_settings):
    plugin_settings()
    registry = QgsApplication.processingRegistry()
    plugin = coredino_qgis.classFactory(qgis_iface)
    plugin.initGui()
    provider = registry.providerById("coredino")
    assert provider is not None
    assert sorted(a.id() for a in provider.algorithms()) == [
        "coredino:batch_classify", "coredino:classify", "coredino:cluster", "coredino:fit_codebook",
        "coredino:learn", "coredino:levels", "coredino:polygonize", "coredino:reclassify", "coredino:similar"]
    dock_action, settings_action, explore_action = plugin.dock_action, plugin.settings_action, plugin.explore_action
    assert explore_action.text() == "coredino explore"
    explore_action.setChecked(True)  # the explore dock is created when first shown, removed on unload
    assert plugin.explore is not None and not plugin.explore.isHidden()
    assert dock_action.text() == "coredino classes" and not dock_action.icon().isNull()
    assert plugin.dock is None  # created when first shown

    plugin.unload()
    flush_deletes()
    assert registry.providerById("coredino") is None
    assert plugin.dock is None and plugin.launcher is None
    assert sip.isdeleted(dock_action) and sip.isdeleted(settings_action) and sip.isdeleted(explore_action)
    assert plugin.explore is None


def test_plugin_starts_its_backend_and_stops_it_on_unload(qgis_iface, qgis_processing, plugin_settings,
                                                          tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    monkeypatch.setenv("COREDINO_CACHE", str(cache))
    monkeypatch.setenv("GDAL_PAM_PROXY_DIR", str(tmp_path / "pam"))  # QGIS sets it; the backend must not get it
    url = f"http://127.0.0.1:{free_port()}"
    plugin_settings(python=sys.executable, url=url, token_file=str(tmp_path / "token"))

    plugin = coredino_qgis.classFactory(qgis_iface)
    plugin.initGui()
    plugin.dock_action.setChecked(True)  # shows the dock, which connects: nothing answers, so it starts one
    dock = plugin.dock
    assert dock is not None
    assert spin_until(lambda: dock.state == IDLE and dock.codebook_combo.count() > 0, timeout=180), \
        dock.status_label.text() + "\n" + plugin.launcher.output_tail()
    assert dock.device_label.text().startswith("Backend: cpu")
    assert dock.status_label.text() == f"Connected to {url}."

    process = plugin.launcher.process
    pid = int(process.processId())
    program_args = [process.program()] + list(process.arguments())
    assert program_args[:4] == [sys.executable, "-m", "coredino.cli", "serve"]
    environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    assert not any(e.startswith(b"GDAL_PAM_PROXY_DIR=") for e in environ)
    service = json.loads((cache / "service" / f"service-{url.rsplit(':', 1)[1]}.json").read_text())
    assert service["url"] == url and service["pid"] == pid

    dock_ref = dock
    plugin.unload()
    flush_deletes()
    assert sip.isdeleted(dock_ref)
    deadline = time.monotonic() + 10
    while os.path.exists(f"/proc/{pid}") and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not os.path.exists(f"/proc/{pid}") or b"Z" in Path(f"/proc/{pid}/stat").read_bytes().split(b")")[-1][:3]
    assert not list((cache / "service").glob("service-*.json"))  # a clean exit removes it
