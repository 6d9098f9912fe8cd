"""coredino:classify: one raster layer -> a styled COG of cluster ids."""

from __future__ import annotations

from qgis.core import (
    QgsProcessingParameterFile,
    QgsProcessingParameterRasterDestination,
    QgsProcessingParameterRasterLayer,
)

from ..job_specs import ClassifyJob, ClassifyOptions
from .base_algorithm import CoredinoAlgorithm, layer_path
from .job_runner import connect, run_job


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
        client, caps = connect(feedback)
        feedback.pushInfo(f"Backend device: {caps.get('device')}")
        result = run_job(client, ClassifyJob(source, output, ClassifyOptions(codebook=codebook)).spec(), feedback)
        for warning in result.get("warnings") or []:
            feedback.pushWarning(warning)
        classes = result.get("classes") or {}
        feedback.pushInfo(f"{len(classes)} classes, {result.get('tiles', '?')} tiles in "
                          f"{result.get('seconds', 0):.1f} s on {result.get('device', '?')}")
        return {"OUTPUT": result.get("output") or output}
