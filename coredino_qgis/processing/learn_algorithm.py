"""coredino:learn: a named class map from labelled points or polygons (on the kept embeddings)."""

from __future__ import annotations

from qgis.core import (
    QgsProcessingOutputFile,
    QgsProcessingOutputRasterLayer,
    QgsProcessingParameterEnum,
    QgsProcessingParameterFeatureSource,
    QgsProcessingParameterField,
    QgsProcessingParameterFileDestination,
    QgsProcessingParameterRasterDestination,
    QgsProcessingParameterRasterLayer,
)

from ..contract import LearnParams
from ..contract.params import CLASSIFIERS
from ..learn_panel import accuracy_text
from .base_algorithm import CoredinoAlgorithm, layer_path
from .compat import POINT_SOURCE, POLYGON_SOURCE


class LearnAlgorithm(CoredinoAlgorithm):
    NAME = "learn"
    DISPLAY = "Learn classes from examples"
    HELP = ("Trains a classifier on the embeddings kept beside a classification (classify with "
            "embeddings) from labelled EXAMPLES (points or polygons, any CRS; FIELD names the class) and "
            "writes a named class map (class names, colour table, attribute table, style), its "
            "_areas.csv, a confidence map and a margin map (low margin: where another example helps "
            "most). The log lists the cross-validated accuracy per class. A saved MODEL applies to other "
            "maps classified with the same codebook (coredino learn --model).")

    def initAlgorithm(self, config=None):
        self.addParameter(QgsProcessingParameterRasterLayer("INPUT", "Classification (with embeddings)"))
        self.addParameter(QgsProcessingParameterFeatureSource("EXAMPLES", "Examples (points or polygons)",
                                                              [POINT_SOURCE, POLYGON_SOURCE]))
        self.addParameter(QgsProcessingParameterField("FIELD", "Class field", parentLayerParameterName="EXAMPLES"))
        self.addParameter(QgsProcessingParameterEnum("CLASSIFIER", "Classifier", list(CLASSIFIERS), defaultValue=0))
        self.addParameter(QgsProcessingParameterRasterDestination("OUTPUT", "Named class map"))
        self.addParameter(QgsProcessingParameterFileDestination(
            "MODEL", "Save the classifier", "coredino classifier (*.classifier.json)", optional=True,
            createByDefault=False))
        self.addOutput(QgsProcessingOutputRasterLayer("CONFIDENCE", "Confidence"))
        self.addOutput(QgsProcessingOutputRasterLayer("MARGIN", "Margin"))
        self.addOutput(QgsProcessingOutputFile("AREAS", "Per-class areas (CSV)"))

    def processAlgorithm(self, parameters, context, feedback):
        source = layer_path(self.parameterAsRasterLayer(parameters, "INPUT", context), "INPUT")
        # any source (memory layers, selections) as a file the backend reads, in its own CRS
        examples = self.parameterAsCompatibleSourceLayerPath(parameters, "EXAMPLES", context,
                                                             ["gpkg", "geojson"], "gpkg", feedback)
        field = self.parameterAsString(parameters, "FIELD", context)
        classifier = CLASSIFIERS[self.parameterAsEnum(parameters, "CLASSIFIER", context)]
        output = self.parameterAsOutputLayer(parameters, "OUTPUT", context)
        model = self.parameterAsFileOutput(parameters, "MODEL", context) or None
        params = LearnParams(source, output, examples=examples.split("|")[0], class_field=field,
                             classifier=classifier, save_model=model)
        result = self.run_job(params, feedback)
        for line in accuracy_text(result).splitlines():
            feedback.pushInfo(line)
        return {"OUTPUT": result.output, "CONFIDENCE": result.confidence, "MARGIN": result.margin,
                "AREAS": result.csv}
