"""Map tools of the explore dock: Inspect (one click), Find similar (positive / negative clicks),
Learn examples (add / remove)."""

from __future__ import annotations

from qgis.core import QgsPointXY
from qgis.gui import QgsMapTool, QgsVertexMarker
from qgis.PyQt.QtCore import Qt, pyqtSignal
from qgis.PyQt.QtGui import QColor


class InspectTool(QgsMapTool):
    """Emits ``picked(point)`` (canvas CRS) at each left click; ``additive`` tells whether Ctrl was
    held (the cluster then joins the table's selection instead of replacing it)."""

    picked = pyqtSignal(QgsPointXY)

    def __init__(self, canvas):
        super().__init__(canvas)
        self.additive = False
        self.setCursor(Qt.CursorShape.WhatsThisCursor)

    def canvasReleaseEvent(self, event):  # noqa: N802 (QGIS's name)
        if event.button() == Qt.MouseButton.LeftButton:
            self.additive = bool(event.modifiers() & Qt.KeyboardModifier.ControlModifier)
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


class ExampleClickTool(QgsMapTool):
    """Learn examples: left click adds one (``clicked(point, True)``), right click removes the
    nearest (``clicked(point, False)``); points in the canvas CRS."""

    clicked = pyqtSignal(QgsPointXY, bool)

    def __init__(self, canvas):
        super().__init__(canvas)
        self.setCursor(Qt.CursorShape.CrossCursor)

    def canvasReleaseEvent(self, event):  # noqa: N802
        if event.button() in (Qt.MouseButton.LeftButton, Qt.MouseButton.RightButton):
            self.clicked.emit(QgsPointXY(event.mapPoint()), event.button() == Qt.MouseButton.LeftButton)
