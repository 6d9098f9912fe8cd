"""Map tools of the explore dock: Inspect (one click) and Find similar (positive / negative clicks)."""

from __future__ import annotations

from qgis.core import QgsPointXY
from qgis.gui import QgsMapTool, QgsVertexMarker
from qgis.PyQt.QtCore import Qt, pyqtSignal
from qgis.PyQt.QtGui import QColor


class InspectTool(QgsMapTool):
    """Emits ``picked(point)`` (canvas CRS) at each left click."""

    picked = pyqtSignal(QgsPointXY)

    def __init__(self, canvas):
        super().__init__(canvas)
        self.setCursor(Qt.CursorShape.WhatsThisCursor)

    def canvasReleaseEvent(self, event):  # noqa: N802 (QGIS's name)
        if event.button() == Qt.MouseButton.LeftButton:
            self.picked.emit(QgsPointXY(event.mapPoint()))


class SimilarClickTool(QgsMapTool):
    """Left click: a positive example; Shift+left or right click: a negative one.

    Emits ``clicked(point, positive)`` (canvas CRS) and marks each click on the canvas (green
    cross: positive, red X: negative) until :meth:`clear_markers`.
    """

    clicked = pyqtSignal(QgsPointXY, bool)

    def __init__(self, canvas):
        super().__init__(canvas)
        self.markers: list[QgsVertexMarker] = []
        self.setCursor(Qt.CursorShape.CrossCursor)

    def canvasReleaseEvent(self, event):  # noqa: N802
        negative = event.button() == Qt.MouseButton.RightButton or (
            event.button() == Qt.MouseButton.LeftButton
            and bool(event.modifiers() & Qt.KeyboardModifier.ShiftModifier))
        if event.button() not in (Qt.MouseButton.LeftButton, Qt.MouseButton.RightButton):
            return
        point = QgsPointXY(event.mapPoint())
        self.add_marker(point, not negative)
        self.clicked.emit(point, not negative)

    def add_marker(self, point: QgsPointXY, positive: bool) -> None:
        marker = QgsVertexMarker(self.canvas())
        marker.setCenter(point)
        marker.setIconType(QgsVertexMarker.IconType.ICON_CROSS if positive else QgsVertexMarker.IconType.ICON_X)
        marker.setColor(QColor(0, 200, 0) if positive else QColor(230, 0, 0))
        marker.setIconSize(14)
        marker.setPenWidth(3)
        self.markers.append(marker)

    def clear_markers(self) -> None:
        scene = self.canvas().scene()
        for marker in self.markers:
            scene.removeItem(marker)
        self.markers.clear()
