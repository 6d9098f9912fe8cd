"""Raster input: open any GDAL raster, pick RGB, stretch, build validity, warp on the fly.

Nothing is copied into memory: a warped VRT resamples the source to the codebook's GSD in a
metric CRS, and windows are read from it on demand. When that grid is the source's own pixel
grid (same CRS, north-up, same pixel size, whole-pixel offset), windows are read from the
source directly instead, with the validity the warper would give: the same values and masks,
at about a third of the CPU cost (docs/benchmarks.md, section 5).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Optional, Sequence, Union

import numpy as np
from osgeo import gdal, gdal_array, osr

from .errors import UserError

if TYPE_CHECKING:
    import torch

gdal.UseExceptions()
osr.UseExceptions()

STRETCH_PERCENTILES = (2.0, 98.0)
# GDAL's block cache defaults to 5 % of the RAM (6 GB on a 128 GB machine) and fills up on a big
# raster: memory would grow with the area read. A few run windows of source blocks is all the
# tile loop re-reads; 256 MB reads as fast as the default here. GDAL_CACHEMAX, if set, wins.
GDAL_CACHE_BYTES = 256 * 2**20
MAX_SCALE_ERROR = 0.01  # a projected CRS whose metres differ more from ground metres is replaced
_SAMPLE_SIDE = 1024  # longest side of the decimated read used for the 16-bit stretch
Pixels = Union[np.ndarray, "torch.Tensor"]  # a window on the CPU, or uploaded to a device


@dataclass
class Grid:
    """A north-up pixel grid in a metric CRS."""

    wkt: str
    x0: float
    y0: float
    gsd: float
    width: int
    height: int

    @property
    def geotransform(self) -> tuple:
        return (self.x0, self.gsd, 0.0, self.y0, 0.0, -self.gsd)


@dataclass
class RasterSource:
    """An opened raster, resampled on the fly to ``grid`` (see :func:`open_raster_source`)."""

    path: str
    grid: Grid
    bands: list[int]
    stretch: Optional[tuple[np.ndarray, np.ndarray]]
    zero_is_nodata: bool
    source_gsd: float
    warnings: list[str] = field(default_factory=list)
    _warped: Optional[gdal.Dataset] = None  # None when windows are read directly (_direct)
    _direct: Optional["_DirectRead"] = None
    _band_index: Optional[list[int]] = None
    _source: Optional[gdal.Dataset] = None  # the selected bands before warping (direct reads, coverage)
    _selected_bands: int = 0
    _open_args: tuple = ()

    def read(self, x: int, y: int, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
        """RGB float32 (3, h, w) in [0, 1] and a validity mask (h, w) for a grid window."""
        values, valid = self.read_raw(x, y, width, height)
        return self.to_unit(values, valid), valid

    def read_raw(self, x: int, y: int, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
        """The R, G, B values (3, h, w) of a grid window as read, and its validity mask (h, w).

        Values are uint8 for 8-bit rasters (to be scaled by :meth:`to_unit`, on the CPU or on a
        device), float32 otherwise; invalid pixels are not zeroed yet.
        """
        try:
            if self._direct is not None:
                data, valid = self._direct.read(self._source, x, y, width, height)
            else:
                data = self._warped.ReadAsArray(x, y, width, height)
                data, valid = data[:-1], data[-1] > 0
        except RuntimeError as exc:
            raise unreadable(self.path, exc) from None
        if self.zero_is_nodata:
            valid &= np.any(data != 0, axis=0)
        values = data[self._band_index]
        if values.dtype != np.uint8:
            values = values.astype(np.float32)
            valid &= np.isfinite(values).all(axis=0)  # NaN / inf pixels are nodata
        return values, valid

    def to_unit(self, values: np.ndarray, valid: np.ndarray) -> np.ndarray:
        """Values from :meth:`read_raw` as float32 in [0, 1], 0 where not ``valid`` (see :class:`PixelScale`)."""
        return PixelScale(self.stretch)(values, valid)

    def reopen(self) -> "RasterSource":
        """An independent copy with its own GDAL handles (a GDAL dataset serves one thread)."""
        other = open_raster_source(*self._open_args)
        other.stretch = self.stretch
        return other

    def coverage(self, cell: int) -> Optional[np.ndarray]:
        """Which ``cell`` x ``cell`` pixel cells of the grid may hold valid pixels, or None (unknown);
        (ceil(height / cell), ceil(width / cell)).

        Conservative: a cell is False only where GDAL reports the source as empty (no data at
        all: the unused canvas of a VRT mosaic, sparse GeoTIFF tiles), which reads as nodata.
        Asks GDAL for data coverage, not pixels: costs milliseconds whatever the raster's size.
        """
        try:
            return _coverage(self._source, self._selected_bands, self.grid, cell,
                             1 + math.ceil(self.source_gsd / (self.grid.gsd * cell)))
        except (RuntimeError, ValueError, AttributeError):
            return None

    def close(self) -> None:
        """Release the GDAL datasets (QGIS crashes at exit if any is still alive)."""
        self._warped = None
        self._source = None


class PixelScale:
    """Raw pixel values (3, h, w) to float32 in [0, 1], 0 where not valid: ``x / 255`` for 8-bit
    rasters, else the percentile stretch (lo -> 0, hi -> 1, clipped).

    One rule for numpy arrays (the CPU path) and torch tensors on any device (the GPU path scales
    a window after uploading it as read); the stretch is copied to a device once.
    """

    def __init__(self, stretch: Optional[tuple[np.ndarray, np.ndarray]]):
        self.stretch = stretch
        self._bounds: dict = {}  # array library or device -> (lo, span) shaped (3, 1, 1)

    def __call__(self, values: Pixels, valid: Pixels) -> Pixels:
        if isinstance(values, np.ndarray):
            return self._numpy(values, valid)
        import torch as xp  # a tensor came in: torch is loaded already
        values = xp.asarray(values, dtype=xp.float32)
        if self.stretch is None:
            values = values * (1.0 / 255.0)
        else:
            lo, span = self._bounds_for(values, xp)
            values = xp.clip((values - lo) / span, 0.0, 1.0)
        return xp.where(valid, values, 0.0)

    def _numpy(self, values: np.ndarray, valid: np.ndarray) -> np.ndarray:
        """The same in place on one new float32 array: one pass fewer (two for an all-valid
        window), on the CPU path's reader thread, which shares the cores with the model."""
        out = values.astype(np.float32)
        if self.stretch is None:
            out *= np.float32(1.0 / 255.0)
        else:
            lo, span = self._bounds_for(out, np)
            out -= lo
            out /= span
            np.clip(out, 0.0, 1.0, out=out)
        if not valid.all():
            out[:, ~valid] = 0.0
        return out

    def _bounds_for(self, values: Pixels, xp) -> tuple:
        key = np if xp is np else values.device
        if key not in self._bounds:
            lo, hi = (np.asarray(b, np.float32).reshape(3, 1, 1) for b in self.stretch)
            self._bounds[key] = (lo, hi - lo) if xp is np else \
                (xp.from_numpy(lo).to(key), xp.from_numpy(hi - lo).to(key))
        return self._bounds[key]


