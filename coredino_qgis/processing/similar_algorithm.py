"""coredino:similar: cosine similarity of every cell to example points (needs the embeddings file)."""

from __future__ import annotations

from qgis.core import (
    QgsFeatureRequest,
    QgsProcessingException,
    QgsProcessingParameterFeatureSource,
    QgsProcessingParameterRasterDestination,
    QgsProcessingParameterRasterLayer,
)

from ..contract import SimilarParams
from .base_algorithm import CoredinoAlgorithm, layer_path
from .output_style import style_when_loaded
from .compat import POINT_SOURCE


def points_in(source, crs, context) -> list:
    """[(x, y)] of every point (and every part of multipoints) of ``source``, in ``crs``."""
    if source is None:
        return []
    request = QgsFeatureRequest().setDestinationCrs(crs, context.transformContext())
    return [(vertex.x(), vertex.y()) for feature in source.getFeatures(request)
            for vertex in feature.geometry().vertices()]


class SimilarAlgorithm(CoredinoAlgorithm):
    NAME = "similar"
    DISPLAY = "Find similar places"
    HELP = ("Cosine similarity of every cell's embedding to a query built from POSITIVES (places like "
            "the ones you look for) minus NEGATIVES (places unlike them): a Float32 raster in [-1, 1] on "
            "the classification's grid. INPUT: a classification made with embeddings (its "
            "<name>_embeddings.tif beside it), or the embeddings file itself.")

    def initAlgorithm(self, config=None):
        self.addParameter(QgsProcessingParameterRasterLayer("INPUT", "Classification (or its embeddings)"))
        self.addParameter(QgsProcessingParameterFeatureSource("POSITIVES", "Points like the ones looked for",
                                                              [POINT_SOURCE]))
        self.addParameter(QgsProcessingParameterFeatureSource("NEGATIVES", "Points unlike them",
                                                              [POINT_SOURCE], optional=True))
        self.addParameter(QgsProcessingParameterRasterDestination("OUTPUT", "Similarity"))

    def processAlgorithm(self, parameters, context, feedback):
        layer = self.parameterAsRasterLayer(parameters, "INPUT", context)
        path = layer_path(layer, "INPUT")
        positives = points_in(self.parameterAsSource(parameters, "POSITIVES", context), layer.crs(), context)
        negatives = points_in(self.parameterAsSource(parameters, "NEGATIVES", context), layer.crs(), context)
        if not positives:
            raise QgsProcessingException("POSITIVES has no point: give at least one place to look for")
        output = self.parameterAsOutputLayer(parameters, "OUTPUT", context)
        result = self.run_job(SimilarParams(path, output, positives, negatives), feedback)
        feedback.pushInfo(f"similarity of {result.cells} cells, {result.min:.3f} to {result.max:.3f}")
        style_when_loaded(context, result.output)
        return {"OUTPUT": result.output}
