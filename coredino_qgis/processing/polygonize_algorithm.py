"""coredino:polygonize: one class of a class map (or one cluster) as polygons with areas."""

from __future__ import annotations

from qgis.core import (
    QgsProcessingException,
    QgsProcessingParameterRasterLayer,
    QgsProcessingParameterString,
    QgsProcessingParameterVectorDestination,
)

from ..contract import PolygonizeParams
from .base_algorithm import CoredinoAlgorithm, layer_path


class PolygonizeAlgorithm(CoredinoAlgorithm):
    NAME = "polygonize"
    DISPLAY = "Polygonize a class"
    HELP = ("Traces the cells of one class of a named-class map (CLASS: its name), or of one cluster of a "
            "classification (CLASS: the cluster id), into polygons with area_m2 and area_ha attributes, "
            "written to a GeoPackage.")

    def initAlgorithm(self, config=None):
        self.addParameter(QgsProcessingParameterRasterLayer("INPUT", "Class map (or classification)"))
        self.addParameter(QgsProcessingParameterString("CLASS", "Class name (or cluster id)"))
        self.addParameter(QgsProcessingParameterVectorDestination("OUTPUT", "Polygons (GeoPackage)"))

    def processAlgorithm(self, parameters, context, feedback):
        source = layer_path(self.parameterAsRasterLayer(parameters, "INPUT", context), "INPUT")
        target = self.parameterAsString(parameters, "CLASS", context).strip()
        output = self.parameterAsOutputLayer(parameters, "OUTPUT", context)
        if not output.lower().endswith(".gpkg"):
            raise QgsProcessingException(f"{output}: the backend writes GeoPackages; give a .gpkg output")
        job = PolygonizeParams(source, output, value=int(target)) if target.isdigit() else \
            PolygonizeParams(source, output, class_name=target)
        result = self.run_job(job, feedback)
        feedback.pushInfo(f"{result.features} polygons, {result.area_ha:.3f} ha")
        return {"OUTPUT": result.output}