def open_raster_source(path: str, gsd: float, pad_to: int = 1, bands: Optional[Sequence[int]] = None,
                       multiple_of: int = 1, origin: tuple[int, int] = (0, 0),
                       warp: bool = False) -> RasterSource:
    """Open ``path`` for reading at ``gsd`` metres per pixel.

    pad_to:      windows up to this many pixels wide and high can be read even from a smaller
                 raster (it is padded with invalid pixels up to one tile).
    multiple_of: grid width and height are rounded up to a multiple of this (the patch size).
    bands:       1-based band numbers to use as R, G, B (default: from colour interpretation,
                 else 1, 2, 3; a single band is replicated).
    origin:      (x, y) pixel at ``gsd`` where the grid starts, relative to the raster's own first
                 pixel (negative: the grid starts before the raster, with invalid pixels there).
    warp:        always read through the warped VRT, even where a direct read gives the same
                 pixels (the reference the direct read is tested and benchmarked against).
    """
    if gdal.GetConfigOption("GDAL_CACHEMAX") is None and gdal.GetCacheMax() > GDAL_CACHE_BYTES:
        gdal.SetCacheMax(GDAL_CACHE_BYTES)
    src = _open(path)
    srs = src.GetSpatialRef()
    gt = src.GetGeoTransform(can_return_null=True)
    if srs is None or gt is None:
        raise UserError(f"{path}: has no coordinate reference system or georeference; assign "
                        f"one with `gdal_edit.py -a_srs EPSG:<code> -a_ullr <ulx> <uly> <lrx> <lry> "
                        f"{path}` and retry")
    band_list, alpha = _pick_bands(src, path, bands)
    first = src.GetRasterBand(band_list[0])
    declared = first.GetMaskFlags() != gdal.GMF_ALL_VALID or alpha is not None
    stretch = None if first.DataType == gdal.GDT_Byte else _percentile_stretch(src, band_list, path)

    unique = list(dict.fromkeys(band_list))
    selected = gdal.Translate("", src, format="VRT", bandList=unique + ([alpha] if alpha else []))
    crs = _metric_crs(src, srs, gt)
    dst_wkt = crs.ExportToWkt()
    probe = gdal.Warp("", selected, format="VRT", dstSRS=dst_wkt)  # GDAL's native resolution
    pgt, native_w, native_h = probe.GetGeoTransform(), probe.RasterXSize, probe.RasterYSize
    source_gsd = abs(pgt[1])
    ox, oy = origin
    cols = _round_up(math.ceil(native_w * source_gsd / gsd - 1e-6) - ox, multiple_of)
    rows = _round_up(math.ceil(native_h * abs(pgt[5]) / gsd - 1e-6) - oy, multiple_of)
    grid = Grid(dst_wkt, pgt[0] + ox * gsd, pgt[3] - oy * gsd, gsd, cols, rows)
    for cell in _CROP_CELLS:  # coarse first: milliseconds on any canvas, then closer to the data
        grid = _crop_to_data(grid, selected, len(unique) + (1 if alpha else 0), multiple_of, cell)
    padded_cols, padded_rows = (max(n, _round_up(pad_to, multiple_of)) for n in (cols, rows))
    direct = None if warp or crs is not srs else _DirectRead.plan(selected, gt, grid, alpha is not None)
    warped = None if direct else gdal.Warp("", selected, format="VRT", dstSRS=dst_wkt, xRes=gsd, yRes=gsd,
                       outputBounds=(grid.x0, grid.y0 - padded_rows * gsd,
                                     grid.x0 + padded_cols * gsd, grid.y0),
                       resampleAlg="bilinear", dstAlpha=True, srcAlpha=alpha is not None,
                       warpOptions=["INIT_DEST=0"])
    raster = RasterSource(path=path, grid=grid, bands=band_list, stretch=stretch,
                          zero_is_nodata=not declared, source_gsd=source_gsd, _warped=warped, _direct=direct,
                          _band_index=[unique.index(b) for b in band_list], _source=selected,
                          _selected_bands=len(unique) + (1 if alpha else 0),
                          _open_args=(path, gsd, pad_to, bands, multiple_of, origin, warp))
    if source_gsd > 4 * gsd:
        raster.warnings.append(f"{path}: pixel size {source_gsd:.2f} m is {source_gsd / gsd:.0f}x "
                               f"coarser than the codebook's {gsd} m; expect blurry classes")
    return raster


