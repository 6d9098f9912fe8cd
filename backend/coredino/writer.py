"""Write classified cells as a Cloud-Optimized GeoTIFF, atomically.

Cells stream into a tiled GeoTIFF on disk (memory stays bounded for any raster size); on
success it is translated to a COG with the codebook's colour table and MODE overviews, a QML
sidecar styles it in QGIS with only the classes present, and everything is renamed into place.
Nothing is left at the output path when a job fails or is cancelled.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

import numpy as np
from osgeo import gdal

from .errors import UserError
from .raster import Grid
from .styling import write_qml

gdal.UseExceptions()

BLOCK = 128  # class maps are 1/64-1/1024 the size of their source: small blocks, overviews sooner


def nodata_for(k: int) -> int:
    """Byte ids (nodata 255) up to 255 classes, UInt16 ids (nodata 65535) above."""
    return 255 if k <= 255 else 65535


class ClassWriter:
    """Collects cluster ids for a grid and publishes them as ``path`` on :meth:`finish`.

    Use as a context manager: leaving it without ``finish`` (an error, a cancel) removes every
    temporary file.
    """

    def __init__(self, path: str, grid: Grid, colors: np.ndarray, tags: dict[str, str]):
        self.path = Path(path)
        self.k = len(colors)
        if self.k > 65535:
            raise ValueError("at most 65535 classes fit a UInt16 COG")
        self.nodata = nodata_for(self.k)
        self.colors = colors
        self.tags = tags
        self.counts = np.zeros(self.k, np.int64)
        self._scratch = self._temp(".scratch.tif")
        dtype = gdal.GDT_Byte if self.nodata == 255 else gdal.GDT_UInt16
        options = ["TILED=YES", f"BLOCKXSIZE={BLOCK}", f"BLOCKYSIZE={BLOCK}", "COMPRESS=DEFLATE",
                   "BIGTIFF=IF_SAFER", "SPARSE_OK=TRUE"]
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._ds = gdal.GetDriverByName("GTiff").Create(str(self._scratch), grid.width,
                                                            grid.height, 1, dtype, options)
        except (OSError, RuntimeError) as exc:
            raise UserError(f"{self.path}: cannot write there ({str(exc).splitlines()[0]}); "
                            f"choose another output folder") from None
        self._ds.SetGeoTransform(grid.geotransform)
        self._ds.SetProjection(grid.wkt)
        band = self._ds.GetRasterBand(1)
        band.SetNoDataValue(self.nodata)
        band.Fill(self.nodata)

    def __enter__(self) -> "ClassWriter":
        return self

    def __exit__(self, *exc) -> None:
        self._ds = None
        for suffix in (".scratch.tif", ".partial.tif", ".partial.qml", ".partial.rgb.tif"):
            self._temp(suffix).unlink(missing_ok=True)

    def write(self, x: int, y: int, ids: np.ndarray) -> None:
        """Write a block of ids (nodata where invalid) with its top-left cell at (x, y)."""
        valid = ids[ids != self.nodata]
        self.counts += np.bincount(valid, minlength=self.k)
        self._ds.GetRasterBand(1).WriteArray(ids.astype(np.uint16), x, y)

    def finish(self, rgb_path: Optional[str] = None) -> dict:
        """Publish the COG (and optional RGBA COG); return its class counts by id."""
        band = self._ds.GetRasterBand(1)
        band.SetRasterColorTable(_color_table(self.colors))
        band.SetRasterColorInterpretation(gdal.GCI_PaletteIndex)
        self._ds.SetMetadata(self.tags)
        self._ds = None  # flush and close
        partial = self._temp(".partial.tif")
        gdal.Translate(str(partial), str(self._scratch), format="COG",
                       creationOptions=["COMPRESS=DEFLATE", f"BLOCKSIZE={BLOCK}",
                                        "OVERVIEW_RESAMPLING=MODE", "BIGTIFF=IF_SAFER"])
        present = {int(i): int(n) for i, n in enumerate(self.counts) if n}
        qml = self._temp(".partial.qml")
        write_qml(qml, present, self.colors)
        if rgb_path:
            rgb_partial = self._temp(".partial.rgb.tif")
            gdal.Translate(str(rgb_partial), str(partial), format="COG", rgbExpand="rgba",
                           creationOptions=["COMPRESS=DEFLATE", f"BLOCKSIZE={BLOCK}"])
            os.replace(rgb_partial, rgb_path)
        os.replace(qml, self.path.with_suffix(".qml"))
        os.replace(partial, self.path)
        self._scratch.unlink(missing_ok=True)
        return present

    def _temp(self, suffix: str) -> Path:
        return self.path.with_name(f".{self.path.stem}{suffix}")


def _color_table(colors: np.ndarray) -> gdal.ColorTable:
    table = gdal.ColorTable()
    for i, (r, g, b) in enumerate(colors.tolist()):
        table.SetColorEntry(i, (r, g, b, 255))
    table.SetColorEntry(nodata_for(len(colors)), (0, 0, 0, 0))
    return table
