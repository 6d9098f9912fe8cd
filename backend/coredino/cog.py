"""One-band rasters published as Cloud-Optimized GeoTIFFs, atomically: the one writer pipeline.

Windows stream into a tiled scratch GeoTIFF on disk (memory stays bounded for any raster size).
:meth:`AtomicCOG.publish` translates it to a COG with overviews (and, when asked, a colour table,
an RGBA copy and a PAM ``.aux.xml``), renames the COG into place, then its sidecars. Every scratch
and partial file has a unique hidden name beside the output; leaving the ``with`` block without
publishing removes them all, and nothing appears at the output path. An output on an object
store (``/vsis3/...``: no rename there) is made the same way in a local staging folder and each
file uploaded once complete (:mod:`coredino.storage`).
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Callable, Optional, Sequence, Union

import numpy as np
from osgeo import gdal

from coredino_contract.naming import rgb_path, style_path

from .atomic import temp_name
from .errors import UserError
from .raster import Grid
from .storage import is_remote, publish, remove
from .threads import current_policy

gdal.UseExceptions()

BLOCK = 256  # tile side (cells) of the scratch file and of the COG


class AtomicCOG:
    """A one-band raster on the grid of ``like``, written in windows, published as ``path``.

    ``nodata`` fills every cell not written. ``resampling`` is GDAL's overview resampling
    (MODE for classes, AVERAGE for scores).
    """

    def __init__(self, path: str, like: Union[Grid, gdal.Dataset], dtype: int, nodata: float, *,
                 block: int = BLOCK, resampling: str = "NEAREST"):
        self.path = Path(path)
        self.nodata = nodata
        self.block = block
        self.resampling = resampling
        self._stage = Path(tempfile.mkdtemp(prefix="coredino-upload-")) if is_remote(path) else None
        self._scratch = temp_name(self._local(self.path), ".scratch.tif")
        self._partial = temp_name(self._local(self.path), ".partial.tif")
        self._sidecars: list[tuple[Path, Path]] = []  # (temporary, final), published after the COG
        width, height, geotransform, wkt = _frame(like)
        try:
            self._scratch.parent.mkdir(parents=True, exist_ok=True)
            self._ds = gdal.GetDriverByName("GTiff").Create(
                str(self._scratch), width, height, 1, dtype,
                ["TILED=YES", f"BLOCKXSIZE={block}", f"BLOCKYSIZE={block}", "COMPRESS=DEFLATE",
                 "BIGTIFF=IF_SAFER", "SPARSE_OK=TRUE"])
        except (OSError, RuntimeError) as exc:
            raise UserError(f"{self.path}: cannot write there ({(str(exc).splitlines() or [''])[0]}); "
                            f"choose another output folder") from None
        try:  # a signal (SIGTERM) landing here must not leave the scratch file behind
            self._ds.SetGeoTransform(geotransform)
            self._ds.SetProjection(wkt)
            self._band = self._ds.GetRasterBand(1)
            # blocks never written read back as nodata (SPARSE_OK): no fill, so an empty canvas
            # costs nothing (a fill writes every block: minutes on a continent-sized grid)
            self._band.SetNoDataValue(nodata)
        except BaseException:
            self.__exit__()
            raise

    def __enter__(self) -> "AtomicCOG":
        return self

    def __exit__(self, *exc) -> None:
        self._ds = self._band = None
        for temporary in [self._scratch, self._partial, _aux(self._partial)] + \
                [t for t, _ in self._sidecars]:
            temporary.unlink(missing_ok=True)
        if self._stage is not None:
            shutil.rmtree(self._stage, ignore_errors=True)

    def write(self, x: int, y: int, values: np.ndarray) -> None:
        """Write a window of values with its top-left cell at (x, y)."""
        self._band.WriteArray(values, x, y)

    def sidecar(self, final: Union[str, Path]) -> Path:
        """A temporary path for a file published with the COG (renamed to ``final`` just after it)."""
        final = Path(final)
        temporary = temp_name(self._local(final), ".partial")
        self._sidecars.append((temporary, final))
        return temporary

    def publish(self, tags: dict[str, str], colors: Optional[Sequence[Sequence[int]]] = None,
                rgba: Optional[str] = None,
                pam: Optional[Callable[[gdal.Dataset], None]] = None) -> str:
        """Translate to a COG and rename it into place; returns its path.

        colors: a palette, value i drawn in ``colors[i]`` (RGB or RGBA), nodata transparent.
        rgba:   also publish an RGBA COG of the palette's colours there (for viewers without palettes).
        pam:    called with the COG opened in PAM mode, to attach what GTiff cannot hold (a RAT)
                in ``<path>.aux.xml``.
        """
        if colors is not None:
            self._band.SetRasterColorTable(color_table(colors, int(self.nodata)))
            self._band.SetRasterColorInterpretation(gdal.GCI_PaletteIndex)
        self._ds.SetMetadata(tags)
        self._ds = self._band = None  # flush and close
        gdal.Translate(str(self._partial), str(self._scratch), format="COG",
                       creationOptions=cog_options(self.block, self.resampling, current_policy().threads))
        if rgba:
            gdal.Translate(str(self.sidecar(rgba)), str(self._partial), format="COG", rgbExpand="rgba",
                           creationOptions=["COMPRESS=DEFLATE", f"BLOCKSIZE={self.block}"])
        if pam is not None:
            gdal.SetThreadLocalConfigOption("GDAL_PAM_ENABLED", "YES")
            try:
                ds = gdal.Open(str(self._partial))
                pam(ds)
                ds = None
            finally:
                gdal.SetThreadLocalConfigOption("GDAL_PAM_ENABLED", None)
        aux = _aux(self._partial)
        if aux.exists():
            self._sidecars.append((aux, _aux(self.path)))
        else:
            remove(_aux(self.path))  # a stale one would describe the old file
        publish(self._partial, self.path)
        for temporary, final in self._sidecars:
            publish(temporary, final)
        self._scratch.unlink(missing_ok=True)
        return str(self.path)

    def _local(self, path: Path) -> Path:
        """Where a file for ``path`` is made: beside it, or in the staging folder of an object store."""
        return self._stage / path.name if self._stage is not None else path


def cog_options(block: int, resampling: str, threads: int) -> list[str]:
    """COG creation options: DEFLATE tiles of ``block`` cells, overviews by ``resampling``.

    ``threads``: the engine's thread count (:mod:`coredino.threads`) compressing tiles and
    computing overviews in parallel; the pixels (and overviews) are the same for any count.
    """
    return ["COMPRESS=DEFLATE", f"BLOCKSIZE={block}", "BIGTIFF=IF_SAFER",
            f"OVERVIEW_RESAMPLING={resampling}", f"NUM_THREADS={threads}"]


def discard(path: str) -> None:
    """Remove the temporaries a writer of ``path`` left when its process was killed (no ``with``
    exit): the hidden uniquely named files of the output and of its sidecars beside it."""
    if is_remote(path):
        return  # they were in the dead process's local staging folder
    output = Path(path)
    for name in (output.name, Path(style_path(path)).name, Path(rgb_path(path)).name):
        for temporary in output.parent.glob(f".{name}.{'?' * 12}.*"):
            temporary.unlink(missing_ok=True)


def color_table(colors: Sequence[Sequence[int]], nodata: int) -> gdal.ColorTable:
    """A GDAL palette: value i in ``colors[i]`` (RGB, opaque, or RGBA), ``nodata`` transparent."""
    table = gdal.ColorTable()
    for value, color in enumerate(colors):
        rgba = [int(c) for c in color] + [255] * (4 - len(color))
        table.SetColorEntry(value, tuple(rgba))
    table.SetColorEntry(nodata, (0, 0, 0, 0))
    return table


def _frame(like: Union[Grid, gdal.Dataset]) -> tuple[int, int, tuple, str]:
    """(width, height, geotransform, CRS WKT) of a grid or of a dataset."""
    if isinstance(like, Grid):
        return like.width, like.height, like.geotransform, like.wkt
    return like.RasterXSize, like.RasterYSize, like.GetGeoTransform(), like.GetProjection()


def _aux(path: Path) -> Path:
    return Path(f"{path}.aux.xml")