# How far (pixels) the grid may be off whole source pixels for a direct read to give the warper's
# pixels: bilinear weights this small change no integer value after rounding (65535 x 1e-6 < 0.5)
# nor any validity (GDAL drops a pixel whose valid weights sum below 1e-5); a float value moves
# by its neighbour's difference times the weight, so floats need the exact grid.
_INTEGER_DRIFT = 1e-6
_FLOAT_DRIFT = 1e-9


@dataclass(frozen=True)
class _DirectRead:
    """Reads grid windows straight from the band-selected source when the grid is its own pixel
    grid, giving what the bilinear warped VRT gives there (GDAL 3.6: the kernel's weights are
    exactly 1 and 0 at whole-pixel alignment, so values pass through bit for bit).

    Validity, as GDAL's warper builds it: a band's pixel is valid where it is not the band's
    nodata (if the bands have nodata), else where the per-dataset mask is set (if there is no
    alpha band), and, with an alpha band, where alpha > 0; a pixel is valid where any band is,
    and an invalid band reads 0 (INIT_DEST=0). Outside the raster nothing is valid.
    """

    dx: int  # source pixel of grid column 0
    dy: int  # source pixel of grid row 0
    masks: str  # "nodata": one mask band per band; "dataset": one shared mask band; "": none
    alpha: bool  # the source's last band is alpha

    @staticmethod
    def plan(source: gdal.Dataset, gt: tuple, grid: Grid, alpha: bool) -> Optional["_DirectRead"]:
        """The direct read of ``grid`` from ``source`` (geotransform ``gt``, in the grid's CRS),
        or None where only the warper gives the right pixels."""
        side = max(source.RasterXSize, source.RasterYSize, grid.width, grid.height)
        dx, dy = (grid.x0 - gt[0]) / grid.gsd, (gt[3] - grid.y0) / grid.gsd
        drift = max(abs(gt[1] - grid.gsd), abs(gt[5] + grid.gsd)) / grid.gsd * side \
            + max(abs(dx - round(dx)), abs(dy - round(dy)))  # pixels, at worst, off whole pixels
        integer = np.issubdtype(
            gdal_array.GDALTypeCodeToNumericTypeCode(source.GetRasterBand(1).DataType), np.integer)
        if gt[2] or gt[4] or drift > (_INTEGER_DRIFT if integer else _FLOAT_DRIFT):
            return None  # rotated, another pixel size, or a fractional offset: resampled
        bands = [source.GetRasterBand(i) for i in range(1, source.RasterCount + 1 - alpha)]
        nodata = [b.GetNoDataValue() is not None for b in bands]
        flags = {b.GetMaskFlags() for b in bands}
        if alpha and source.GetRasterBand(source.RasterCount).DataType != gdal.GDT_Byte:
            return None  # the warper's density threshold differs for wider alpha bands
        if all(nodata) and flags == {gdal.GMF_NODATA}:
            masks = "nodata"
        elif any(nodata):
            return None  # nodata on some bands only, or beside an explicit mask
        elif not alpha and flags == {gdal.GMF_PER_DATASET}:
            masks = "dataset"
        elif flags <= {gdal.GMF_ALL_VALID, gdal.GMF_ALPHA | gdal.GMF_PER_DATASET}:
            masks = ""
        else:
            return None
        return _DirectRead(round(dx), round(dy), masks, alpha)

    def read(self, source: gdal.Dataset, x: int, y: int, width: int,
             height: int) -> tuple[np.ndarray, np.ndarray]:
        """(the source's value bands (n, h, w), 0 where invalid; validity (h, w)) of a grid window."""
        nbands = source.RasterCount - self.alpha
        sx, sy = x + self.dx, y + self.dy
        x0, y0 = max(sx, 0), max(sy, 0)
        x1, y1 = min(sx + width, source.RasterXSize), min(sy + height, source.RasterYSize)
        if x1 > x0 and y1 > y0:
            window = (x0, y0, x1 - x0, y1 - y0)
            read = source.ReadAsArray(*window)
            read = read[None] if read.ndim == 2 else read
            values, inside_valid = read[:nbands], np.ones(read.shape[1:], bool)
            if self.masks or self.alpha:
                band_valid = self._band_validity(source, read, window)
                values, inside_valid = np.where(band_valid, values, 0), band_valid.any(axis=0)
            if (x0, y0, x1, y1) == (sx, sy, sx + width, sy + height):
                return values, inside_valid
        dtype = gdal_array.GDALTypeCodeToNumericTypeCode(source.GetRasterBand(1).DataType)
        data, valid = np.zeros((nbands, height, width), dtype), np.zeros((height, width), bool)
        if x1 > x0 and y1 > y0:
            data[:, y0 - sy:y1 - sy, x0 - sx:x1 - sx] = values
            valid[y0 - sy:y1 - sy, x0 - sx:x1 - sx] = inside_valid
        return data, valid

    def _band_validity(self, source: gdal.Dataset, read: np.ndarray, window: tuple) -> np.ndarray:
        """(bands, h, w) bool: which band values of a window inside the source are valid."""
        nbands = source.RasterCount - self.alpha
        valid = np.ones((nbands,) + read.shape[1:], bool)
        if self.masks == "nodata":
            for i in range(nbands):
                valid[i] = source.GetRasterBand(i + 1).GetMaskBand().ReadAsArray(*window) > 0
        elif self.masks == "dataset":
            valid &= source.GetRasterBand(1).GetMaskBand().ReadAsArray(*window) > 0
        if self.alpha:
            valid &= read[-1] > 0
        return valid


