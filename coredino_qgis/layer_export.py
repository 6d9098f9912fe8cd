"""Which path the backend gets for a layer, and exporting layers that are not local files.

File-backed GDAL layers are sent by path. Anything else (XYZ, WMS, WCS, memory...) is written
to a temporary GeoTIFF of the current map extent at the codebook's GSD, by
:class:`LayerExportTask` (a QgsTask: never in the GUI thread), with a size cap.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Optional

from qgis.core import (
    Qgis,
    QgsCoordinateReferenceSystem,
    QgsCoordinateTransform,
    QgsProject,
    QgsProviderRegistry,
    QgsRasterBandStats,
    QgsRasterBlockFeedback,
    QgsRasterFileWriter,
    QgsRasterLayer,
    QgsRasterPipe,
    QgsRasterProjector,
    QgsRectangle,
    QgsTask,
)
from qgis.PyQt.QtCore import pyqtSignal

from .client import enum_text

try:  # QGIS >= 3.30
    METRES = Qgis.DistanceUnit.Meters
except AttributeError:  # QGIS 3.22 - 3.28
    from qgis.core import QgsUnitTypes
    METRES = QgsUnitTypes.DistanceUnit.DistanceMeters
try:  # QGIS >= 3.36 (the old enum is gone in QGIS 4)
    WRITER_OK = Qgis.RasterFileWriterResult.Success
except AttributeError:
    WRITER_OK = QgsRasterFileWriter.WriterError.NoError


class ExportError(Exception):
    """A sentence for the user explaining why the layer cannot be exported."""


def local_raster_path(layer: QgsRasterLayer) -> Optional[str]:
    """The GDAL-readable local file behind ``layer``, or None when it must be exported."""
    if layer is None or layer.providerType() != "gdal":
        return None
    parts = QgsProviderRegistry.instance().decodeUri("gdal", layer.source())
    path = parts.get("path") or ""
    if not path or path.startswith("/vsi") or "://" in path or not os.path.isfile(path):
        return None
    if parts.get("layerName"):  # a table inside a GeoPackage and the like: GDAL opens the source string
        return layer.source()
    return path


def metric_crs_for(crs: QgsCoordinateReferenceSystem, extent: QgsRectangle) -> QgsCoordinateReferenceSystem:
    """``crs`` when it is projected in metres (and not a Mercator), else the UTM zone of ``extent``'s centre."""
    if crs.isValid() and not crs.isGeographic() and crs.mapUnits() == METRES and "+proj=merc" not in crs.toProj():
        return crs
    to_wgs84 = QgsCoordinateTransform(crs, QgsCoordinateReferenceSystem("EPSG:4326"), QgsProject.instance())
    centre = to_wgs84.transform(extent.center())
    zone = min(60, max(1, int((centre.x() + 180) // 6) + 1))
    return QgsCoordinateReferenceSystem(f"EPSG:{(32600 if centre.y() >= 0 else 32700) + zone}")


@dataclass
class ExportPlan:
    crs: QgsCoordinateReferenceSystem
    extent: QgsRectangle
    width: int
    height: int
    gsd: float


def plan_export(layer: QgsRasterLayer, view_extent: QgsRectangle, view_crs: QgsCoordinateReferenceSystem,
                gsd: float, max_pixels: int) -> ExportPlan:
    """Grid of the export: the part of ``view_extent`` covered by the layer, in a metric CRS, at ``gsd``."""
    if gsd <= 0:
        raise ExportError("The codebook has no ground sample distance; choose another codebook.")
    context = QgsProject.instance().transformContext()
    target = metric_crs_for(view_crs, view_extent)
    view = QgsCoordinateTransform(view_crs, target, context).transformBoundingBox(view_extent)
    try:
        coverage = QgsCoordinateTransform(layer.crs(), target, context).transformBoundingBox(layer.extent())
        area = view.intersect(coverage)
    except Exception:  # noqa: BLE001 (world-wide layers do not transform to UTM: keep the view)
        area = view
    if area.isEmpty():
        raise ExportError(f"The layer {layer.name()} does not cover the map view: pan to it and run again.")
    x0, y1 = math.floor(area.xMinimum() / gsd) * gsd, math.ceil(area.yMaximum() / gsd) * gsd
    width = max(1, math.ceil((area.xMaximum() - x0) / gsd))
    height = max(1, math.ceil((y1 - area.yMinimum()) / gsd))
    if width * height > max_pixels:
        raise ExportError(
            f"The map view is {width} x {height} pixels at the codebook's {gsd:g} m "
            f"({width * height / 1e6:.1f} million), more than the {max_pixels / 1e6:.1f} million allowed for "
            f"layers that are not local files: zoom in, or raise the limit in Settings.")
    return ExportPlan(target, QgsRectangle(x0, y1 - height * gsd, x0 + width * gsd, y1), width, height, gsd)


def export_layer(provider, source_crs: QgsCoordinateReferenceSystem, plan: ExportPlan, path: str,
                 feedback: Optional[QgsRasterBlockFeedback] = None) -> None:
    """Write ``provider`` (a clone owned by this call) resampled to ``plan`` as a GeoTIFF at ``path``."""
    pipe = QgsRasterPipe()
    if not pipe.set(provider):
        raise ExportError("QGIS cannot read this layer's data provider for export.")
    projector = QgsRasterProjector()
    projector.setCrs(source_crs, plan.crs, QgsProject.instance().transformContext())
    if not pipe.set(projector):
        raise ExportError("QGIS cannot reproject this layer for export.")
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    writer = QgsRasterFileWriter(path)
    writer.setOutputFormat("GTiff")
    writer.setCreateOptions(["COMPRESS=DEFLATE", "TILED=YES", "BIGTIFF=IF_SAFER"])
    error = writer.writeRaster(pipe, plan.width, plan.height, plan.extent, plan.crs,
                               QgsProject.instance().transformContext(), feedback)
    if feedback is not None and feedback.isCanceled():
        _remove(path)
        raise ExportError("The export was cancelled.")
    if error != WRITER_OK:
        _remove(path)
        raise ExportError(f"QGIS could not export the layer to {path} (raster writer error {enum_text(error)}).")


def blank_export(path: str) -> bool:
    """Whether every band of the exported file is one constant value or nodata: nothing was fetched."""
    provider = QgsProviderRegistry.instance().createProvider("gdal", path)
    try:
        if provider is None or not provider.isValid():
            return True
        for band in range(1, provider.bandCount() + 1):
            stats = provider.bandStatistics(band, QgsRasterBandStats.Min | QgsRasterBandStats.Max, QgsRectangle(), 0)
            if stats.maximumValue > stats.minimumValue:  # all nodata leaves min > max
                return False
        return True
    finally:
        del provider  # no dataset left open (QGIS crashes at exit on open GDAL datasets)


def blank_message(layer_name: str, errors: list) -> str:
    cause = "; ".join(dict.fromkeys(e.strip() for e in errors if e.strip()))[:400] or "every pixel is empty"
    return (f"The layer {layer_name} returned no image for the map view ({cause}): check its address and the "
            "network, or pan to where it has data.")


def _remove(path: str) -> None:
    try:
        os.remove(path)
    except OSError:
        pass


class LayerExportTask(QgsTask):
    """Exports a layer in the background; ``done(path, error)`` arrives in the GUI thread."""

    done = pyqtSignal(str, str)

    def __init__(self, layer: QgsRasterLayer, plan: ExportPlan, path: str):
        super().__init__(f"coredino: exporting {layer.name()}", QgsTask.Flag.CanCancel)
        self.provider = layer.dataProvider().clone()  # providers are not thread-safe: a clone per thread
        self.layer_name = layer.name()
        self.source_crs = QgsCoordinateReferenceSystem(layer.crs())
        self.plan = plan
        self.path = path
        self.error = ""
        self.feedback = QgsRasterBlockFeedback()
        self.feedback.progressChanged.connect(self.setProgress)

    def run(self) -> bool:
        provider, self.provider = self.provider, None
        try:
            export_layer(provider, self.source_crs, self.plan, self.path, self.feedback)
        except ExportError as exc:
            self.error = str(exc)
            return False
        except Exception as exc:  # noqa: BLE001 (reported, never raised into QGIS's task manager)
            self.error = f"Exporting the layer failed: {exc}"
            return False
        if blank_export(self.path):  # an XYZ/WMS server that answered nothing: not a map of 0 classes
            _remove(self.path)
            self.error = blank_message(self.layer_name, self.feedback.errors())
            return False
        return True

    def cancel(self) -> None:
        self.feedback.cancel()
        super().cancel()

    def finished(self, result: bool) -> None:
        if not result and not self.error:
            self.error = "The export was cancelled."
        self.done.emit(self.path if result else "", self.error)
