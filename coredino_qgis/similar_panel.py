"""The "Similar" tab: collect clicks, run a similar job, threshold the result and report its area."""

from __future__ import annotations

from qgis.core import QgsCoordinateTransform, QgsPointXY, QgsProject, QgsRasterLayer
from qgis.PyQt.QtCore import Qt, pyqtSignal
from qgis.PyQt.QtWidgets import QHBoxLayout, QLabel, QPushButton, QSlider, QVBoxLayout, QWidget

from .explore_style import style_similarity
from .contract import SimilarParams, SimilarResult
from .layer_info import add_above, classification_path, has_embeddings, sibling

def format_area(m2: float) -> str:
    return f"{m2:,.0f} m² ({m2 / 1e4:,.2f} ha)"


class SimilarPanel(QWidget):
    """Emits ``submit(params, on_done)`` for the dock to run, ``status(text)`` for its status line."""

    submit = pyqtSignal(object, object)
    status = pyqtSignal(str)

    def __init__(self, dock, parent=None):
        super().__init__(parent)
        self.dock = dock
        self.positives: list[QgsPointXY] = []  # in the classification's CRS
        self.negatives: list[QgsPointXY] = []
        self.result: SimilarResult | None = None
        self.similarity_layer: QgsRasterLayer | None = None
        self._build()

    def _build(self) -> None:
        layout = QVBoxLayout(self)
        help_text = QLabel("With <b>Find similar</b> on: click places like the ones you look for; "
                           "Shift+click or right-click places unlike them.", self)
        help_text.setWordWrap(True)
        layout.addWidget(help_text)
        row = QHBoxLayout()
        self.clicks_label = QLabel("No clicks yet.", self)
        self.clear_button = QPushButton("Clear", self)
        self.clear_button.clicked.connect(self.clear_clicks)
        row.addWidget(self.clicks_label, 1)
        row.addWidget(self.clear_button)
        layout.addLayout(row)
        self.run_button = QPushButton("Find similar places", self)
        self.run_button.clicked.connect(self.run)
        layout.addWidget(self.run_button)
        row = QHBoxLayout()
        row.addWidget(QLabel("Threshold", self))
        self.slider = QSlider(Qt.Orientation.Horizontal, self)
        self.slider.setRange(-100, 100)  # similarity x 100
        self.slider.setEnabled(False)
        self.slider.valueChanged.connect(self._threshold_changed)
        self.threshold_label = QLabel("", self)
        row.addWidget(self.slider, 1)
        row.addWidget(self.threshold_label)
        layout.addLayout(row)
        self.area_label = QLabel("", self)
        self.area_label.setWordWrap(True)
        self.area_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        layout.addWidget(self.area_label)
        layout.addStretch(1)

    # -- clicks ------------------------------------------------------------------------------
    def add_click(self, point: QgsPointXY, positive: bool) -> None:
        """A click in the canvas CRS, kept in the classification layer's CRS."""
        layer = self.dock.current_layer()
        if layer is None:
            self.status.emit("Choose a classification layer first.")
            return
        canvas = self.dock.canvas()
        if canvas is not None:
            to_layer = QgsCoordinateTransform(canvas.mapSettings().destinationCrs(), layer.crs(),
                                              QgsProject.instance())
            point = to_layer.transform(point)
        (self.positives if positive else self.negatives).append(QgsPointXY(point))
        self.clicks_label.setText(f"{len(self.positives)} positive, {len(self.negatives)} negative clicks")

    def clear_clicks(self) -> None:
        self.positives.clear()
        self.negatives.clear()
        self.clicks_label.setText("No clicks yet.")
        self.dock.similar_tool.clear_markers()

    # -- job -----------------------------------------------------------------------------------
    def run(self) -> None:
        layer = self.dock.current_layer()
        path = classification_path(layer)
        if not path:
            self.status.emit("Choose a coredino classification layer (a cluster map written by classify).")
            return
        if not has_embeddings(path):
            self.status.emit(f"{layer.name()} has no embeddings beside it: classify it again with "
                             "'Keep embeddings' checked.")
            return
        if not self.positives:
            self.status.emit("Click at least one place like the ones you look for (Find similar tool).")
            return
        job = SimilarParams(path, sibling(path, "_similar.tif"),
                            [(p.x(), p.y()) for p in self.positives], [(p.x(), p.y()) for p in self.negatives])
        if self.similarity_layer is not None:  # release the file before the backend replaces it
            QgsProject.instance().removeMapLayer(self.similarity_layer.id())
            self.similarity_layer = None
        self.submit.emit(job, self._done)

    def _done(self, result: SimilarResult) -> str:
        layer = QgsRasterLayer(result.output, "similarity", "gdal")
        if not layer.isValid():
            return f"QGIS cannot open {result.output}"
        self.result = result
        self.similarity_layer = add_above(layer, self.dock.current_layer())
        self.slider.setEnabled(True)
        self.slider.blockSignals(True)
        self.slider.setValue(self.default_threshold())
        self.slider.blockSignals(False)
        self._threshold_changed(self.slider.value())
        return (f"Similarity of {result.cells} cells ({result.min:.2f} to {result.max:.2f}); move the "
                "threshold to outline the similar places.")

    # -- threshold -----------------------------------------------------------------------------
    def default_threshold(self) -> int:
        """Slider value (threshold x 100) leaving the most similar tenth of the cells above it."""
        return round(100 * self.result.threshold_for_share(0.1))

    def _threshold_changed(self, value: int) -> None:
        threshold = value / 100.0
        self.threshold_label.setText(f"{threshold:.2f}")
        if self.similarity_layer is None:
            return
        style_similarity(self.similarity_layer, threshold, self.result.max)
        area, share = self.result.area_above(threshold), self.result.share_above(threshold)
        self.area_label.setText(f"Similarity ≥ {threshold:.2f}: {format_area(area)}, "
                                f"{100 * share:.1f} % of the classified area")
