"""Adding a classified COG to the project, styled with only the classes present.

The backend writes ``<output>.qml`` beside the COG, which QGIS loads as the layer's default
style (a paletted renderer with the clusters that occur). Without it, QGIS would list every
entry of the colour table (65536 for UInt16), so the plugin then builds that style itself.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

from qgis.core import QgsLayerTreeGroup, QgsLayerTreeLayer, QgsPalettedRasterRenderer, QgsProject, QgsRasterLayer

from .contract.styles import cluster_label
from .log import WARNING, log


LEGEND_EXPANDED_MAX = 50


class ResultError(Exception):
    pass


def group_name(source_name: str) -> str:
    return f"{source_name} — coredino"


def present_class_data(layer: QgsRasterLayer, classes: Optional[dict]) -> list:
    """Paletted classes for the ids in ``classes`` (id -> cells), largest first, or scanned from the raster."""
    provider = layer.dataProvider()
    colors = {c.value: c.color for c in QgsPalettedRasterRenderer.colorTableToClassData(provider.colorTable(1))}
    if classes:
        counts = {int(k): int(v) for k, v in classes.items()}
    else:
        counts = {int(c.value): 0 for c in QgsPalettedRasterRenderer.classDataFromRaster(provider, 1)}
    total = max(1, sum(counts.values()))
    out = []
    for value, cells in sorted(counts.items(), key=lambda item: (-item[1], item[0])):
        color = colors.get(value)
        if color is None:
            continue
        label = cluster_label(value, cells, total) if classes else f"cluster {value}"
        out.append(QgsPalettedRasterRenderer.Class(value, color, label))
    return out


def style_with_present_classes(layer: QgsRasterLayer, classes: Optional[dict] = None) -> bool:
    """Keep the sidecar's paletted style when it matches ``classes``; otherwise build one. True if restyled."""
    renderer = layer.renderer()
    sidecar = os.path.isfile(os.path.splitext(layer.source())[0] + ".qml")
    if renderer is not None and renderer.type() == "paletted":
        values = {c.value for c in renderer.classes()}
        if (classes and values == {int(k) for k in classes}) or (not classes and sidecar):
            return False
    class_data = present_class_data(layer, classes)
    if not class_data:
        log(f"{layer.source()} has no colour table; left with QGIS's default style", WARNING)
        return False
    layer.setRenderer(QgsPalettedRasterRenderer(layer.dataProvider(), 1, class_data))
    layer.triggerRepaint()
    return True


def result_group(project: QgsProject, source_layer: Optional[QgsRasterLayer], name: str) -> QgsLayerTreeGroup:
    """The group ``name`` directly above the source layer (created when missing)."""
    root = project.layerTreeRoot()
    node = root.findLayer(source_layer.id()) if source_layer is not None else None
    parent = node.parent() if node is not None else root
    for child in parent.children():
        if isinstance(child, QgsLayerTreeGroup) and child.name() == name:
            return child
    index = parent.children().index(node) if node is not None else 0
    return parent.insertGroup(index, name)


def add_classified_layer(path: str, source_layer: Optional[QgsRasterLayer], classes: Optional[dict] = None,
                         project: Optional[QgsProject] = None) -> QgsRasterLayer:
    """Open ``path``, style it, and add it to a group named after the source layer, placed above it."""
    project = project or QgsProject.instance()
    layer = QgsRasterLayer(path, Path(path).stem)
    if not layer.isValid():
        raise ResultError(f"QGIS cannot open the result {path}: {layer.error().summary() or 'invalid raster'}")
    style_with_present_classes(layer, classes)
    source_name = source_layer.name() if source_layer is not None else Path(path).stem
    group = result_group(project, source_layer, group_name(source_name))
    for old in group.findLayers():  # a re-run into the same file replaces the previous layer
        if old.layer() is not None and old.layer().source() == layer.source():
            project.removeMapLayer(old.layer().id())
    project.addMapLayer(layer, False)
    node = QgsLayerTreeLayer(layer)
    renderer = layer.renderer()
    if renderer.type() == "paletted" and len(renderer.classes()) > LEGEND_EXPANDED_MAX:
        node.setExpanded(False)  # thousands of legend entries would push the source layer out of sight
    group.insertChildNode(0, node)
    return layer
