"""What the explore operations share: opening coredino rasters, clicked points, atomic COGs."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator, Optional

import numpy as np
from osgeo import gdal

from ..errors import UserError

gdal.UseExceptions()

BLOCK = 256  # window side (cells) for streaming reads and writes


def open_raster(path: str, what: str) -> gdal.Dataset:
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
    ds = open_raster(path, "a coredino classification (.tif)")
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


def temp_path(path: Path, suffix: str) -> Path:
    """A hidden temporary name beside ``path`` (same folder: the final rename is atomic)."""
    return path.with_name(f".{path.stem}{suffix}")


class AtomicCOG:
    """A one-band raster written in windows to a scratch GTiff, published as a COG by :meth:`publish`.

    Leaving the ``with`` block without publishing removes every temporary file.
    """

    def __init__(self, path: str, like: gdal.Dataset, dtype: int, nodata: float,
                 resampling: str = "NEAREST"):
        self.path = Path(path)
        self.resampling = resampling
        self.scratch = temp_path(self.path, ".scratch.tif")
        self.partial = temp_path(self.path, ".partial.tif")
        self.sidecars: list[tuple[Path, Path]] = []  # (temporary, final)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.ds = gdal.GetDriverByName("GTiff").Create(
                str(self.scratch), like.RasterXSize, like.RasterYSize, 1, dtype,
                ["TILED=YES", "BLOCKXSIZE=256", "BLOCKYSIZE=256", "COMPRESS=DEFLATE", "BIGTIFF=IF_SAFER"])
        except (OSError, RuntimeError) as exc:
            raise UserError(f"{self.path}: cannot write there ({(str(exc).splitlines() or [''])[0]}); "
                            f"choose another output folder") from None
        self.ds.SetGeoTransform(like.GetGeoTransform())
        self.ds.SetProjection(like.GetProjection())
        self.band = self.ds.GetRasterBand(1)
        self.band.SetNoDataValue(nodata)

    def __enter__(self) -> "AtomicCOG":
        return self

    def __exit__(self, *exc) -> None:
        self.ds = self.band = None
        for temporary in [self.scratch, self.partial, Path(f"{self.partial}.aux.xml")] + \
                [t for t, _ in self.sidecars]:
            temporary.unlink(missing_ok=True)

    def write(self, x: int, y: int, values: np.ndarray) -> None:
        self.band.WriteArray(values, x, y)

    def sidecar(self, final: Path) -> Path:
        """A temporary path for a file published with the COG (renamed to ``final`` just before it)."""
        temporary = final.with_name(f".{final.name}.partial")
        self.sidecars.append((temporary, final))
        return temporary

    def publish(self, tags: dict[str, str], color_table: Optional[gdal.ColorTable] = None,
                pam=None) -> str:
        """Translate to a COG (with overviews), run ``pam(dataset)`` to attach a .aux.xml, rename."""
        if color_table is not None:
            self.band.SetRasterColorTable(color_table)
            self.band.SetRasterColorInterpretation(gdal.GCI_PaletteIndex)
        self.ds.SetMetadata(tags)
        self.ds = self.band = None
        gdal.Translate(str(self.partial), str(self.scratch), format="COG",
                       creationOptions=["COMPRESS=DEFLATE", "BLOCKSIZE=256", "BIGTIFF=IF_SAFER",
                                        f"OVERVIEW_RESAMPLING={self.resampling}"])
        aux = Path(f"{self.partial}.aux.xml")
        if pam is not None:  # the RAT lives in a PAM .aux.xml (GTiff cannot hold one)
            gdal.SetThreadLocalConfigOption("GDAL_PAM_ENABLED", "YES")
            try:
                ds = gdal.Open(str(self.partial))
                pam(ds)
                ds = None
            finally:
                gdal.SetThreadLocalConfigOption("GDAL_PAM_ENABLED", None)
        for temporary, final in self.sidecars:
            os.replace(temporary, final)
        final_aux = Path(f"{self.path}.aux.xml")
        if aux.exists():
            os.replace(aux, final_aux)
        else:
            final_aux.unlink(missing_ok=True)  # a stale one would describe the old file
        os.replace(self.partial, self.path)
        self.scratch.unlink(missing_ok=True)
        return str(self.path)
