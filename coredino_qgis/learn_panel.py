"""The "Learn" tab: examples by clicks (or a vector layer), a classifier on the kept embeddings,
the named map with its confidence and margin layers; rerun after clicking where it is wrong.

Clicked examples live in a memory point layer ("coredino examples", field ``class``) in the
classification's CRS, so they are visible, editable and savable like any layer.
"""

from __future__ import annotations

from pathlib import Path

from qgis.core import (
    QgsCategorizedSymbolRenderer,
    QgsCoordinateTransform,
    QgsFeature,
    QgsField,
    QgsGeometry,
    QgsMapLayerProxyModel,
    QgsMarkerSymbol,
    QgsPointXY,
    QgsProject,
    QgsRasterLayer,
    QgsRendererCategory,
    QgsVectorLayer,
)
from qgis.gui import QgsFieldComboBox, QgsMapLayerComboBox
from qgis.PyQt.QtCore import QVariant, pyqtSignal
from qgis.PyQt.QtWidgets import (
    QComboBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from .contract import LearnParams, LearnResult, SimilarExamples
from .contract.classes import PALETTE
from .contract.params import CLASSIFIERS
from .layer_info import add_above, classification_path, has_embeddings, sibling

EXAMPLES_NAME = "coredino examples"


def accuracy_text(result: LearnResult) -> str:
    """One line per class: examples and cross-validated accuracy; then the overall accuracy."""
    lines = []
    for score in result.scores:
        accuracy = "n/a" if score.accuracy is None else f"{100 * score.accuracy:.0f} %"
        lines.append(f"{score.name}: {score.examples} examples, cross-validated {accuracy}")
    if result.accuracy is not None:
        lines.append(f"overall: {100 * result.accuracy:.0f} % (grouped cross-validation)")
    return "\n".join(lines)


class LearnPanel(QWidget):
    """Emits ``submit(params, on_done)`` for the dock to run and ``status(text)``."""

    submit = pyqtSignal(object, object)
    status = pyqtSignal(str)

    def __init__(self, dock, parent=None):
        super().__init__(parent)
        self.dock = dock
        self.examples: QgsVectorLayer | None = None
        self.similar: list[SimilarExamples] = []  # similarity maps added as examples
        self.result: LearnResult | None = None
        self.layers: list = []  # named map, confidence, margin of the last run
        self._build()

    def _build(self) -> None:
        layout = QVBoxLayout(self)
        help_text = QLabel("Type or pick a class, press <b>Click examples</b> and click the map (right "
                           "click removes the nearest example); then <b>Learn</b>. Click where the map is "
                           "wrong (the margin layer shows where it hesitates) and Learn again.", self)
        help_text.setWordWrap(True)
        layout.addWidget(help_text)
        row = QHBoxLayout()
        self.class_combo = QComboBox(self)
        self.class_combo.setEditable(True)
        self.class_combo.lineEdit().setPlaceholderText("class name, e.g. buildings")
        self.click_button = QPushButton("Click examples", self)
        self.click_button.setCheckable(True)
        row.addWidget(self.class_combo, 1)
        row.addWidget(self.click_button)
        layout.addLayout(row)
        row = QHBoxLayout()
        row.addWidget(QLabel("or from layer", self))
        self.vector_combo = QgsMapLayerComboBox(self)
        self.vector_combo.setFilters(QgsMapLayerProxyModel.Filter.PointLayer | QgsMapLayerProxyModel.Filter.PolygonLayer)
        self.vector_combo.setAllowEmptyLayer(True)
        self.vector_combo.setLayer(None)
        self.field_combo = QgsFieldComboBox(self)
        self.vector_combo.layerChanged.connect(self.field_combo.setLayer)
        row.addWidget(self.vector_combo, 1)
        row.addWidget(self.field_combo)
        layout.addLayout(row)
        row = QHBoxLayout()
        self.classifier_combo = QComboBox(self)
        self.classifier_combo.addItems(CLASSIFIERS)
        self.classifier_combo.setToolTip("logistic regression (the most accurate in docs/learn.md) or "
                                         "k nearest examples")
        self.similar_button = QPushButton("Similarity → class", self)
        self.similar_button.setToolTip("Add the similarity map (Similar tab) above its threshold as "
                                       "examples of the class above")
        self.similar_button.clicked.connect(self.add_similarity)
        self.clear_button = QPushButton("Clear", self)
        self.clear_button.clicked.connect(self.clear)
        row.addWidget(self.classifier_combo)
        row.addWidget(self.similar_button)
        row.addWidget(self.clear_button)
        layout.addLayout(row)
        self.learn_button = QPushButton("Learn", self)
        self.learn_button.clicked.connect(self.learn)
        layout.addWidget(self.learn_button)
        self.examples_label = QLabel("No examples yet.", self)
        self.scores_label = QLabel("", self)
        self.scores_label.setWordWrap(True)
        layout.addWidget(self.examples_label)
        layout.addWidget(self.scores_label)
        layout.addStretch(1)

    # -- examples ----------------------------------------------------------------------------
    def class_order(self) -> list[str]:
        """Class names in the order the backend numbers them (first appearance)."""
        names = []
        if self.examples is not None:
            for feature in self.examples.getFeatures():
                if feature["class"] not in names:
                    names.append(feature["class"])
        return names

    def _examples_layer(self, crs) -> QgsVectorLayer:
        project = QgsProject.instance()
        if self.examples is not None and project.mapLayer(self.examples.id()) is not None \
                and self.examples.crs() == crs:
            return self.examples
        layer = QgsVectorLayer(f"Point?crs={crs.authid() or crs.toWkt()}", EXAMPLES_NAME, "memory")
        layer.dataProvider().addAttributes([QgsField("class", QVariant.String)])
        layer.updateFields()
        project.addMapLayer(layer)
        self.vector_combo.setExceptedLayerList([layer])
        self.examples = layer
        return layer

    def add_click(self, point: QgsPointXY, add: bool) -> None:
        """A click (canvas CRS): add an example of the current class, or remove the nearest one."""
        layer = self.dock.current_layer()
        if layer is None:
            self.status.emit("Choose a classification layer first.")
            return
        canvas = self.dock.canvas()
        if canvas is not None:
            point = QgsCoordinateTransform(canvas.mapSettings().destinationCrs(), layer.crs(),
                                           QgsProject.instance()).transform(point)
        examples = self._examples_layer(layer.crs())
        if not add:
            nearest = min(examples.getFeatures(), default=None,
                          key=lambda f: f.geometry().asPoint().sqrDist(point))
            if nearest is not None:
                examples.dataProvider().deleteFeatures([nearest.id()])
        else:
            name = self.class_combo.currentText().strip()
            if not name:
                self.status.emit("Type a class name before clicking examples.")
                return
            if self.class_combo.findText(name) < 0:
                self.class_combo.addItem(name)
            feature = QgsFeature(examples.fields())
            feature.setGeometry(QgsGeometry.fromPointXY(QgsPointXY(point)))
            feature.setAttribute("class", name)
            examples.dataProvider().addFeatures([feature])
        self._restyle_examples()

    def _restyle_examples(self) -> None:
        names = self.class_order()
        categories = []
        for i, name in enumerate(names):
            symbol = QgsMarkerSymbol.createSimple({"name": "circle", "size": "3", "outline_color": "white",
                                                   "color": PALETTE[i % len(PALETTE)]})
            categories.append(QgsRendererCategory(name, symbol, name))
        self.examples.setRenderer(QgsCategorizedSymbolRenderer("class", categories))
        self.examples.triggerRepaint()
        counts = {n: 0 for n in names}
        for feature in self.examples.getFeatures():
            counts[feature["class"]] += 1
        self.examples_label.setText(", ".join(f"{n}: {c}" for n, c in counts.items()) or "No examples yet.")

    def points(self) -> dict:
        """Class name -> [(x, y)] in the classification's CRS, in class order."""
        out: dict[str, list] = {}
        if self.examples is not None and QgsProject.instance().mapLayer(self.examples.id()) is not None:
            for feature in self.examples.getFeatures():
                p = feature.geometry().asPoint()
                out.setdefault(feature["class"], []).append((p.x(), p.y()))
        return out

    def add_similarity(self) -> None:
        panel = self.dock.similar_panel
        name = self.class_combo.currentText().strip()
        if panel.result is None or not name:
            self.status.emit("Find similar places first (Similar tab) and type the class they belong to.")
            return
        threshold = panel.slider.value() / 100.0
        self.similar.append(SimilarExamples(name, panel.result.output, threshold))
        self.status.emit(f"Cells of {Path(panel.result.output).name} with similarity ≥ {threshold:.2f} "
                         f"are examples of {name} at the next Learn.")

    def clear(self) -> None:
        if self.examples is not None and QgsProject.instance().mapLayer(self.examples.id()) is not None:
            QgsProject.instance().removeMapLayer(self.examples.id())
        self.examples = None
        self.similar.clear()
        self.examples_label.setText("No examples yet.")

    # -- job -----------------------------------------------------------------------------------
    def params(self, path: str) -> LearnParams:
        params = LearnParams(path, sibling(path, "_learned.tif"), self.points(), similar=list(self.similar),
                             classifier=self.classifier_combo.currentText())
        vector = self.vector_combo.currentLayer()
        if vector is not None:
            params.examples, params.class_field = vector.source().split("|")[0], self.field_combo.currentField()
        return params

    def learn(self) -> None:
        layer = self.dock.current_layer()
        path = classification_path(layer)
        if not path or not has_embeddings(path):
            self.status.emit("Choose a coredino classification with embeddings (classify with 'Keep "
                             "embeddings').")
            return
        params = self.params(path)
        if not params.points and not params.similar and not params.examples:
            self.status.emit("Click examples of at least two classes first.")
            return
        for old in self.layers:  # release the files before the backend replaces them
            if QgsProject.instance().mapLayer(old.id()) is not None:
                QgsProject.instance().removeMapLayer(old.id())
        self.layers = []
        self.submit.emit(params, self._done)

    def _done(self, result: LearnResult) -> str:
        reference = self.dock.current_layer()
        layers = []
        for path, name in ((result.margin, "margin (click here next)"), (result.confidence, "confidence"),
                           (result.output, "learned classes")):
            if path:
                layer = QgsRasterLayer(path, name, "gdal")
                if not layer.isValid():
                    return f"QGIS cannot open {path}"
                layers.append(layer)
        root = QgsProject.instance().layerTreeRoot()
        for layer in layers:  # each goes just above the classification: the named map ends on top
            add_above(layer, reference)
            root.findLayer(layer.id()).setItemVisibilityChecked(layer.source() == result.output)
        self.layers = layers
        self.result = result
        self.scores_label.setText(accuracy_text(result))
        areas = ", ".join(f"{c.name} {c.area_ha:.2f} ha" for c in result.classes if c.value)
        overall = "" if result.accuracy is None else f"; cross-validated accuracy {100 * result.accuracy:.0f} %"
        return f"Learned map added in {result.seconds:.1f} s ({areas}){overall}."
