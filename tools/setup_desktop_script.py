"""Run inside the real QGIS desktop by tools/setup_screenshots.sh: a first-time user's path.

The demo layer is added, the coredino dock opened (no backend: it offers *Set up the backend*),
the set-up dialog installs from the folder of wheels in $COREDINO_BUNDLE, the dock connects to the
backend the dialog started and classifies the demo. Screenshots and a JSON status go to $COREDINO_SHOTS.
"""

import json
import os
import time
import traceback
from pathlib import Path

import qgis.utils
from qgis.core import QgsApplication
from qgis.PyQt.QtCore import QTimer

SHOTS = Path(os.environ["COREDINO_SHOTS"])
BUNDLE = os.environ["COREDINO_BUNDLE"]
DEMO = os.environ["COREDINO_DEMO"]
START = time.monotonic()
status = {"ok": False, "steps": []}
iface = qgis.utils.iface
plugin = qgis.utils.plugins.get("coredino_qgis")


def step(name, **extra):
    status["steps"].append({"step": name, "t": round(time.monotonic() - START, 1), **extra})
    (SHOTS / "status.json").write_text(json.dumps(status, indent=2))


def shot(name, widget=None):
    (widget or iface.mainWindow()).grab().save(str(SHOTS / name))
    step(f"screenshot {name}")


def finish(ok, **extra):
    status.update(ok=ok, **extra)
    if plugin is not None and plugin.dock is not None:
        (SHOTS / "diagnostics.txt").write_text(plugin.dock.copy_diagnostics())
    step("finish")
    QTimer.singleShot(500, QgsApplication.instance().quit)


def guarded(callback):
    def run(*args):
        try:
            callback(*args)
        except Exception:  # noqa: BLE001 (reported in the status file)
            finish(False, error=traceback.format_exc())
    return run


QTimer.singleShot(1_500_000, lambda: finish(False, error="watchdog: 25 min"))


@guarded
def start():
    if plugin is None:
        finish(False, error="coredino_qgis is not loaded")
        return
    iface.mainWindow().showMaximized()
    layer = iface.addRasterLayer(DEMO, "montevideo demo")
    iface.setActiveLayer(layer)
    plugin.dock_action.setChecked(True)  # opens the dock, which looks for a backend
    QTimer.singleShot(8000, opened)


@guarded
def opened():
    dock = plugin.dock
    step("dock opened", status_text=dock.status_label.text(), setup_visible=dock.setup_button.isVisible())
    shot("1_dock_no_backend.png")
    dock.setup_button.click()
    dialog = dock.setup_dialog
    dialog.bundle_widget.setFilePath(BUNDLE)
    dialog.setup_finished.connect(lambda state: installed(state))
    QTimer.singleShot(1500, lambda: begin(dialog))


@guarded
def begin(dialog):
    shot("2_setup_dialog.png", dialog)
    dialog.install_button.click()
    QTimer.singleShot(1000, lambda: watch_install(dialog))


@guarded
def watch_install(dialog):
    if dialog.state == "running" and dialog.index == 2 and dialog.log_view.blockCount() > 40:
        shot("3_setup_mid_install.png", dialog)
        shot("3_setup_mid_install_window.png")
        return
    if dialog.state == "running":
        QTimer.singleShot(1000, lambda: watch_install(dialog))


@guarded
def installed(state):
    dialog = plugin.dock.setup_dialog
    step("set-up ended", state=state, timings=dialog.timings, message=dialog.status_label.text())
    shot("4_setup_done.png", dialog)
    (SHOTS / "setup_log.txt").write_text(dialog.log_view.toPlainText())
    if state != "done":
        finish(False, error=dialog.status_label.text())
        return
    dialog.close()
    QTimer.singleShot(1000, wait_connected)


@guarded
def wait_connected():
    dock = plugin.dock
    if dock.state == "idle" and dock.connector.capabilities:
        step("dock connected", device=dock.device_label.text())
        dock.run_finished.connect(lambda message, level: classified(message))
        dock.run_clicked()
        return
    if dock.state == "idle" and dock.last_error:
        finish(False, error=dock.last_error)
        return
    QTimer.singleShot(1000, wait_connected)


@guarded
def classified(message):
    step("classified", message=message)
    layer = plugin.dock.result_layer
    if layer is not None:
        iface.mapCanvas().setExtent(layer.extent())
        iface.mapCanvas().refresh()
    QTimer.singleShot(4000, lambda: done(message))


@guarded
def done(message):
    shot("5_first_classification.png")
    finish(message.startswith("Done:"), message=message)


QTimer.singleShot(4000, start)
