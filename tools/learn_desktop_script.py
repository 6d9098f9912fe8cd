"""Run inside the REAL QGIS desktop (`qgis --code`) by tools/learn_screenshots.py: the explore
dock's click-learn-reclick loop on the demo scene, then the detail slider at 16 groups.

Adds the demo imagery and its classification, opens *coredino explore*, clicks examples of five
classes (Learn tab), presses Learn, adds two corrective clicks, Learns again, and saves
``learn.png``; then moves the detail slider to 16 groups and saves ``levels16.png``. Paths come
from the environment (COREDINO_SHOT_SOURCE, _CLASSES, _CLICKS (JSON {class: [[x, y], ...]} in the
classification's CRS), _MORE (the corrective clicks), _OUT, _STATUS). Driven by QTimer callbacks.
"""

import json
import os
import time
import traceback

import qgis.utils
from qgis.core import QgsApplication, QgsPointXY, QgsProject, QgsRectangle
from qgis.PyQt.QtCore import QTimer

ENV = {k: os.environ[f"COREDINO_SHOT_{k}"] for k in ("SOURCE", "CLASSES", "CLICKS", "MORE", "OUT", "STATUS")}
START = time.monotonic()
status = {"ok": False, "steps": []}
iface = qgis.utils.iface
plugin = qgis.utils.plugins.get("coredino_qgis")


def step(name, **extra):
    status["steps"].append({"step": name, "t": round(time.monotonic() - START, 1), **extra})


def finish(ok, **extra):
    status.update(ok=ok, **extra)
    with open(ENV["STATUS"], "w", encoding="utf-8") as f:
        json.dump(status, f, indent=2)
    QTimer.singleShot(200, QgsApplication.instance().quit)


def guarded(callback):
    def run(*args):
        try:
            callback(*args)
        except Exception:  # noqa: BLE001 (reported in the status file)
            finish(False, error=traceback.format_exc())
    return run


QTimer.singleShot(400_000, lambda: finish(False, error="watchdog: 400 s"))
state = {}


def click(points):
    panel = plugin.explore.learn_panel
    for name, xys in points.items():
        panel.class_combo.setEditText(name)
        for x, y in xys:
            panel.add_click(QgsPointXY(x, y), True)


@guarded
def start():
    iface.mainWindow().showMaximized()
    iface.mainWindow().resize(1600, 1000)
    source = iface.addRasterLayer(ENV["SOURCE"], "montevideo demo")
    classes = iface.addRasterLayer(ENV["CLASSES"], "demo classes")
    iface.mapCanvas().setDestinationCrs(classes.crs())
    iface.mapCanvas().setExtent(QgsRectangle(classes.extent()))
    plugin.explore_action.setChecked(True)
    dock = plugin.explore
    dock.layer_combo.setLayer(classes)
    dock.tabs.setCurrentWidget(dock.learn_panel)
    dock.job_finished.connect(guarded(job_done))
    step("dock open", source=source.isValid(), classes=classes.isValid())
    click(json.loads(open(ENV["CLICKS"]).read()))
    dock.learn_panel.learn()


@guarded
def job_done(message, _level):
    dock = plugin.explore
    step("job", message=message)
    if message.startswith("Learned map added"):
        state["learned"] = state.get("learned", 0) + 1
        if state["learned"] == 1:  # reclick where it is wrong, learn again
            status["first learn"] = dock.learn_panel.scores_label.text()
            click(json.loads(open(ENV["MORE"]).read()))
            dock.learn_panel.learn()
        else:
            status["learn"] = {"message": message, "scores": dock.learn_panel.scores_label.text()}
            QTimer.singleShot(3000, guarded(shot_learn))
    elif message.startswith("12 coarser views") or "coarser views" in message:
        view = dock.detail_slider.view_layer
        status["levels"] = {"message": message, "legend": [c.label for c in view.renderer().classes()]}
        QTimer.singleShot(3000, guarded(shot_levels))
    elif state.get("retries", 0) < 2:  # a busy machine: ask again
        state["retries"] = state.get("retries", 0) + 1
        dock.learn_panel.learn()
    else:
        finish(False, error=message)


def show_only(keep):
    """Collapse every layer's legend but ``keep``'s; tick only ``keep`` and the imagery."""
    root = QgsProject.instance().layerTreeRoot()
    for node in root.findLayers():
        node.setExpanded(node.layerId() == keep.id())
        if node.layerId() != keep.id() and node.name() not in ("montevideo demo", "coredino examples"):
            node.setItemVisibilityChecked(False)
    view = iface.layerTreeView()
    view.scrollTo(view.layerTreeModel().node2index(root.findLayer(keep.id())))


@guarded
def shot_learn():
    learned = plugin.explore.learn_panel.layers[-1]
    show_only(learned)
    learned.renderer().setOpacity(0.6)  # the imagery shows through
    learned.triggerRepaint()
    saved = iface.mainWindow().grab().save(os.path.join(ENV["OUT"], "learn.png"), "PNG")
    step("learn screenshot", saved=saved)
    dock = plugin.explore
    dock.detail_slider.slider.setValue(dock.detail_slider.levels.index(16))


@guarded
def shot_levels():
    show_only(plugin.explore.detail_slider.view_layer)
    QgsProject.instance().layerTreeRoot().findLayer(plugin.explore.learn_panel.examples.id()).setItemVisibilityChecked(False)
    saved = iface.mainWindow().grab().save(os.path.join(ENV["OUT"], "levels16.png"), "PNG")
    step("levels screenshot", saved=saved)
    finish(saved)


QTimer.singleShot(1500, start)
