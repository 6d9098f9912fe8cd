"""coredino:levels: a classification at a coarser level (N groups of the codebook's cluster tree)."""

from __future__ import annotations

from qgis.core import (
    QgsProcessingOutputFile,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterDestination,
    QgsProcessingParameterRasterLayer,
)

from ..contract import LevelsParams
from .base_algorithm import CoredinoAlgorithm, layer_path
from .compat import INTEGER


class LevelsAlgorithm(CoredinoAlgorithm):
    NAME = "levels"
    DISPLAY = "Coarser class map (groups of clusters)"
    HELP = ("Groups the clusters of a classification into LEVEL groups by the codebook's merge tree "
            "(without re-running the encoder) and writes the grouped map: group colours from the "
            "clusters', a legend of the groups present, largest first, with their area, and "
            "<output>_areas.csv.")

    def initAlgorithm(self, config=None):
        self.addParameter(QgsProcessingParameterRasterLayer("INPUT", "Classification (cluster map)"))
        self.addParameter(QgsProcessingParameterNumber("LEVEL", "Number of groups", INTEGER, 16, minValue=1))
        self.addParameter(QgsProcessingParameterRasterDestination("OUTPUT", "Coarser map"))
        self.addOutput(QgsProcessingOutputFile("AREAS", "Per-group areas (CSV)"))

    def processAlgorithm(self, parameters, context, feedback):
        source = layer_path(self.parameterAsRasterLayer(parameters, "INPUT", context), "INPUT")
        level = self.parameterAsInt(parameters, "LEVEL", context)
        output = self.parameterAsOutputLayer(parameters, "OUTPUT", context)
        result = self.run_job(LevelsParams(source, [level], output), feedback)
        view = result.views[0]
        for group in view.groups:
            feedback.pushInfo(f"group {group.group}: {group.cells} cells, {group.area_m2 / 1e4:.3f} ha")
        return {"OUTPUT": view.path, "AREAS": view.csv}
