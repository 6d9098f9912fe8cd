"""coredino:classify: one raster layer -> a styled COG of cluster ids."""

from __future__ import annotations

from qgis.core import (
    QgsProcessingParameterFile,
    QgsProcessingParameterRasterDestination,
    QgsProcessingParameterRasterLayer,
)

from ..contract import ClassifyOptions, ClassifyParams
from ..settings import PluginSettings
from .base_algorithm import CoredinoAlgorithm, layer_path


class ClassifyAlgorithm(CoredinoAlgorithm):
    NAME = "classify"
    DISPLAY = "Classify raster"
    HELP = ("Classifies a raster into clusters of a codebook and writes a Cloud-Optimized GeoTIFF of "
            "cluster ids with the codebook's colours and a .qml style listing only the clusters present. "
            "CODEBOOK: a .codebook.npz file (empty: the backend's default).")

    def initAlgorithm(self, config=None):
        self.addParameter(QgsProcessingParameterRasterLayer("INPUT", "Raster layer (a local file)"))
        self.addParameter(QgsProcessingParameterFile("CODEBOOK", "Codebook (empty: the backend's default)",
                                                     extension="npz", optional=True))
        self.addParameter(QgsProcessingParameterRasterDestination("OUTPUT", "Classified raster"))

    def processAlgorithm(self, parameters, context, feedback):
        source = layer_path(self.parameterAsRasterLayer(parameters, "INPUT", context), "INPUT")
        codebook = self.parameterAsFile(parameters, "CODEBOOK", context) or None
        output = self.parameterAsOutputLayer(parameters, "OUTPUT", context)
        result = self.run_job(ClassifyParams(source, output, ClassifyOptions(codebook=codebook, runtime=PluginSettings.load().runtime)), feedback)
        for warning in result.warnings:
            feedback.pushWarning(warning)
        feedback.pushInfo(f"{len(result.classes)} classes, {result.tiles} tiles in {result.seconds:.1f} s "
                          f"on {result.device}")
        return {"OUTPUT": result.output}