def unreadable(path: str, exc: BaseException) -> UserError:
    """The one-line error for a file GDAL fails to read (truncated, corrupt, not a raster)."""
    detail = (str(exc).strip().splitlines() or ["not a raster"])[0]
    return UserError(f"{path}: GDAL cannot read it ({detail}); check that the file is a "
                     f"complete raster (re-export or re-download it)")


def no_valid_pixels(path: str) -> UserError:
    """The one-line error for a raster with nothing to classify (whatever its data type)."""
    return UserError(f"{path}: no valid pixels (all nodata, transparent, black or NaN/inf); "
                     f"nothing to classify")


def _open(path: str) -> gdal.Dataset:
    if os.path.isdir(path):
        raise UserError(f"{path}: is a folder, not a raster; give a raster file (or use `coredino batch`)")
    if not os.path.exists(path) and "://" not in path and not path.startswith("/vsi"):
        raise UserError(f"{path}: no such file")
    try:
        ds = gdal.Open(path)
        if ds.RasterCount < 1:
            raise RuntimeError("no raster bands")
        ds.GetRasterBand(1).ReadAsArray(0, 0, 1, 1)
    except (RuntimeError, AttributeError) as exc:
        raise unreadable(path, exc) from None
    return ds


def _pick_bands(ds: gdal.Dataset, path: str,
                requested: Optional[Sequence[int]]) -> tuple[list[int], Optional[int]]:
    """(three band numbers for R, G, B; the alpha band number or None)."""
    interp = {i: ds.GetRasterBand(i).GetColorInterpretation() for i in range(1, ds.RasterCount + 1)}
    alpha = next((i for i, c in interp.items() if c == gdal.GCI_AlphaBand), None)
    if requested:
        bad = [b for b in requested if b not in interp]
        if bad or len(requested) not in (1, 3):
            raise UserError(f"{path}: --bands {','.join(map(str, requested))} is invalid; give 1 or "
                            f"3 band numbers between 1 and {ds.RasterCount}")
        chosen = list(requested)
    else:
        by_color = {c: i for i, c in interp.items()}
        rgb = [by_color.get(c) for c in (gdal.GCI_RedBand, gdal.GCI_GreenBand, gdal.GCI_BlueBand)]
        color = [i for i in interp if i != alpha]
        if all(rgb):
            chosen = rgb
        elif len(color) >= 3:
            chosen = color[:3]
        else:
            chosen = color[:1]
    if len(chosen) == 1:
        chosen = chosen * 3
    return chosen, alpha


