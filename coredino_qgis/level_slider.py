"""The *detail* slider of the explore dock: the classification at 2, 4, 8, ... groups of clusters.

The first move asks the backend (a ``levels`` job) to write the coarser views beside the map
(``<map>_levels/level<N>.vrt`` with a ``.qml`` legend: the groups present, largest first, with
their area); every later move only swaps the view layer shown above the classification, so the
map restyles at once. The right end is the full detail: the view layer is removed.
"""

from __future__ import annotations

from pathlib import Path

from qgis.core import QgsProject, QgsRasterLayer
from qgis.PyQt.QtCore import Qt, pyqtSignal
from qgis.PyQt.QtWidgets import QHBoxLayout, QLabel, QSlider, QWidget

from .contract import LevelsParams, LevelsResult
from .contract.naming import level_view_path
from .contract.params import standard_levels
from .layer_info import add_above, classification_path, coredino_tags

FULL = "all clusters"


class DetailSlider(QWidget):
    """Emits ``submit(spec, on_done)`` (the levels job) and ``status(text)``."""

    submit = pyqtSignal(object, object)
    status = pyqtSignal(str)

    def __init__(self, dock, parent=None):
        super().__init__(parent)
        self.dock = dock
        self.views: dict[int, str] = {}  # level -> .vrt of the current classification
        self.view_layer: QgsRasterLayer | None = None
        self.levels: list[int] = []
        self._pending: int | None = None
        row = QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(QLabel("Detail", self))
        self.slider = QSlider(Qt.Orientation.Horizontal, self)
        self.slider.setToolTip("Coarser: groups of similar clusters (the codebook's cluster tree)")
        self.slider.valueChanged.connect(self._moved)
        self.label = QLabel(FULL, self)
        row.addWidget(self.slider, 1)
        row.addWidget(self.label)
        self.refresh()

    def refresh(self) -> None:
        """Follow the dock's current layer: back to full detail, views looked up again."""
        self.drop_view()
        self.views = {}
        layer = self.dock.current_layer()
        k = int(coredino_tags(layer).get("K") or 0) if classification_path(layer) else 0
        self.levels = standard_levels(k) if k > 1 else []
        self.slider.blockSignals(True)
        self.slider.setRange(0, max(0, len(self.levels) - 1))
        self.slider.setValue(max(0, len(self.levels) - 1))
        self.slider.blockSignals(False)
        self.slider.setEnabled(bool(self.levels))
        self.label.setText(FULL)
        if self.levels:
            self.views = self._existing(classification_path(layer))

    def _existing(self, path: str) -> dict[int, str]:
        views = {level: level_view_path(path, level) for level in self.levels[:-1]}
        return {level: view for level, view in views.items() if Path(view).is_file()}

    def level(self) -> int:
        return self.levels[self.slider.value()] if self.levels else 0

    def _moved(self, index: int) -> None:
        level = self.levels[index]
        self.label.setText(FULL if index == len(self.levels) - 1 else f"{level} groups")
        if index == len(self.levels) - 1:
            self.drop_view()
        elif level in self.views:
            self.show_level(level)
        elif self._pending is None:
            self._pending = level
            path = classification_path(self.dock.current_layer())
            self.submit.emit(LevelsParams(path), self._written)

    def _written(self, result: LevelsResult) -> str:
        self.views = {view.level: view.path for view in result.views}
        self._pending = None
        self.show_level(self.level())
        return f"{len(self.views)} coarser views written in {result.seconds:.1f} s."

    def show_level(self, level: int) -> None:
        """Show the view at ``level`` groups above the classification (none: full detail)."""
        self.drop_view()
        path = self.views.get(level)
        reference = self.dock.current_layer()
        if path is None or reference is None:
            return
        layer = QgsRasterLayer(path, f"{reference.name()} — {level} groups", "gdal")
        if not layer.isValid():
            self.status.emit(f"QGIS cannot open {path}")
            return
        self.dock.layer_combo.setExceptedLayerList([layer])
        self.view_layer = add_above(layer, reference)
        if self.dock.iface is not None:
            self.dock.iface.setActiveLayer(reference)

    def drop_view(self) -> None:
        if self.view_layer is not None and QgsProject.instance().mapLayer(self.view_layer.id()) is not None:
            QgsProject.instance().removeMapLayer(self.view_layer.id())
        self.view_layer = None
