"""coredino:classify: one raster layer -> a styled COG of cluster ids."""

from __future__ import annotations

from qgis.core import (
    QgsProcessingOutputFile,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterFile,
    QgsProcessingParameterRasterDestination,
    QgsProcessingParameterRasterLayer,
)

from ..contract import ClassifyOptions, ClassifyParams
from ..settings import PluginSettings
from .base_algorithm import CoredinoAlgorithm, layer_path
from .output_style import style_when_loaded


class ClassifyAlgorithm(CoredinoAlgorithm):
    NAME = "classify"
    DISPLAY = "Classify raster"
    HELP = ("Classifies a raster into clusters of a codebook and writes a Cloud-Optimized GeoTIFF of "
            "cluster ids with the codebook's colours and a .qml style listing only the clusters present. "
            "CODEBOOK: a .codebook.npz file (empty: the backend's default). EMBEDDINGS: also write "
            "<output>_embeddings.tif, which Find similar places and the explore dock use.")

    def initAlgorithm(self, config=None):
        self.addParameter(QgsProcessingParameterRasterLayer("INPUT", "Raster layer (a local file)"))
        self.addParameter(QgsProcessingParameterFile("CODEBOOK", "Codebook (empty: the backend's default)",
                                                     extension="npz", optional=True))
        self.addParameter(QgsProcessingParameterBoolean("EMBEDDINGS", "Keep embeddings (for Find similar places)",
                                                        defaultValue=False))
        self.addParameter(QgsProcessingParameterRasterDestination("OUTPUT", "Classified raster"))
        self.addOutput(QgsProcessingOutputFile("EMBEDDINGS_OUTPUT", "Embeddings"))

    def processAlgorithm(self, parameters, context, feedback):
        source = layer_path(self.parameterAsRasterLayer(parameters, "INPUT", context), "INPUT")
        codebook = self.parameterAsFile(parameters, "CODEBOOK", context) or None
        output = self.parameterAsOutputLayer(parameters, "OUTPUT", context)
        embeddings = self.parameterAsBoolean(parameters, "EMBEDDINGS", context)
        options = ClassifyOptions(codebook=codebook, embeddings=embeddings, runtime=PluginSettings.load().runtime)
        result = self.run_job(ClassifyParams(source, output, options), feedback)
        style_when_loaded(context, result.output, result.classes)
        for warning in result.warnings:
            feedback.pushWarning(warning)
        feedback.pushInfo(f"{len(result.classes)} classes, {result.tiles} tiles in {result.seconds:.1f} s "
                          f"on {result.device}")
        return {"OUTPUT": result.output, "EMBEDDINGS_OUTPUT": result.embeddings}
