"""coredino:cluster: one raster layer -> clusters of its own features (no codebook needed)."""

from __future__ import annotations

from qgis.core import (
    QgsProcessingException,
    QgsProcessingOutputFile,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterDestination,
    QgsProcessingParameterRasterLayer,
    QgsProcessingParameterString,
)

from ..contract import ClusterParams, UserError, parse_model
from ..contract.params import CLUSTER_K
from .base_algorithm import CoredinoAlgorithm, layer_path
from .compat import INTEGER


class ClusterAlgorithm(CoredinoAlgorithm):
    NAME = "cluster"
    DISPLAY = "Cluster raster (no codebook)"
    HELP = ("Fits K clusters on the raster's own patch features (K-means, t-SNE colours) and writes the "
            "same styled COG as Classify raster; the fitted codebook is saved beside it "
            "(<output>.codebook.npz) so other rasters can be classified with the same clusters. "
            "K of 8-64 keeps the legend readable. MODEL: empty for the backend's default, or "
            "core-dino:<n|s|m|l|x>[@16|19|22], dinov2:<hub id or folder>; WEIGHTS: core-dino weights "
            "(path, URL, hf://owner/repo/file).")

    def initAlgorithm(self, config=None):
        self.addParameter(QgsProcessingParameterRasterLayer("INPUT", "Raster layer (a local file)"))
        self.addParameter(QgsProcessingParameterNumber("K", "Number of clusters", INTEGER, 24, False,
                                                       *CLUSTER_K))
        self.addParameter(QgsProcessingParameterString("MODEL", "Model (empty: the backend's default)",
                                                       optional=True))
        self.addParameter(QgsProcessingParameterString("WEIGHTS", "Weights", defaultValue="random",
                                                       optional=True))
        self.addParameter(QgsProcessingParameterRasterDestination("OUTPUT", "Cluster map"))
        self.addOutput(QgsProcessingOutputFile("CODEBOOK", "Fitted codebook"))

    def processAlgorithm(self, parameters, context, feedback):
        source = layer_path(self.parameterAsRasterLayer(parameters, "INPUT", context), "INPUT")
        output = self.parameterAsOutputLayer(parameters, "OUTPUT", context)
        text = self.parameterAsString(parameters, "MODEL", context)
        try:
            model = parse_model(text, self.parameterAsString(parameters, "WEIGHTS", context) or "random",
                                16) if text else None
        except UserError as exc:
            raise QgsProcessingException(str(exc)) from None
        result = self.run_job(ClusterParams(source, output, model, self.parameterAsInt(parameters, "K", context)),
                              feedback)
        for warning in result.warnings:
            feedback.pushWarning(warning)
        feedback.pushInfo(f"{len(result.classes)} of {result.k} clusters in {result.seconds:.1f} s; "
                          f"codebook for other rasters: {result.codebook}")
        return {"OUTPUT": result.output, "CODEBOOK": result.codebook}