def _percentile_stretch(ds: gdal.Dataset, bands: list[int], path: str) -> tuple[np.ndarray, np.ndarray]:
    """Per-band 2nd/98th percentiles of valid pixels, from a decimated read of the whole raster."""
    scale = min(1.0, _SAMPLE_SIDE / max(ds.RasterXSize, ds.RasterYSize))
    bx, by = max(1, round(ds.RasterXSize * scale)), max(1, round(ds.RasterYSize * scale))
    lo, hi = [], []
    for b in bands:
        band = ds.GetRasterBand(b)
        try:
            values = band.ReadAsArray(buf_xsize=bx, buf_ysize=by).astype(np.float64)
            valid = band.GetMaskBand().ReadAsArray(buf_xsize=bx, buf_ysize=by) > 0
        except RuntimeError as exc:
            raise unreadable(path, exc) from None
        if band.GetMaskFlags() == gdal.GMF_ALL_VALID:
            valid &= values != 0
        # one NaN would make every percentile NaN; beyond float32 is inf once read (invalid)
        valid &= np.isfinite(values.astype(np.float32))
        if not valid.any():
            raise no_valid_pixels(path)
        # clamped so that hi - lo stays finite in float32 (no inf / inf = NaN in the stretch)
        p_lo, p_hi = np.clip(np.percentile(values[valid], STRETCH_PERCENTILES), -1e38, 1e38)
        lo.append(p_lo)
        hi.append(max(p_hi, p_lo + max(1e-6, abs(p_lo) * 1e-5)))
    return np.asarray(lo, np.float32), np.asarray(hi, np.float32)


