"""coredino:reclassify: cluster ids -> named classes (a class map and its per-class areas)."""

from __future__ import annotations

from qgis.core import (
    QgsProcessingOutputFile,
    QgsProcessingParameterFile,
    QgsProcessingParameterRasterDestination,
    QgsProcessingParameterRasterLayer,
)

from ..contract import ReclassifyParams
from .base_algorithm import CoredinoAlgorithm, layer_path
from .output_style import style_when_loaded


class ReclassifyAlgorithm(CoredinoAlgorithm):
    NAME = "reclassify"
    DISPLAY = "Named classes from clusters"
    HELP = ("Maps the cluster ids of a classification to named classes listed in a .classes.json file "
            "({\"classes\": {\"buildings\": [12, 407]}, \"codebook_sha256\": ...}; the explore dock saves "
            "one). Writes a Byte class map (0 unclassified, 1.. the classes, 255 nodata) with a colour "
            "table, class names and a QGIS style, and <output>_areas.csv with each class's area.")

    def initAlgorithm(self, config=None):
        self.addParameter(QgsProcessingParameterRasterLayer("INPUT", "Classification (cluster map)"))
        self.addParameter(QgsProcessingParameterFile("CLASSES", "Classes file (.classes.json)", extension="json"))
        self.addParameter(QgsProcessingParameterRasterDestination("OUTPUT", "Class map"))
        self.addOutput(QgsProcessingOutputFile("AREAS", "Per-class areas (CSV)"))

    def processAlgorithm(self, parameters, context, feedback):
        source = layer_path(self.parameterAsRasterLayer(parameters, "INPUT", context), "INPUT")
        classes_file = self.parameterAsFile(parameters, "CLASSES", context)
        output = self.parameterAsOutputLayer(parameters, "OUTPUT", context)
        result = self.run_job(ReclassifyParams(source, output, classes_file=classes_file), feedback)
        for row in result.classes:
            feedback.pushInfo(f"{row.value:3d} {row.name}: {row.cells} cells, {row.area_ha:.3f} ha")
        style_when_loaded(context, result.output)
        return {"OUTPUT": result.output, "AREAS": result.csv}
