"""Processing enums that moved to ``Qgis`` in QGIS 3.36 (the old names are gone in QGIS 4)."""

from qgis.core import Qgis, QgsProcessing, QgsProcessingParameterFile, QgsProcessingParameterNumber

try:
    RASTER_SOURCE = Qgis.ProcessingSourceType.Raster
    POINT_SOURCE = Qgis.ProcessingSourceType.VectorPoint
    POLYGON_SOURCE = Qgis.ProcessingSourceType.VectorPolygon
    FOLDER = Qgis.ProcessingFileParameterBehavior.Folder
    INTEGER = Qgis.ProcessingNumberParameterType.Integer
except AttributeError:  # QGIS < 3.36
    RASTER_SOURCE = QgsProcessing.SourceType.TypeRaster
    POINT_SOURCE = QgsProcessing.SourceType.TypeVectorPoint
    POLYGON_SOURCE = QgsProcessing.SourceType.TypeVectorPolygon
    FOLDER = QgsProcessingParameterFile.Behavior.Folder
    INTEGER = QgsProcessingParameterNumber.Type.Integer