def _metric_crs(ds: gdal.Dataset, srs: osr.SpatialReference, gt: tuple) -> osr.SpatialReference:
    """The source CRS when its metres are ground metres at the raster, else auto-UTM.

    Kept: a projected CRS in metres (not Web Mercator) whose scale factor stays within
    MAX_SCALE_ERROR of 1 over the raster (UTM, national grids). Replaced by the UTM zone of the
    raster's centre (UPS beyond 84 N / 80 S): geographic rasters, Web Mercator, and projections
    that stretch the ground there (World Mercator EPSG:3395 away from the equator, polar
    stereographic far from its standard parallel, ...), so cells are the codebook's ground GSD.
    """
    projected_metres = srs.IsProjected() and abs(srs.GetLinearUnits() - 1.0) < 1e-9
    web_mercator = "Pseudo-Mercator" in (srs.GetName() or "") or srs.GetAuthorityCode(None) == "3857"
    if projected_metres and not web_mercator and scale_error(ds, srs, gt) <= MAX_SCALE_ERROR:
        return srs
    cx = gt[0] + gt[1] * ds.RasterXSize / 2 + gt[2] * ds.RasterYSize / 2
    cy = gt[3] + gt[4] * ds.RasterXSize / 2 + gt[5] * ds.RasterYSize / 2
    lon, lat = _to_lonlat(srs, cx, cy)
    utm = osr.SpatialReference()
    if lat > 84 or lat < -80:  # UTM stops there: Universal Polar Stereographic
        utm.ImportFromEPSG(32661 if lat > 0 else 32761)
        return utm
    zone = min(60, int((lon + 180) // 6) + 1)
    utm.ImportFromEPSG((32600 if lat >= 0 else 32700) + zone)
    return utm


def _to_lonlat(srs: osr.SpatialReference, x: float, y: float) -> tuple[float, float]:
    """WGS 84 longitude and latitude of a point of ``srs``."""
    wgs84 = osr.SpatialReference()
    wgs84.ImportFromEPSG(4326)
    wgs84.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    srs = srs.Clone()
    srs.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    lon, lat, _ = osr.CoordinateTransformation(srs, wgs84).TransformPoint(x, y)
    return lon, lat


def scale_error(ds: gdal.Dataset, srs: osr.SpatialReference, gt: tuple) -> float:
    """Largest |k - 1| of the projection's scale factor k (CRS metres per ground metre, along x
    and y) at the raster's centre and corners; inf where PROJ cannot tell."""
    geog = srs.CloneGeogCS()
    for s in (srs, geog):
        s.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    to_geog = osr.CoordinateTransformation(srs, geog)
    a, inv_f = srs.GetSemiMajor(), srs.GetInvFlattening()
    e2 = (2 - 1 / inv_f) / inv_f if inv_f else 0.0
    step = 10.0  # metres
    worst = 0.0
    w, h = ds.RasterXSize, ds.RasterYSize
    for px, py in ((w / 2, h / 2), (0, 0), (w, 0), (0, h), (w, h)):
        x, y = gt[0] + gt[1] * px + gt[2] * py, gt[3] + gt[4] * px + gt[5] * py
        try:
            lon0, lat0, _ = to_geog.TransformPoint(x, y)
            for dx, dy in ((step, 0.0), (0.0, step)):
                lon1, lat1, _ = to_geog.TransformPoint(x + dx, y + dy)
                phi = math.radians((lat0 + lat1) / 2)
                sin2 = math.sin(phi) ** 2
                meridian = a * (1 - e2) / (1 - e2 * sin2) ** 1.5
                normal = a / math.sqrt(1 - e2 * sin2)
                ground = math.hypot(normal * math.cos(phi) * math.radians(lon1 - lon0),
                                    meridian * math.radians(lat1 - lat0))
                worst = max(worst, abs(step / ground - 1))
        except (RuntimeError, ZeroDivisionError, ValueError):
            return math.inf
    return worst


_EMPTY = 4  # GDAL_DATA_COVERAGE_STATUS_EMPTY: no DATA bit, not UNIMPLEMENTED
_COVERAGE_BLOCK = 256  # finest source block asked about, in source pixels
_CROP_CELLS = (2048, 256)  # grid pixels per cell of the coverages that crop a canvas to its data


def _empty_blocks(ds: gdal.Dataset, nbands: int, block: int) -> np.ndarray:
    """(ceil(h / block), ceil(w / block)) bool: True where every band reports the block EMPTY.

    A quadtree over the source: a window that is all empty or all data is settled in one query.
    """
    w, h = ds.RasterXSize, ds.RasterYSize
    bands = [ds.GetRasterBand(i) for i in range(1, nbands + 1)]
    empty = np.zeros((-(-h // block), -(-w // block)), bool)

    def visit(bx: int, by: int, nbx: int, nby: int) -> None:
        x, y = bx * block, by * block
        xs, ys = min(nbx * block, w - x), min(nby * block, h - y)
        if xs <= 0 or ys <= 0:
            return
        status = [band.GetDataCoverageStatus(x, y, xs, ys) for band in bands]
        if all(flags == _EMPTY for flags, _ in status):
            empty[by:by + nby, bx:bx + nbx] = True
            return
        if any(flags & 1 for flags, _ in status) or all(pct >= 100.0 for _, pct in status) \
                or (nbx == 1 and nby == 1):
            return  # unknown, full, or finest: may hold data
        hx, hy = max(1, nbx // 2), max(1, nby // 2)
        visit(bx, by, hx, hy)
        if nbx > 1:
            visit(bx + hx, by, nbx - hx, hy)
        if nby > 1:
            visit(bx, by + hy, hx, nby - hy)
        if nbx > 1 and nby > 1:
            visit(bx + hx, by + hy, nbx - hx, nby - hy)

    visit(0, 0, empty.shape[1], empty.shape[0])
    return empty


def _dilate(mask: np.ndarray, steps: int) -> np.ndarray:
    """Grow True by ``steps`` pixels (8-neighbourhood)."""
    for _ in range(steps):
        out = mask.copy()
        out[1:] |= mask[:-1]
        out[:-1] |= mask[1:]
        mask = out.copy()
        mask[:, 1:] |= out[:, :-1]
        mask[:, :-1] |= out[:, 1:]
    return mask


def _coverage(source: gdal.Dataset, nbands: int, grid: Grid, cell: int,
              margin: int) -> Optional[np.ndarray]:
    """See :meth:`RasterSource.coverage`; ``margin`` cells of slack around the data (the
    resampling kernel reaches one source pixel beyond it, and the block map is coarse)."""
    empty = _empty_blocks(source, nbands, _COVERAGE_BLOCK)
    if not empty.any():
        return None
    maybe = (~empty).astype(np.uint8)
    gt = source.GetGeoTransform()
    blocks = gdal.GetDriverByName("MEM").Create("", maybe.shape[1], maybe.shape[0], 1, gdal.GDT_Byte)
    blocks.SetGeoTransform((gt[0], gt[1] * _COVERAGE_BLOCK, gt[2] * _COVERAGE_BLOCK,
                            gt[3], gt[4] * _COVERAGE_BLOCK, gt[5] * _COVERAGE_BLOCK))
    blocks.SetProjection(source.GetProjection())
    blocks.GetRasterBand(1).WriteArray(maybe)
    cols, rows = -(-grid.width // cell), -(-grid.height // cell)
    size = grid.gsd * cell
    cells = gdal.Warp("", blocks, format="MEM", dstSRS=grid.wkt, xRes=size, yRes=size,
                      outputBounds=(grid.x0, grid.y0 - rows * size, grid.x0 + cols * size, grid.y0),
                      resampleAlg="max", warpOptions=["INIT_DEST=0"])
    return _dilate(cells.ReadAsArray() > 0, margin)


def _crop_to_data(grid: Grid, source: gdal.Dataset, nbands: int, multiple_of: int,
                  cell: int) -> Grid:
    """``grid`` cut down to the bounding box of the source's data coverage, in ``cell`` pixel
    steps (whole multiples of ``multiple_of`` pixels, so cells stay aligned): a VRT canvas far
    larger than its data (a few tiles on a continent-sized extent) is read, tiled and written
    only where there is data. Unchanged when GDAL reports no empty area."""
    cell = multiple_of * max(1, cell // multiple_of)
    try:
        cover = _coverage(source, nbands, grid, cell, 1)
    except (RuntimeError, ValueError, AttributeError):
        return grid
    if cover is None or not cover.any():
        return grid
    rows, cols = np.flatnonzero(cover.any(axis=1)), np.flatnonzero(cover.any(axis=0))
    x0, y0 = int(cols[0]) * cell, int(rows[0]) * cell
    width = min((int(cols[-1]) + 1) * cell, grid.width) - x0
    height = min((int(rows[-1]) + 1) * cell, grid.height) - y0
    if (width, height) == (grid.width, grid.height):
        return grid
    return Grid(grid.wkt, grid.x0 + x0 * grid.gsd, grid.y0 - y0 * grid.gsd, grid.gsd,
                _round_up(width, multiple_of), _round_up(height, multiple_of))


def _round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple
