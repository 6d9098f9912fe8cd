"""coredino:batch_classify: every raster of a folder -> <name>_classes.tif (resumable)."""

from __future__ import annotations

from qgis.core import (
    QgsProcessingOutputNumber,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterFile,
    QgsProcessingParameterFolderDestination,
    QgsProcessingParameterString,
)

from ..contract import BatchParams, ClassifyOptions
from ..settings import PluginSettings
from .base_algorithm import CoredinoAlgorithm
from .compat import FOLDER


class BatchClassifyAlgorithm(CoredinoAlgorithm):
    NAME = "batch_classify"
    DISPLAY = "Classify a folder of rasters"
    HELP = ("Classifies every raster below INPUT_DIR matching PATTERN into OUTPUT_DIR/<same folders>/"
            "<name>_classes.tif. Outputs already made with the same codebook are skipped (re-running "
            "resumes); a bad file is reported and the others continue.")

    def initAlgorithm(self, config=None):
        self.addParameter(QgsProcessingParameterFile("INPUT_DIR", "Input folder",
                                                     behavior=FOLDER))
        self.addParameter(QgsProcessingParameterString("PATTERN", "File pattern below the folder",
                                                       defaultValue="**/*.tif"))
        self.addParameter(QgsProcessingParameterFile("CODEBOOK", "Codebook (empty: the backend's default)",
                                                     extension="npz", optional=True))
        self.addParameter(QgsProcessingParameterBoolean("OVERWRITE", "Redo outputs that already exist",
                                                        defaultValue=False))
        self.addParameter(QgsProcessingParameterFolderDestination("OUTPUT_DIR", "Output folder"))
        self.addOutput(QgsProcessingOutputNumber("DONE", "Rasters classified"))
        self.addOutput(QgsProcessingOutputNumber("FAILED", "Rasters that failed"))

    def processAlgorithm(self, parameters, context, feedback):
        job = BatchParams(self.parameterAsFile(parameters, "INPUT_DIR", context),
                          self.parameterAsString(parameters, "OUTPUT_DIR", context),
                          self.parameterAsString(parameters, "PATTERN", context) or "**/*.tif",
                          self.parameterAsBool(parameters, "OVERWRITE", context),
                          ClassifyOptions(codebook=self.parameterAsFile(parameters, "CODEBOOK", context) or None,
                                          runtime=PluginSettings.load().runtime))
        result = self.run_job(job, feedback)
        for path, reason in result.failed.items():
            feedback.reportError(f"{path}: {reason}")
        feedback.pushInfo(f"{len(result.done)} classified, {len(result.skipped)} skipped (already done), "
                          f"{len(result.failed)} failed")
        return {"OUTPUT_DIR": job.output_dir, "DONE": len(result.done), "FAILED": len(result.failed)}
