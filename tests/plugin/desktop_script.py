"""Run inside the REAL QGIS desktop (`qgis --code desktop_script.py`) by test_qgis_desktop.py.

Adds the demo raster, opens the coredino dock, presses Run, waits for the styled result, zooms to
it, saves a screenshot of the main window and writes a JSON status, then quits QGIS. Everything is
driven by QTimer callbacks so the desktop's event loop keeps running. Paths come from the
environment (COREDINO_DESKTOP_SOURCE, _OUTPUT, _SCREENSHOT, _STATUS).
"""

import json
import os
import time
import traceback

import qgis.utils
from qgis.core import QgsApplication, QgsProject
from qgis.PyQt.QtCore import QTimer

SOURCE = os.environ["COREDINO_DESKTOP_SOURCE"]
OUTPUT = os.environ["COREDINO_DESKTOP_OUTPUT"]
SCREENSHOT = os.environ["COREDINO_DESKTOP_SCREENSHOT"]
STATUS = os.environ["COREDINO_DESKTOP_STATUS"]
START = time.monotonic()
status = {"ok": False, "steps": []}


def step(name, **extra):
    status["steps"].append({"step": name, "t": round(time.monotonic() - START, 1), **extra})


def finish(ok, **extra):
    status.update(ok=ok, **extra)
    with open(STATUS, "w", encoding="utf-8") as f:
        json.dump(status, f, indent=2)
    QTimer.singleShot(200, QgsApplication.instance().quit)


def guarded(callback):
    def run(*args):
        try:
            callback(*args)
        except Exception:  # noqa: BLE001 (reported in the status file)
            finish(False, error=traceback.format_exc())
    return run


iface = qgis.utils.iface
plugin = qgis.utils.plugins.get("coredino_qgis")
QTimer.singleShot(240_000, lambda: finish(False, error="watchdog: no result within 240 s",
                                          status_text=plugin.dock.status_label.text() if plugin and plugin.dock else ""))


@guarded
def start():
    if plugin is None:
        finish(False, error=f"coredino_qgis is not loaded; plugins: {sorted(qgis.utils.plugins)}")
        return
    step("plugin loaded")
    iface.mainWindow().showMaximized()
    layer = iface.addRasterLayer(SOURCE, "montevideo demo")
    iface.setActiveLayer(layer)
    iface.zoomToActiveLayer()
    plugin.dock_action.setChecked(True)  # shows the dock; it connects to the backend
    plugin.dock.output_widget.setFilePath(OUTPUT)
    plugin.dock.run_finished.connect(guarded(finished))
    wait_connected.start()


@guarded
def when_connected():
    dock = plugin.dock
    if dock.state != "idle":
        return
    wait_connected.stop()
    if dock.codebook_combo.count() == 0:
        finish(False, error="not connected: " + dock.status_label.text())
        return
    step("connected", device=dock.device_label.text(), codebook=dock.codebook_combo.currentText())
    dock.run_clicked()


@guarded
def finished(message, _level):
    dock = plugin.dock
    layer = dock.result_layer
    step("run finished", message=message)
    if layer is None:
        finish(False, error=message)
        return
    iface.setActiveLayer(layer)
    iface.zoomToActiveLayer()
    iface.mapCanvas().refreshAllLayers()
    node = QgsProject.instance().layerTreeRoot().findLayer(layer.id())
    group = node.parent()
    step("result added", expanded=node.isExpanded())
    status.update(layer=layer.name(), renderer=layer.renderer().type(), classes=len(layer.renderer().classes()),
                  group=group.name(), message=message, device=dock.device_label.text())
    QTimer.singleShot(2500, guarded(screenshot))  # let the canvas render the zoomed view


@guarded
def screenshot():
    window = iface.mainWindow()
    node = QgsProject.instance().layerTreeRoot().findLayer(plugin.dock.result_layer.id())
    step("before screenshot", expanded=node.isExpanded())
    saved = window.grab().save(SCREENSHOT, "PNG")
    step("screenshot", saved=saved, size=[window.width(), window.height()])
    finish(saved)


wait_connected = QTimer()
wait_connected.setInterval(200)
wait_connected.timeout.connect(when_connected)
QTimer.singleShot(500, start)
