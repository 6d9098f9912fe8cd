"""Cluster ids -> named classes: a Byte class-map COG, its per-class areas (CSV) and styles.

Values: 0 unclassified (clusters in no class), 1..N the classes in the order given, 255 nodata.
Class names travel three ways: the ``CLASS_NAMES`` metadata item of the COG (a JSON list indexed
by value, always there), a GDAL raster attribute table with category names in the ``.aux.xml``
beside it (GTiff cannot hold one inside), and a QGIS ``.qml`` style whose legend names them.
"""

from __future__ import annotations

import csv
import io
import json
import time
from pathlib import Path
from typing import Iterable, Optional

import numpy as np
from osgeo import gdal

from coredino_contract.classes import UNCLASSIFIED, class_color, load_classes, validate
from coredino_contract.naming import areas_path, style_path
from coredino_contract.results import ClassArea, ReclassifyResult

from ..atomic import output_lock
from ..cog import AtomicCOG
from ..errors import UserError
from ..outputs import CLASS_MAP, check_output
from ..params import ReclassifyParams
from ..progress import Progress
from ..styling import paletted_qml
from .rasters import cell_area, open_classification, windows

NODATA = 255



def _mapping(params: ReclassifyParams, tags: dict, k: int) -> dict[str, list[int]]:
    if params.classes:
        return validate(params.classes, k, "classes")
    classes, sha = load_classes(params.classes_file)
    mine = tags.get("CODEBOOK_SHA256")
    if sha and mine and sha != mine:
        raise UserError(f"{params.classes_file} was made for another codebook (sha256 {sha[:12]}) than "
                        f"{params.input} ({mine[:12]}): cluster ids differ between codebooks")
    return validate(classes, k, params.classes_file)


def reclassify(params: ReclassifyParams, progress: Optional[Progress] = None) -> ReclassifyResult:
    params.validate()
    start = time.perf_counter()
    progress = progress or Progress()
    csv_path, qml_path = areas_path(params.output), style_path(params.output)
    check_output(params.output, CLASS_MAP, [params.input, params.classes_file], params.overwrite,
                 sidecars=[(csv_path, None), (qml_path, None)])
    ds = open_classification(params.input)
    tags = ds.GetMetadata()
    if "CLASS_NAMES" in tags:
        raise UserError(f"{params.input} is already a named-class map; reclassify the cluster map "
                        f"`coredino classify` wrote")
    band = ds.GetRasterBand(1)
    source_nodata = band.GetNoDataValue()
    k = int(tags.get("K") or (255 if band.DataType == gdal.GDT_Byte else 65535))
    mapping = _mapping(params, tags, k)
    area = cell_area(ds, params.input)
    lut = np.zeros(65536, np.uint8)
    for value, ids in enumerate(mapping.values(), start=1):
        lut[ids] = value
    if source_nodata is not None:
        lut[int(source_nodata)] = NODATA
    names = [UNCLASSIFIED] + list(mapping)
    counts = np.zeros(256, np.int64)
    with output_lock(params.output, [csv_path, qml_path]), \
            AtomicCOG(params.output, ds, gdal.GDT_Byte, NODATA, resampling="MODE") as out:
        blocks = list(windows(ds.RasterXSize, ds.RasterYSize))
        for i, (x, y, w, h) in enumerate(blocks):
            progress.update(i / len(blocks), f"block {i + 1}/{len(blocks)}")
            values = lut[band.ReadAsArray(x, y, w, h)]
            counts += np.bincount(values.ravel(), minlength=256)
            out.write(x, y, values)
        keep = {key: tags[key] for key in ("MODEL", "WEIGHTS_SHA256", "CODEBOOK", "CODEBOOK_SHA256", "K",
                                           "GSD", "PATCH_PX", "SOURCE") if key in tags}
        keep.update(CLASSES=json.dumps(mapping), CLUSTERS=Path(params.input).name)
        output, csv_path, rows = publish_named(out, names, counts, area, keep)
    ds = None
    progress.update(1.0, "done")
    return ReclassifyResult(output, csv_path, rows, time.perf_counter() - start, mapping,
                            tags.get("CODEBOOK_SHA256"))


def publish_named(out: AtomicCOG, names: list[str], counts: np.ndarray, area: float,
                  tags: dict[str, str]) -> tuple[str, str, list[ClassArea]]:
    """Publish a written named-class map (values 0 unclassified, 1.. ``names[1:]``): colour table,
    ``CLASS_NAMES`` tag, raster attribute table, .qml legend and areas CSV. Returns (map, csv, rows)."""
    # unclassified: grey, transparent in the QML and RAT (a GeoTIFF colour table has no alpha)
    colors = [(160, 160, 160, 0)] + [class_color(i) + (255,) for i in range(len(names) - 1)]
    rows = [ClassArea(v, name, int(counts[v]), float(counts[v] * area), float(counts[v] * area / 1e4))
            for v, name in enumerate(names)]
    csv_path = areas_path(str(out.path))
    out.sidecar(csv_path).write_text(areas_csv((r.value, r.name, r.cells, r.area_m2) for r in rows),
                                     encoding="utf-8")
    out.sidecar(style_path(str(out.path))).write_text(_qml(rows, colors), encoding="utf-8")
    output = out.publish({**tags, "CLASS_NAMES": json.dumps(names)}, colors,
                         pam=lambda pam: _attach_rat(pam, rows, colors))
    return output, csv_path, rows


def areas_csv(rows: Iterable[tuple[int, str, int, float]]) -> str:
    """The areas CSV of (value, name, cells, area_m2) rows, with hectares and percent of all rows."""
    rows = list(rows)
    total = max(1, sum(cells for _, _, cells, _ in rows))
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["value", "class", "cells", "area_m2", "area_ha", "percent"])
    for value, name, cells, area_m2 in rows:
        writer.writerow([value, name, cells, f"{area_m2:.2f}", f"{area_m2 / 1e4:.4f}",
                         f"{100 * cells / total:.2f}"])
    return buffer.getvalue()


def _qml(rows: list[ClassArea], colors: list[tuple]) -> str:
    return paletted_qml((r.value, colors[r.value], r.name) for r in rows)


def _attach_rat(ds: gdal.Dataset, rows: list[ClassArea], colors: list[tuple]) -> None:
    band = ds.GetRasterBand(1)
    rat = gdal.RasterAttributeTable()
    rat.SetTableType(gdal.GRTT_THEMATIC)
    columns = [("Value", gdal.GFT_Integer, gdal.GFU_MinMax), ("Class", gdal.GFT_String, gdal.GFU_Name),
               ("Red", gdal.GFT_Integer, gdal.GFU_Red), ("Green", gdal.GFT_Integer, gdal.GFU_Green),
               ("Blue", gdal.GFT_Integer, gdal.GFU_Blue), ("Alpha", gdal.GFT_Integer, gdal.GFU_Alpha),
               ("Cells", gdal.GFT_Integer, gdal.GFU_PixelCount), ("Area_m2", gdal.GFT_Real, gdal.GFU_Generic)]
    for name, kind, usage in columns:
        rat.CreateColumn(name, kind, usage)
    rat.SetRowCount(len(rows))
    for i, r in enumerate(rows):
        rat.SetValueAsInt(i, 0, r.value)
        rat.SetValueAsString(i, 1, r.name)
        for c, channel in enumerate(colors[r.value]):
            rat.SetValueAsInt(i, 2 + c, int(channel))
        rat.SetValueAsInt(i, 6, r.cells)
        rat.SetValueAsDouble(i, 7, r.area_m2)
    band.SetDefaultRAT(rat)
    band.SetCategoryNames([r.name for r in rows])
