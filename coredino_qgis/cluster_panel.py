"""The "Clusters" tab: clusters present with their areas, named classes, class map, polygons, JSON."""

from __future__ import annotations

from pathlib import Path

from qgis.core import QgsApplication, QgsProject, QgsRasterLayer, QgsVectorLayer
from qgis.PyQt.QtCore import Qt, pyqtSignal
from qgis.PyQt.QtGui import QColor, QIcon, QPixmap
from qgis.PyQt.QtWidgets import (
    QAbstractItemView,
    QFileDialog,
    QHBoxLayout,
    QLineEdit,
    QListWidget,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from .cluster_stats import ClusterStats, ClusterStatsTask, cached
from .explore_style import cluster_colors, style_polygons
from .contract import PolygonizeParams, PolygonizeResult, ReclassifyParams, ReclassifyResult, UserError
from .contract.classes import PALETTE, load_classes, save_classes, validate
from .layer_info import add_above, classification_path, coredino_tags, sibling
from .similar_panel import format_area

class NumberItem(QTableWidgetItem):
    """A table cell that sorts by its number (UserRole + 1), not by its text."""

    def __init__(self, text: str, number: float, icon: QIcon | None = None):
        super().__init__(icon, text) if icon is not None else super().__init__(text)
        self.setData(Qt.ItemDataRole.UserRole + 1, float(number))

    def __lt__(self, other):  # noqa: D105
        return float(self.data(Qt.ItemDataRole.UserRole + 1)) < float(other.data(Qt.ItemDataRole.UserRole + 1))


def matches(value: int, query: str) -> bool:
    """Whether a cluster id matches the search box: empty, its id, or one of comma-separated ids."""
    wanted = [part.strip() for part in query.replace(" ", ",").split(",") if part.strip()]
    return not wanted or str(value) in wanted


def swatch(color: QColor) -> QIcon:
    pixmap = QPixmap(14, 14)
    pixmap.fill(color)
    return QIcon(pixmap)


class ClusterPanel(QWidget):
    """Emits ``submit(params, on_done)`` for the dock to run and ``status(text)``."""

    submit = pyqtSignal(object, object)
    status = pyqtSignal(str)
    stats_ready = pyqtSignal()

    def __init__(self, dock, parent=None):
        super().__init__(parent)
        self.dock = dock
        self.stats: ClusterStats | None = None
        self.classes: dict[str, list[int]] = {}
        self.class_layer: QgsRasterLayer | None = None
        self.polygon_layer: QgsVectorLayer | None = None
        self.task: ClusterStatsTask | None = None
        self._build()

    def _build(self) -> None:
        layout = QVBoxLayout(self)
        self.search_edit = QLineEdit(self)
        self.search_edit.setPlaceholderText("search cluster ids, e.g. 12, 407 (Ctrl+click the map with "
                                            "Inspect to add a cluster)")
        self.search_edit.textChanged.connect(self._filter)
        layout.addWidget(self.search_edit)
        self.table = QTableWidget(0, 3, self)
        self.table.setSortingEnabled(True)
        self.table.setHorizontalHeaderLabels(["cluster", "area (ha)", "%"])
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().setVisible(False)
        self.table.itemSelectionChanged.connect(self._selection_changed)
        layout.addWidget(self.table, 2)
        row = QHBoxLayout()
        self.name_edit = QLineEdit(self)
        self.name_edit.setPlaceholderText("class name, e.g. buildings")
        self.name_edit.returnPressed.connect(self.assign)
        self.assign_button = QPushButton("Assign", self)
        self.assign_button.setToolTip("Put the selected clusters in this class (a cluster belongs to one class)")
        self.assign_button.clicked.connect(self.assign)
        row.addWidget(self.name_edit, 1)
        row.addWidget(self.assign_button)
        layout.addLayout(row)
        self.class_list = QListWidget(self)
        layout.addWidget(self.class_list, 1)
        buttons = [("Remove", self.remove_selected_class), ("Class map", self.make_class_map),
                   ("Polygonize", self.polygonize_selected), ("Save…", self._save_dialog),
                   ("Load…", self._load_dialog)]
        row = QHBoxLayout()
        self.buttons = {}
        for text, slot in buttons:
            button = QPushButton(text, self)
            button.clicked.connect(slot)
            row.addWidget(button)
            self.buttons[text.rstrip("…")] = button
        self.buttons["Class map"].setToolTip("Write the named-class map (and its per-class area CSV) and add it")
        self.buttons["Polygonize"].setToolTip("Polygons of the class selected above, in a GeoPackage")
        layout.addLayout(row)

    # -- clusters ------------------------------------------------------------------------------
    def refresh(self) -> None:
        """Count the cells of every cluster of the current layer (in a background task)."""
        layer = self.dock.current_layer()
        self.table.setRowCount(0)
        self.stats = None
        if not isinstance(layer, QgsRasterLayer) or not classification_path(layer):
            self.status.emit("Choose a coredino classification layer to list its clusters.")
            return
        known = cached(layer)
        if known is not None:
            self._stats_done(known, "")
            return
        self.task = ClusterStatsTask(layer)
        self.task.done.connect(self._stats_done)
        self.status.emit(f"Counting the clusters of {layer.name()}...")
        QgsApplication.taskManager().addTask(self.task)

    def _stats_done(self, stats, error: str) -> None:
        self.task = None
        if stats is None:
            self.status.emit(f"Cannot count the clusters: {error}")
            return
        self.stats = stats
        layer = self.dock.current_layer()
        colors = cluster_colors(layer) if layer is not None else {}
        ranked = sorted(stats.counts.items(), key=lambda item: (-item[1], item[0]))
        self.table.setSortingEnabled(False)  # rows would move while they are filled
        self.table.setRowCount(len(ranked))
        for row, (value, cells) in enumerate(ranked):
            item = NumberItem(str(value), value, swatch(colors.get(value, QColor("black"))))
            item.setData(Qt.ItemDataRole.UserRole, value)
            self.table.setItem(row, 0, item)
            self.table.setItem(row, 1, NumberItem(f"{stats.area(value) / 1e4:.3f}", cells))
            self.table.setItem(row, 2, NumberItem(f"{100 * stats.share(value):.2f}", cells))
        self.table.setSortingEnabled(True)
        self.table.sortItems(1, Qt.SortOrder.DescendingOrder)  # largest first
        self.table.resizeColumnsToContents()
        self._filter(self.search_edit.text())
        self.status.emit(f"{len(ranked)} clusters over {format_area(stats.total * stats.cell_area)}.")
        self.stats_ready.emit()

    def selected_values(self) -> list[int]:
        rows = sorted({index.row() for index in self.table.selectedIndexes()})
        return [int(self.table.item(row, 0).data(Qt.ItemDataRole.UserRole)) for row in rows]

    def _filter(self, query: str) -> None:
        for row in range(self.table.rowCount()):
            item = self.table.item(row, 0)
            self.table.setRowHidden(row, not matches(int(item.data(Qt.ItemDataRole.UserRole)), query))

    def select_values(self, values, add: bool = False) -> None:
        """Select the rows of ``values`` (``add``: keep the current selection too) and show the first."""
        wanted = {int(v) for v in values} | (set(self.selected_values()) if add else set())
        self.table.clearSelection()
        mode = self.table.selectionMode()
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.MultiSelection)
        for row in range(self.table.rowCount()):
            if int(self.table.item(row, 0).data(Qt.ItemDataRole.UserRole)) in wanted:
                self.table.setRowHidden(row, False)
                self.table.selectRow(row)
                self.table.scrollToItem(self.table.item(row, 0))
        self.table.setSelectionMode(mode)

    def _selection_changed(self) -> None:
        values = self.selected_values()
        self.dock.set_highlight(values, f"{len(values)} clusters" if len(values) != 1 else f"cluster {values[0]}")

    # -- classes -------------------------------------------------------------------------------
    def assign(self) -> None:
        name = self.name_edit.text().strip()
        values = self.selected_values()
        if not name or not values:
            self.status.emit("Select clusters in the table and type a class name.")
            return
        for other in list(self.classes):
            self.classes[other] = [v for v in self.classes[other] if v not in values]
            if not self.classes[other] and other != name:
                del self.classes[other]
        self.classes[name] = sorted(set(self.classes.get(name, [])) | set(values))
        self._show_classes()

    def remove_selected_class(self) -> None:
        name = self.selected_class()
        if name:
            self.classes.pop(name, None)
            self._show_classes()

    def selected_class(self) -> str:
        item = self.class_list.currentItem()
        return item.data(Qt.ItemDataRole.UserRole) if item is not None else ""

    def _show_classes(self) -> None:
        current = self.selected_class()
        self.class_list.clear()
        for i, (name, ids) in enumerate(self.classes.items()):
            area = f", {format_area(sum(self.stats.area(v) for v in ids))}" if self.stats else ""
            self.class_list.addItem(f"{name}: {len(ids)} clusters{area}")
            item = self.class_list.item(i)
            item.setData(Qt.ItemDataRole.UserRole, name)
            item.setIcon(swatch(QColor(PALETTE[i % len(PALETTE)])))
            if name == current:
                self.class_list.setCurrentItem(item)

    def save_classes(self, path: str) -> None:
        sha = coredino_tags(self.dock.current_layer()).get("CODEBOOK_SHA256")
        try:
            save_classes(path, self.classes, sha)
        except OSError as exc:
            self.status.emit(f"Cannot save {path}: {exc.strerror}.")
            return
        self.status.emit(f"Saved {len(self.classes)} classes to {path}.")

    def load_classes(self, path: str) -> None:
        tags = coredino_tags(self.dock.current_layer())
        try:
            raw, made_for = load_classes(path)
            classes = validate(raw, int(tags.get("K") or 65535), path)
        except UserError as exc:
            self.status.emit(f"{exc}.")
            return
        sha = tags.get("CODEBOOK_SHA256")
        if made_for and sha and made_for != sha:
            self.status.emit(f"{path} was made for another codebook: its cluster ids mean other things here.")
            return
        self.classes = classes
        self._show_classes()
        self.status.emit(f"Loaded {len(classes)} classes from {path}.")

    def _save_dialog(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Save classes", "", "coredino classes (*.classes.json)")
        if path:
            self.save_classes(path if path.endswith(".json") else path + ".classes.json")

    def _load_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Load classes", "", "coredino classes (*.json)")
        if path:
            self.load_classes(path)

    # -- jobs ----------------------------------------------------------------------------------
    def make_class_map(self) -> None:
        path = classification_path(self.dock.current_layer())
        if not path or not self.classes:
            self.status.emit("Choose a classification layer and assign clusters to at least one class.")
            return
        if self.class_layer is not None:  # release the file before the backend replaces it
            QgsProject.instance().removeMapLayer(self.class_layer.id())
            self.class_layer = None
        self.submit.emit(ReclassifyParams(path, sibling(path, "_named.tif"), dict(self.classes)),
                         self._class_map_done)

    def _class_map_done(self, result: ReclassifyResult) -> str:
        layer = QgsRasterLayer(result.output, Path(result.output).stem, "gdal")
        if not layer.isValid():
            return f"QGIS cannot open {result.output}"
        self.class_layer = add_above(layer, self.dock.current_layer())
        areas = ", ".join(f"{c.name} {c.area_ha:.2f} ha" for c in result.classes)
        return f"Class map added ({areas}); areas in {result.csv}."

    def polygonize_selected(self) -> None:
        self.polygonize(self.selected_class() or next(iter(self.classes), ""))

    def polygonize(self, name: str) -> None:
        if self.class_layer is None or not name:
            self.status.emit("Make the class map first, then pick a class to polygonize.")
            return
        source = self.class_layer.source()
        safe = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in name)
        self.submit.emit(PolygonizeParams(source, sibling(source, f"_{safe}.gpkg"), class_name=name),
                         self._polygons_done)

    def _polygons_done(self, result: PolygonizeResult) -> str:
        layer = QgsVectorLayer(f"{result.output}|layername={result.layer}", result.class_name, "ogr")
        if not layer.isValid():
            return f"QGIS cannot open {result.output}"
        names = list(self.classes)
        index = names.index(result.class_name) if result.class_name in names else 0
        style_polygons(layer, QColor(PALETTE[index % len(PALETTE)]))
        self.polygon_layer = add_above(layer, self.class_layer)
        return f"{result.features} polygons of {result.class_name} ({format_area(result.area_m2)}) in {result.output}."
