"""Processing outputs styled as the dock styles its results.

Processing opens the layers it loads without their default style, so the backend's ``.qml``
sidecar is ignored and a UInt16 cluster map lists its whole 65,536-entry colour table. A layer
post-processor applies the sidecar and, for a cluster map, the style of only the present classes.
"""

from __future__ import annotations

import os
from typing import Optional

from qgis.core import QgsProcessingContext, QgsProcessingLayerPostProcessorInterface, QgsRasterLayer

from ..contract.naming import style_path
from ..results import style_with_present_classes

KEPT = 16  # Processing holds only a C++ pointer: the last post-processors are kept alive here


class SidecarStyle(QgsProcessingLayerPostProcessorInterface):
    _alive: list = []

    def __init__(self, classes: Optional[dict] = None):
        super().__init__()
        self.classes = classes

    def postProcessLayer(self, layer, context, feedback):  # noqa: N802 (QGIS's name)
        if not isinstance(layer, QgsRasterLayer):
            return
        sidecar = style_path(layer.source())
        if os.path.isfile(sidecar):
            layer.loadNamedStyle(sidecar)
        if self.classes is not None:
            style_with_present_classes(layer, self.classes)
        layer.triggerRepaint()


def style_when_loaded(context: QgsProcessingContext, output: str, classes: Optional[dict] = None) -> None:
    """Style ``output`` when Processing adds it to the project (desktop runs; no-op in qgis_process)."""
    if not context.willLoadLayerOnCompletion(output):
        return
    processor = SidecarStyle(classes)
    SidecarStyle._alive = SidecarStyle._alive[-KEPT + 1:] + [processor]
    context.layerToLoadOnCompletionDetails(output).setPostProcessor(processor)
