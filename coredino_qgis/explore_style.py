"""Styles of the explore layers: the highlight overlay, the thresholded similarity, class polygons."""

from __future__ import annotations

from typing import Iterable, Optional

from qgis.core import (
    QgsColorRampShader,
    QgsFillSymbol,
    QgsPalettedRasterRenderer,
    QgsRasterLayer,
    QgsRasterShader,
    QgsSingleBandPseudoColorRenderer,
    QgsVectorLayer,
)
from qgis.PyQt.QtGui import QColor

from .contract.styles import SIMILARITY_RAMP

try:  # QGIS >= 3.30
    from qgis.core import Qgis
    LINEAR = Qgis.ShaderInterpolationMethod.Linear
except AttributeError:
    LINEAR = QgsColorRampShader.Type.Interpolated

HIGHLIGHT = QColor(255, 0, 255)  # magenta: rare on imagery and in the codebook palettes
HIGHLIGHT_NAME = "coredino highlight"


def cluster_colors(layer: QgsRasterLayer) -> dict:
    """Value -> QColor from the layer's paletted style (else its colour table)."""
    renderer = layer.renderer()
    if renderer is not None and renderer.type() == "paletted":
        return {int(c.value): QColor(c.color) for c in renderer.classes()}
    table = layer.dataProvider().colorTable(1)
    return {int(c.value): QColor(c.color) for c in QgsPalettedRasterRenderer.colorTableToClassData(table)}


def highlight_layer(source: QgsRasterLayer, values: Iterable[int], label: str) -> Optional[QgsRasterLayer]:
    """A second view of ``source`` drawing only ``values``, in magenta (every other cell transparent)."""
    values = sorted({int(v) for v in values})
    if not values:
        return None
    layer = QgsRasterLayer(source.source(), f"{HIGHLIGHT_NAME}: {label}", source.providerType())
    classes = [QgsPalettedRasterRenderer.Class(v, HIGHLIGHT, label) for v in values]
    layer.setRenderer(QgsPalettedRasterRenderer(layer.dataProvider(), 1, classes))
    layer.setCustomProperty("coredino/highlight", True)
    return layer


def style_similarity(layer: QgsRasterLayer, threshold: float, maximum: float) -> None:
    """Pseudocolour from ``threshold`` (dark) to ``maximum`` (yellow); cells below the threshold are not drawn."""
    top = max(maximum, threshold + 1e-3)
    ramp = QgsColorRampShader(threshold, top)
    ramp.setColorRampType(LINEAR)
    ramp.setColorRampItemList([_ramp_item(threshold + position * (top - threshold), color, alpha)
                               for position, color, alpha in SIMILARITY_RAMP])
    ramp.setClip(True)  # below the threshold: transparent
    shader = QgsRasterShader(threshold, top)
    shader.setRasterShaderFunction(ramp)
    renderer = QgsSingleBandPseudoColorRenderer(layer.dataProvider(), 1, shader)
    renderer.setClassificationMin(threshold)
    renderer.setClassificationMax(top)
    renderer.setOpacity(0.85)
    layer.setRenderer(renderer)
    layer.triggerRepaint()


def _ramp_item(value: float, color: str, alpha: int) -> QgsColorRampShader.ColorRampItem:
    qcolor = QColor(color)
    qcolor.setAlpha(alpha)
    return QgsColorRampShader.ColorRampItem(value, qcolor, f"{value:.2f}")


def style_polygons(layer: QgsVectorLayer, color: QColor) -> None:
    """Translucent fill in the class colour, solid outline."""
    r, g, b = color.red(), color.green(), color.blue()
    layer.renderer().setSymbol(QgsFillSymbol.createSimple(
        {"color": f"{r},{g},{b},90", "outline_color": f"{r},{g},{b},255", "outline_width": "0.4"}))
    layer.triggerRepaint()
