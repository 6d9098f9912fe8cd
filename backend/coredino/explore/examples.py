"""Labelled examples for `coredino learn`: clicked points, a vector file, or a similarity map.

Every source becomes cells of the embeddings grid with a class name and an *example id* (a
point, a polygon, or one cell of a similarity map): cross-validation keeps an example's cells in
one fold, so cells of one polygon never score each other.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from osgeo import gdal, ogr, osr

from coredino_contract.classes import class_name

from ..errors import UserError
from .rasters import open_dataset

gdal.UseExceptions()
ogr.UseExceptions()

POLYGON_CELLS = 200  # at most this many cells of one polygon (or similarity map) are used
SIMILAR_CELLS = 500


@dataclass
class Examples:
    rows: list[int] = field(default_factory=list)
    cols: list[int] = field(default_factory=list)
    names: list[str] = field(default_factory=list)
    example: list[int] = field(default_factory=list)  # example id of each cell
    skipped: int = 0  # points or polygons outside the grid or on nodata
    _next: int = 0

    def add(self, rows: np.ndarray, cols: np.ndarray, name: str, separate: bool = False) -> None:
        """Cells of one example (``separate``: each cell is an example of its own)."""
        self.rows += [int(r) for r in rows]
        self.cols += [int(c) for c in cols]
        self.names += [name] * len(rows)
        n = len(rows) if separate else 1
        self.example += list(range(self._next, self._next + n)) if separate else [self._next] * len(rows)
        self._next += n


def _cell(gt, x: float, y: float) -> tuple[int, int]:
    return int(np.floor((y - gt[3]) / gt[5])), int(np.floor((x - gt[0]) / gt[1]))


def add_points(out: Examples, grid: gdal.Dataset, valid: np.ndarray,
               points: dict[str, list[tuple[float, float]]]) -> None:
    """Clicked points (x, y in the grid's CRS) by class name; a point off the grid is an error."""
    gt = grid.GetGeoTransform()
    for name, xys in points.items():
        clean = class_name(name, "points")
        for xy in xys:
            if len(xy) != 2:
                raise UserError(f"class {clean!r}: point {list(xy)!r}: give x,y in the raster's CRS")
            r, c = _cell(gt, float(xy[0]), float(xy[1]))
            if not (0 <= r < valid.shape[0] and 0 <= c < valid.shape[1]) or not valid[r, c]:
                raise UserError(f"class {clean!r}: point ({xy[0]:.2f}, {xy[1]:.2f}) is outside the "
                                f"classified area of the map; click inside it")
            out.add(np.array([r]), np.array([c]), clean)


def add_vector(out: Examples, grid: gdal.Dataset, valid: np.ndarray, path: str, field_name: str,
               seed: int = 0) -> None:
    """Points and polygons of ``path`` (any OGR format, any CRS), labelled by ``field_name``."""
    if not Path(path).is_file():
        raise UserError(f"{path}: no such file")
    try:
        source = ogr.Open(str(path))
    except RuntimeError as exc:
        raise UserError(f"{path}: OGR cannot read it ({(str(exc).splitlines() or [''])[0]}); give a "
                        f"GeoPackage or GeoJSON of points or polygons") from None
    if source is None or source.GetLayerCount() < 1:
        raise UserError(f"{path}: no vector layer in it; give a GeoPackage or GeoJSON of points or polygons")
    layer = source.GetLayer(0)
    fields = [layer.GetLayerDefn().GetFieldDefn(i).GetName() for i in range(layer.GetLayerDefn().GetFieldCount())]
    if field_name not in fields:
        raise UserError(f"{path}: no field {field_name!r} (fields: {', '.join(fields) or 'none'}); "
                        f"pass --field with the class field")
    target = osr.SpatialReference(wkt=grid.GetProjection())
    target.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    srs = layer.GetSpatialRef()
    transform = None
    if srs is not None:
        srs.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
        if not srs.IsSame(target):
            transform = osr.CoordinateTransformation(srs, target)
    rng = np.random.default_rng(seed)
    gt = grid.GetGeoTransform()
    h, w = valid.shape
    for feature in layer:
        geometry = feature.GetGeometryRef()
        if geometry is None or feature.GetField(field_name) in (None, ""):
            out.skipped += 1
            continue
        name = class_name(str(feature.GetField(field_name)), f"{path} feature {feature.GetFID()}")
        geometry = geometry.Clone()
        if transform is not None:
            geometry.Transform(transform)
        if geometry.GetDimension() == 0:
            for i in range(max(1, geometry.GetGeometryCount())):
                point = geometry.GetGeometryRef(i) if geometry.GetGeometryCount() else geometry
                r, c = _cell(gt, point.GetX(), point.GetY())
                if 0 <= r < h and 0 <= c < w and valid[r, c]:
                    out.add(np.array([r]), np.array([c]), name)
                else:
                    out.skipped += 1
        elif geometry.GetDimension() == 2:
            rows, cols = _polygon_cells(geometry, grid, valid)
            if len(rows) == 0:
                out.skipped += 1
                continue
            if len(rows) > POLYGON_CELLS:
                pick = np.sort(rng.choice(len(rows), POLYGON_CELLS, replace=False))
                rows, cols = rows[pick], cols[pick]
            out.add(rows, cols, name)
        else:
            raise UserError(f"{path}: feature {feature.GetFID()} is a line; give points or polygons")


def _polygon_cells(geometry: ogr.Geometry, grid: gdal.Dataset, valid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Valid cells whose centre lies in the polygon (rasterised on the grid's window around it)."""
    gt = grid.GetGeoTransform()
    x0, x1, y0, y1 = geometry.GetEnvelope()
    r0, c0 = _cell(gt, x0, y1)
    r1, c1 = _cell(gt, x1, y0)
    r0, c0 = max(r0, 0), max(c0, 0)
    r1, c1 = min(r1, valid.shape[0] - 1), min(c1, valid.shape[1] - 1)
    if r1 < r0 or c1 < c0:
        return np.zeros(0, int), np.zeros(0, int)
    mem = gdal.GetDriverByName("MEM").Create("", c1 - c0 + 1, r1 - r0 + 1, 1, gdal.GDT_Byte)
    mem.SetGeoTransform((gt[0] + c0 * gt[1], gt[1], 0, gt[3] + r0 * gt[5], 0, gt[5]))
    mem.SetProjection(grid.GetProjection())
    layer_ds = ogr.GetDriverByName("Memory").CreateDataSource("")
    layer = layer_ds.CreateLayer("p", osr.SpatialReference(wkt=grid.GetProjection()))
    feature = ogr.Feature(layer.GetLayerDefn())
    feature.SetGeometry(geometry)
    layer.CreateFeature(feature)
    gdal.RasterizeLayer(mem, [1], layer, burn_values=[1])
    inside = mem.ReadAsArray().astype(bool) & valid[r0:r1 + 1, c0:c1 + 1]
    rows, cols = np.nonzero(inside)
    return rows + r0, cols + c0


def add_similar(out: Examples, grid: gdal.Dataset, valid: np.ndarray, name: str, path: str,
                threshold: float, seed: int = 0) -> None:
    """Cells of a similarity map (``coredino similar``) at or above ``threshold`` as examples of ``name``."""
    ds = open_dataset(path, "a similarity map written by `coredino similar`")
    if ds.GetMetadataItem("COREDINO_SIMILARITY") is None:
        raise UserError(f"{path}: not a similarity map; give a file written by `coredino similar`")
    if (ds.RasterXSize, ds.RasterYSize) != (grid.RasterXSize, grid.RasterYSize) or not np.allclose(
            ds.GetGeoTransform(), grid.GetGeoTransform(), rtol=0, atol=1e-6):
        raise UserError(f"{path}: made on another grid than the map; run `coredino similar` on this map")
    score = ds.GetRasterBand(1).ReadAsArray()
    ds = None
    rows, cols = np.nonzero((score >= threshold) & valid)
    if len(rows) == 0:
        raise UserError(f"{path}: no cell reaches the similarity {threshold:.2f}; lower the threshold")
    if len(rows) > SIMILAR_CELLS:
        pick = np.sort(np.random.default_rng(seed).choice(len(rows), SIMILAR_CELLS, replace=False))
        rows, cols = rows[pick], cols[pick]
    out.add(rows, cols, class_name(name, path), separate=True)
