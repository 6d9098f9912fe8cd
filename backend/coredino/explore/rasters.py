"""What the explore operations share: opening coredino rasters, their grids, clicked points, windows."""

from __future__ import annotations

import os
from typing import Iterator

import numpy as np
from osgeo import gdal

from ..errors import UserError

gdal.UseExceptions()

BLOCK = 256  # window side (cells) for streaming reads and writes


def open_dataset(path: str, what: str) -> gdal.Dataset:
    """Open ``path`` read-only; a missing or unreadable file is a one-line :class:`UserError`."""
    if not os.path.isfile(path):
        raise UserError(f"{path}: no such file")
    try:
        ds = gdal.Open(str(path))
    except RuntimeError as exc:
        detail = (str(exc).splitlines() or ["not a raster"])[0]
        raise UserError(f"{path}: GDAL cannot read it ({detail}); expected {what}") from None
    if ds is None or ds.RasterCount < 1:
        raise UserError(f"{path}: not a raster; expected {what}")
    return ds


def open_classification(path: str) -> gdal.Dataset:
    """A class map written by ``coredino classify`` or ``coredino reclassify``."""
    ds = open_dataset(path, "a coredino classification (.tif)")
    band = ds.GetRasterBand(1)
    if ds.RasterCount != 1 or band.DataType not in (gdal.GDT_Byte, gdal.GDT_UInt16) \
            or band.GetColorTable() is None:
        raise UserError(f"{path}: not a coredino class map (expected one Byte/UInt16 band with a "
                        f"colour table, as `coredino classify` writes)")
    return ds


def cell_area(ds: gdal.Dataset, path: str) -> float:
    """Square metres of one cell; the grid must be north-up in a projected CRS in metres."""
    gt = ds.GetGeoTransform()
    srs = ds.GetSpatialRef()
    if srs is None or not srs.IsProjected() or abs(srs.GetLinearUnits() - 1.0) > 1e-9 \
            or gt[2] or gt[4]:
        raise UserError(f"{path}: not on a north-up grid in metres; areas need the grid coredino "
                        f"writes (use the file `coredino classify` wrote)")
    return abs(gt[1] * gt[5])


def same_grid(a: gdal.Dataset, b: gdal.Dataset) -> bool:
    if (a.RasterXSize, a.RasterYSize) != (b.RasterXSize, b.RasterYSize):
        return False
    if not np.allclose(a.GetGeoTransform(), b.GetGeoTransform(), rtol=0, atol=1e-6):
        return False
    sa, sb = a.GetSpatialRef(), b.GetSpatialRef()
    return sa is not None and sb is not None and bool(sa.IsSame(sb))


def cell_of(ds: gdal.Dataset, path: str, x: float, y: float) -> tuple[int, int]:
    """(column, row) of the cell holding the point (x, y) given in the raster's CRS."""
    gt = ds.GetGeoTransform()
    col = int(np.floor((x - gt[0]) / gt[1]))
    row = int(np.floor((y - gt[3]) / gt[5]))
    if not (0 <= col < ds.RasterXSize and 0 <= row < ds.RasterYSize):
        x1, y1 = gt[0] + gt[1] * ds.RasterXSize, gt[3] + gt[5] * ds.RasterYSize
        raise UserError(f"point ({x:.2f}, {y:.2f}) is outside {path} (x {min(gt[0], x1):.2f} to "
                        f"{max(gt[0], x1):.2f}, y {min(gt[3], y1):.2f} to {max(gt[3], y1):.2f} in "
                        f"{_crs_name(ds)}); give points in the raster's CRS")
    return col, row


def windows(width: int, height: int, block: int = BLOCK) -> Iterator[tuple[int, int, int, int]]:
    """(x, y, w, h) windows covering a raster, row by row."""
    for y in range(0, height, block):
        for x in range(0, width, block):
            yield x, y, min(block, width - x), min(block, height - y)


def _crs_name(ds: gdal.Dataset) -> str:
    srs = ds.GetSpatialRef()
    if srs is None:
        return "its CRS"
    code = srs.GetAuthorityCode(None)
    return f"EPSG:{code}" if code else (srs.GetName() or "its CRS")
