"""One big raster across workers: row bands, their part files, and the assembly into one COG.

A band is whole tile rows of the raster's tile grid (:class:`coredino.tiling.TileBand`): its tiles
read the same windows, context border included, as in a one-piece run, so the parts hold exactly
the cells the one-piece run writes. Parts are ordinary classification COGs in a hidden folder
beside the output (``.coredino-parts/<name>/rows-<first>-<stop>-of-<rows>.tif``; on an object
store, under the output prefix), so a resumed run keeps the finished ones. The assembly streams
the parts in order through the engine's one writer (:class:`coredino.writer.ClassWriter`), which
publishes the COG atomically: pixels, colour table, overviews and tags (apart from the creation
time) are those of the one-piece run.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from typing import Optional

import numpy as np
from osgeo import gdal

from ..raster import Grid
from ..storage import forget, is_remote, join, remove
from ..writer import ClassWriter

gdal.UseExceptions()

PARTS = ".coredino-parts"
_READ_ROWS = 1024  # part rows copied at a time (bounded memory on any width)


@dataclass(frozen=True)
class Band:
    """Tile rows ``first`` to ``stop`` (exclusive) of a raster with ``rows`` tile rows."""

    first: int
    stop: int
    rows: int


def split(tile_rows: int, rows_per_band: int) -> list[Band]:
    """Consecutive bands of ``rows_per_band`` tile rows (the last one shorter) covering the grid."""
    step = max(1, rows_per_band)
    return [Band(r, min(r + step, tile_rows), tile_rows) for r in range(0, tile_rows, step)]


def rows_per_band(tile_rows: int, tiles: int, target_tiles: float) -> int:
    """Tile rows per band so that a band holds about ``target_tiles`` tiles (at least one row)."""
    per_row = max(1, tiles // max(1, tile_rows))
    return max(1, round(target_tiles / per_row))


def parts_folder(output: str) -> str:
    stem = os.path.splitext(os.path.basename(output))[0]
    return join(os.path.dirname(output), PARTS, stem)


def part_path(output: str, band: Band) -> str:
    """Where the band's part of ``output`` is written."""
    return join(parts_folder(output), f"rows-{band.first:05d}-{band.stop:05d}-of-{band.rows:05d}.tif")


def assemble(parts: list[str], output: str, colors: np.ndarray,
             rgb_output: Optional[str] = None) -> dict[int, int]:
    """Write the parts (in row order) as one COG at ``output``; return its class counts."""
    forget(parts_folder(output))  # the workers wrote them after this process looked
    first = gdal.Open(parts[0])
    gt, wkt = first.GetGeoTransform(), first.GetProjection()
    tags = {k: v for k, v in first.GetMetadata().items() if k != "AREA_OR_POINT"}
    width = first.RasterXSize
    first = None
    heights = []
    for part in parts:
        ds = gdal.Open(part)
        heights.append(ds.RasterYSize)
        ds = None
    grid = Grid(wkt, gt[0], gt[3], gt[1], width, sum(heights))
    with ClassWriter(output, grid, colors, tags) as writer:
        y = 0
        for part, height in zip(parts, heights):
            ds = gdal.Open(part)
            band = ds.GetRasterBand(1)
            for top in range(0, height, _READ_ROWS):
                rows = min(_READ_ROWS, height - top)
                writer.write(0, y + top, band.ReadAsArray(0, top, width, rows))
            band, ds = None, None
            y += height
        return writer.finish(rgb_output)


def remove_parts(output: str, parts: list[str]) -> None:
    """Delete a raster's parts once it is assembled."""
    if is_remote(output):
        for part in parts:
            remove(part)
            remove(os.path.splitext(part)[0] + ".qml")
    else:
        shutil.rmtree(parts_folder(output), ignore_errors=True)
        try:
            os.rmdir(os.path.dirname(parts_folder(output)))
        except OSError:
            pass  # other rasters' parts are still there
