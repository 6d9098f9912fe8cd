"""What the coredino algorithms share: group, icon, help, and turning layers into backend paths."""

from __future__ import annotations

import os

from typing import Any

from qgis.core import QgsProcessingAlgorithm, QgsProcessingException, QgsProcessingFeedback, QgsRasterLayer
from qgis.PyQt.QtGui import QIcon

from ..job_follower import run_blocking
from ..layer_export import local_raster_path

ICON = os.path.join(os.path.dirname(os.path.dirname(__file__)), "icon.svg")


class CoredinoAlgorithm(QgsProcessingAlgorithm):
    NAME = ""
    DISPLAY = ""
    HELP = ""

    def name(self):
        return self.NAME

    def displayName(self):
        return self.DISPLAY

    def shortHelpString(self):
        return self.HELP + ("\n\nRuns in the coredino backend (`coredino serve`, found through "
                            "~/.cache/coredino/service/service-<port>.json or started with the Python set in "
                            "Plugins > coredino > Settings). Paths are paths on the backend's machine.")

    def icon(self):
        return QIcon(ICON)

    def createInstance(self):
        return type(self)()

    def run_job(self, params: Any, feedback: QgsProcessingFeedback) -> Any:
        """Run a job on the backend (started by the provider's launcher if none answers); its result."""
        return run_blocking(self.provider().launcher, params, feedback)


def layer_path(layer: QgsRasterLayer, what: str) -> str:
    path = local_raster_path(layer) if layer is not None else None
    if not path:
        name = layer.name() if layer is not None else what
        raise QgsProcessingException(
            f"{name} is not a local raster file; the backend reads files: save it first (Raster > Conversion > "
            "Translate), or classify it from the coredino dock, which exports the map view.")
    return path
