"""What the explore tools need to know about a layer: its file, its coredino tags, where to add results."""

from __future__ import annotations

import html
import json
import os
import re
from typing import Optional

from qgis.core import QgsLayerTreeLayer, QgsMapLayer, QgsProject, QgsRasterLayer

from .contract.naming import embeddings_path, is_cluster_map, sibling
from .layer_export import local_raster_path

_ITEM = re.compile(r"<li>([A-Z0-9_]+)=(.*?)</li>", re.S)


def coredino_tags(layer: QgsRasterLayer) -> dict:
    """The GDAL metadata items of a file-backed raster (as QGIS's provider lists them)."""
    if layer is None or not layer.isValid():
        return {}
    return {key: html.unescape(value) for key, value in _ITEM.findall(layer.dataProvider().htmlMetadata())}


def classification_path(layer: QgsRasterLayer) -> Optional[str]:
    """The file of a cluster map written by coredino classify (None for anything else)."""
    path = local_raster_path(layer) if isinstance(layer, QgsRasterLayer) else None
    return path if path and is_cluster_map(coredino_tags(layer)) else None


def class_names(layer: QgsRasterLayer) -> list:
    """Class names by value of a reclassified map ([] for other layers)."""
    try:
        names = json.loads(coredino_tags(layer).get("CLASS_NAMES") or "[]")
    except ValueError:
        return []
    return names if isinstance(names, list) else []


def has_embeddings(classes_path: str) -> bool:
    return os.path.isfile(embeddings_path(classes_path))


def add_above(layer: QgsMapLayer, reference: Optional[QgsMapLayer], project: Optional[QgsProject] = None,
              replace: bool = True) -> QgsMapLayer:
    """Add ``layer`` just above ``reference`` in its group; drop earlier layers of the same file."""
    project = project or QgsProject.instance()
    root = project.layerTreeRoot()
    if replace:
        for other in list(project.mapLayers().values()):
            if other.source() == layer.source() and other is not reference:
                project.removeMapLayer(other.id())
    node = root.findLayer(reference.id()) if reference is not None else None
    parent = node.parent() if node is not None else root
    index = parent.children().index(node) if node is not None else 0
    project.addMapLayer(layer, False)
    parent.insertChildNode(index, QgsLayerTreeLayer(layer))
    return layer
