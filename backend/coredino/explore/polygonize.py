"""One class (or one cluster) of a class map as polygons in a GeoPackage layer, with areas.

The class is selected by a virtual mask band (a VRT whose lookup table maps the class's value to
1 and every other value to 0), so nothing is copied; ``gdal.Polygonize`` traces its cells
(4-connected) into the layer, and each polygon gets ``area_m2`` and ``area_ha``.
"""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path
from typing import Optional
from xml.sax.saxutils import escape

from osgeo import gdal, ogr

from coredino_contract.results import PolygonizeResult

from .. import __version__
from ..atomic import output_lock, temp_name
from ..errors import Cancelled, UserError
from ..outputs import POLYGONS, check_output
from ..params import PolygonizeParams
from ..progress import Progress
from .rasters import cell_area, open_classification

ogr.UseExceptions()


def _target(params: PolygonizeParams, ds: gdal.Dataset) -> tuple[int, str]:
    """(pixel value, name) of the class asked for."""
    names = json.loads(ds.GetMetadataItem("CLASS_NAMES") or "null")
    band = ds.GetRasterBand(1)
    if params.class_name is not None:
        if not names:
            raise UserError(f"{params.input} has no class names (it is a cluster map): give a cluster "
                            f"id as the value, or reclassify it first")
        if params.class_name not in names:
            raise UserError(f"{params.input} has no class {params.class_name!r}; its classes: "
                            f"{', '.join(names)}")
        value = names.index(params.class_name)
        return value, params.class_name
    value = int(params.value)
    top = 255 if band.DataType == gdal.GDT_Byte else 65535
    nodata = band.GetNoDataValue()
    if not 0 <= value <= top or (nodata is not None and value == int(nodata)):
        raise UserError(f"value {value} is not a class of {params.input} (0..{top - 1}, nodata excluded)")
    if names and value < len(names):
        return value, names[value]
    return value, f"cluster {value}" if not names else f"value {value}"


def _mask_vrt(path: str, ds: gdal.Dataset, value: int) -> gdal.Dataset:
    """A Byte band: 1 where ``path`` equals ``value``, else 0 (a VRT lookup table, read lazily)."""
    lut = "0:1,1:0" if value == 0 else f"{value - 1}:0,{value}:1,{value + 1}:0"
    gt = ", ".join(repr(float(v)) for v in ds.GetGeoTransform())
    xml = f"""<VRTDataset rasterXSize="{ds.RasterXSize}" rasterYSize="{ds.RasterYSize}">
  <SRS>{escape(ds.GetProjection())}</SRS>
  <GeoTransform>{gt}</GeoTransform>
  <VRTRasterBand dataType="Byte" band="1">
    <ComplexSource>
      <SourceFilename relativeToVRT="0">{escape(os.path.abspath(path))}</SourceFilename>
      <SourceBand>1</SourceBand>
      <LUT>{lut}</LUT>
    </ComplexSource>
  </VRTRasterBand>
</VRTDataset>"""
    return gdal.Open(xml)


def polygonize(params: PolygonizeParams, progress: Optional[Progress] = None) -> PolygonizeResult:
    params.validate()
    start = time.perf_counter()
    progress = progress or Progress()
    check_output(params.output, POLYGONS, [params.input], params.overwrite, suffixes=(".gpkg",))
    ds = open_classification(params.input)
    value, name = _target(params, ds)
    cell_area(ds, params.input)  # areas need a metric grid
    output = Path(params.output)
    layer_name = re.sub(r"[^A-Za-z0-9_]+", "_", name).strip("_") or f"value_{value}"
    partial = temp_name(output, ".partial.gpkg")
    mask = _mask_vrt(params.input, ds, value)
    cancelled = []

    def report(fraction, _message, _data):
        try:
            progress.update(0.9 * fraction, "tracing polygons")
        except Cancelled:
            cancelled.append(True)
            return 0
        return 1

    with output_lock(output):  # also creates the folder
        try:
            try:
                gpkg = ogr.GetDriverByName("GPKG").CreateDataSource(str(partial))
            except RuntimeError as exc:
                raise UserError(f"{output}: cannot write there ({(str(exc).splitlines() or [''])[0]}); "
                                f"choose another output folder") from None
            gpkg.SetMetadata({"COREDINO_VERSION": __version__, "SOURCE": Path(params.input).name})
            layer = gpkg.CreateLayer(layer_name, ds.GetSpatialRef(), ogr.wkbPolygon)
            for field_name, kind in (("value", ogr.OFTInteger), ("class", ogr.OFTString),
                                     ("area_m2", ogr.OFTReal), ("area_ha", ogr.OFTReal)):
                layer.CreateField(ogr.FieldDefn(field_name, kind))
            try:
                gdal.Polygonize(ds.GetRasterBand(1), mask.GetRasterBand(1), layer, 0, [], callback=report)
            except RuntimeError:
                if not cancelled:
                    raise
            if cancelled:
                raise Cancelled("cancelled")
            progress.update(0.9, "measuring polygons")
            total, n = 0.0, 0
            layer.StartTransaction()
            for feature in layer:
                area = feature.GetGeometryRef().GetArea()
                feature.SetField("class", name)
                feature.SetField("area_m2", area)
                feature.SetField("area_ha", area / 1e4)
                layer.SetFeature(feature)
                total += area
                n += 1
            layer.CommitTransaction()
            layer = gpkg = None
            os.replace(partial, output)
        finally:
            layer = gpkg = mask = ds = None
            for suffix in ("", "-journal", "-wal", "-shm"):
                Path(f"{partial}{suffix}").unlink(missing_ok=True)
    progress.update(1.0, "done")
    return PolygonizeResult(str(output), layer_name, value, name, n, total, total / 1e4,
                            time.perf_counter() - start)
