"""coredino:fit_codebook: rasters -> a codebook (K-means centroids with t-SNE colours)."""

from __future__ import annotations

from qgis.core import (
    QgsProcessingException,
    QgsProcessingParameterFileDestination,
    QgsProcessingParameterMultipleLayers,
    QgsProcessingParameterNumber,
    QgsProcessingParameterString,
)

from ..contract import FitParams, UserError, parse_model
from .base_algorithm import CoredinoAlgorithm, layer_path
from .compat import INTEGER, RASTER_SOURCE


class FitCodebookAlgorithm(CoredinoAlgorithm):
    NAME = "fit_codebook"
    DISPLAY = "Fit a codebook"
    HELP = ("Samples patch features from the rasters, fits K clusters and colours them, and saves one "
            ".codebook.npz file usable by classify. MODEL: core-dino:<n|s|m|l|x>[@16|19|22] or "
            "dinov2:<hub id or folder>. WEIGHTS: core-dino weights (path, URL, hf://owner/repo/file or "
            "'random').")

    def initAlgorithm(self, config=None):
        self.addParameter(QgsProcessingParameterMultipleLayers("INPUTS", "Rasters (local files)",
                                                               RASTER_SOURCE))
        self.addParameter(QgsProcessingParameterNumber("K", "Number of clusters", INTEGER, 6000, False, 2, 100000))
        self.addParameter(QgsProcessingParameterString("MODEL", "Model", defaultValue="core-dino:n"))
        self.addParameter(QgsProcessingParameterString("WEIGHTS", "Weights", defaultValue="random"))
        self.addParameter(QgsProcessingParameterFileDestination("OUTPUT", "Codebook",
                                                                "coredino codebook (*.codebook.npz)"))

    def processAlgorithm(self, parameters, context, feedback):
        layers = self.parameterAsLayerList(parameters, "INPUTS", context)
        inputs = [layer_path(layer, "INPUTS") for layer in layers]
        output = self.parameterAsFileOutput(parameters, "OUTPUT", context)
        if not output.endswith(".npz"):
            output += ".codebook.npz"
        try:
            model = parse_model(self.parameterAsString(parameters, "MODEL", context) or "core-dino:n",
                                self.parameterAsString(parameters, "WEIGHTS", context) or "random")
        except UserError as exc:
            raise QgsProcessingException(str(exc)) from None
        result = self.run_job(FitParams(inputs, output, model, k=self.parameterAsInt(parameters, "K", context)),
                              feedback)
        feedback.pushInfo(f"codebook of {result.k} clusters of {result.dim} features")
        return {"OUTPUT": result.output}
