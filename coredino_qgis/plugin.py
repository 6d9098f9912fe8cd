"""The plugin object QGIS loads: a toolbar/menu action for the dock, Settings, the Processing provider."""

from __future__ import annotations

import os

from qgis.core import QgsApplication, QgsProject, QgsSettings
from qgis.PyQt.QtCore import QCoreApplication, Qt, QTranslator
from qgis.PyQt.QtGui import QIcon

try:  # Qt6: QAction lives in QtGui
    from qgis.PyQt.QtGui import QAction
except ImportError:  # Qt5
    from qgis.PyQt.QtWidgets import QAction

from .backend_process import BackendLauncher
from .dock import CoredinoDock
from .explore_dock import ExploreDock
from .processing.provider import CoredinoProvider
from .settings_dialog import SettingsDialog

MENU = "&coredino"
ICON = os.path.join(os.path.dirname(__file__), "icon.svg")
EXPLORE_ICON = os.path.join(os.path.dirname(__file__), "icon_explore.svg")


def load_translation() -> QTranslator | None:
    """Install ``i18n/coredino_qgis_<lang>.qm`` for QGIS's user locale when a translation exists."""
    locale = str(QgsSettings().value("locale/userLocale", "") or "")[:2]
    path = os.path.join(os.path.dirname(__file__), "i18n", f"coredino_qgis_{locale}.qm")
    if not locale or not os.path.isfile(path):
        return None
    translator = QTranslator()
    if not translator.load(path):
        return None
    QCoreApplication.installTranslator(translator)
    return translator


class CoredinoPlugin:
    def __init__(self, iface):
        self.iface = iface
        self.launcher: BackendLauncher | None = None
        self.dock: CoredinoDock | None = None
        self.explore: ExploreDock | None = None
        self.explore_action: QAction | None = None
        self.provider: CoredinoProvider | None = None
        self.dock_action: QAction | None = None
        self.settings_action: QAction | None = None
        self.translator = load_translation()

    # -- QGIS plugin interface -----------------------------------------------------------
    def initProcessing(self):  # noqa: N802 (QGIS's name)
        """The provider and the launcher it shares with the docks (qgis_process calls only this)."""
        if self.launcher is None:
            self.launcher = BackendLauncher()
            QgsApplication.instance().aboutToQuit.connect(self.launcher.stop)
        if self.provider is None:
            self.provider = CoredinoProvider(self.launcher)
            QgsApplication.processingRegistry().addProvider(self.provider)

    def initGui(self):  # noqa: N802 (QGIS's name)
        self.initProcessing()

        main_window = self.iface.mainWindow()
        self.dock_action = QAction(QIcon(ICON), "coredino classes", main_window)
        self.dock_action.setCheckable(True)
        self.dock_action.setToolTip("Show the coredino dock: classify a raster layer without labels")
        self.dock_action.toggled.connect(self.toggle_dock)
        self.explore_action = QAction(QIcon(EXPLORE_ICON), "coredino explore", main_window)
        self.explore_action.setCheckable(True)
        self.explore_action.setToolTip("Explore a classification: inspect clusters, find similar places, "
                                       "name classes, learn classes from clicks, coarser levels")
        self.explore_action.toggled.connect(self.toggle_explore)
        self.settings_action = QAction("Settings…", main_window)
        self.settings_action.triggered.connect(self.show_settings)
        self.iface.addToolBarIcon(self.dock_action)
        self.iface.addPluginToRasterMenu(MENU, self.dock_action)
        self.iface.addToolBarIcon(self.explore_action)
        self.iface.addPluginToRasterMenu(MENU, self.explore_action)
        self.iface.addPluginToRasterMenu(MENU, self.settings_action)
        QgsProject.instance().cleared.connect(self._project_cleared)

    def unload(self):
        if self.translator is not None:
            QCoreApplication.removeTranslator(self.translator)
            self.translator = None
        try:
            QgsProject.instance().cleared.disconnect(self._project_cleared)
        except (TypeError, RuntimeError):
            pass
        if self.explore is not None:
            self.explore.shutdown()
            self.iface.removeDockWidget(self.explore)
            self.explore.deleteLater()
            self.explore = None
        if self.dock is not None:
            self.dock.shutdown()
            self.iface.removeDockWidget(self.dock)
            self.dock.deleteLater()
            self.dock = None
        for action in (self.dock_action, self.explore_action, self.settings_action):
            if action is not None:
                self.iface.removePluginRasterMenu(MENU, action)
                self.iface.removeToolBarIcon(action)
                action.deleteLater()
        self.dock_action = self.explore_action = self.settings_action = None
        if self.provider is not None:
            QgsApplication.processingRegistry().removeProvider(self.provider)
            self.provider = None
        if self.launcher is not None:
            try:
                QgsApplication.instance().aboutToQuit.disconnect(self.launcher.stop)
            except (TypeError, RuntimeError):
                pass
            self.launcher.stop()  # only a backend this plugin started
            self.launcher.deleteLater()
            self.launcher = None

    # -- actions -------------------------------------------------------------------------
    def ensure_dock(self) -> CoredinoDock:
        if self.dock is None:
            self.dock = CoredinoDock(self.iface, self.launcher, self.iface.mainWindow())
            self.iface.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, self.dock)
            self.dock.visibilityChanged.connect(self._dock_visibility)
            self._tab_docks()
        return self.dock

    def toggle_dock(self, visible: bool) -> None:
        if not visible:
            if self.dock is not None:
                self.dock.hide()
            return
        dock = self.ensure_dock()
        dock.show()
        dock.raise_()
        dock.use_active_layer()
        if dock.state == "idle" and not dock.connector.capabilities:
            dock.refresh_backend()

    def toggle_explore(self, visible: bool) -> None:
        if self.explore is None and visible:
            self.explore = ExploreDock(self.iface, self.launcher, self.iface.mainWindow())
            self.iface.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, self.explore)
            self.explore.visibilityChanged.connect(self._explore_visibility)
            self._tab_docks()
        if self.explore is not None:
            self.explore.setVisible(visible)
            if visible:
                self.explore.raise_()

    def _tab_docks(self) -> None:
        """The two docks share one area as tabs (stacked, the cluster table was 1.5 rows tall)."""
        if self.dock is not None and self.explore is not None:
            self.iface.mainWindow().tabifyDockWidget(self.dock, self.explore)

    def _project_cleared(self) -> None:
        """New or another project: no click markers, highlight or cluster list of the old one survive."""
        if self.explore is not None:
            self.explore.similar_panel.clear_clicks()
            self.explore.set_highlight([], "")
            self.explore.cluster_panel.refresh()
        if self.dock is not None:
            self.dock.result_layer = None

    def _explore_visibility(self, visible: bool) -> None:
        if self.explore_action is not None and self.explore_action.isChecked() != visible:
            self.explore_action.blockSignals(True)
            self.explore_action.setChecked(visible)
            self.explore_action.blockSignals(False)

    def _dock_visibility(self, visible: bool) -> None:
        if self.dock_action is not None and self.dock_action.isChecked() != visible:
            self.dock_action.blockSignals(True)
            self.dock_action.setChecked(visible)
            self.dock_action.blockSignals(False)

    def show_settings(self) -> None:
        SettingsDialog(self.launcher, self.iface.mainWindow()).exec()
