"""Plugin-level rough edges of first use: distinct toolbar icons, the two docks tabbed, and New
Project leaving no click markers, highlight or cluster list of the old project."""

from __future__ import annotations

from pathlib import Path

from qgis.core import QgsPointXY, QgsProject

import coredino_qgis

ROOT = Path(__file__).resolve().parents[2]


def test_icons_tabs_and_new_project(qgis_iface, qgis_processing, plugin_settings, monkeypatch):
    plugin_settings()
    window = qgis_iface.mainWindow()
    monkeypatch.setattr(qgis_iface, "addDockWidget", lambda area, dock: window.addDockWidget(area, dock))
    plugin = coredino_qgis.classFactory(qgis_iface)
    plugin.initGui()
    try:
        dock_image = plugin.dock_action.icon().pixmap(32, 32).toImage()
        explore_image = plugin.explore_action.icon().pixmap(32, 32).toImage()
        assert not dock_image.isNull() and not explore_image.isNull() and dock_image != explore_image
        plugin.ensure_dock()
        plugin.explore_action.setChecked(True)
        assert plugin.explore in window.tabifiedDockWidgets(plugin.dock)

        explore = plugin.explore
        explore.similar_tool.add_marker(QgsPointXY(0, 0), True)
        explore.similar_panel.positives.append((0.0, 0.0))
        explore.similar_panel.clicks_label.setText("1 like this")
        QgsProject.instance().clear()  # what File > New Project does to the project
        assert explore.similar_tool.markers == [] and explore.similar_panel.positives == []
        assert explore.similar_panel.clicks_label.text() == "No clicks yet."
        assert explore.cluster_panel.table.rowCount() == 0
    finally:
        plugin.unload()
