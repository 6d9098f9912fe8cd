"""A PNG to look at: the class map beside (or alone without) its source imagery."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

import numpy as np
from osgeo import gdal

from .atomic import temp_name
from .errors import UserError

gdal.UseExceptions()


def quicklook(classes: str, output: str, source: Optional[str] = None, side: int = 768) -> str:
    """Render ``classes`` (a coredino COG) in its colours; with ``source``, put the source's RGB
    over the same extent on the left. ``side`` is the longest side of each panel in pixels."""
    try:
        ds = gdal.Open(classes)
    except RuntimeError:
        raise UserError(f"{classes}: cannot open; is it a coredino output?") from None
    band = ds.GetRasterBand(1)
    if band.GetColorTable() is None:
        raise UserError(f"{classes}: has no colour table; is it a coredino output?")
    scale = side / max(ds.RasterXSize, ds.RasterYSize)
    width, height = max(1, round(ds.RasterXSize * scale)), max(1, round(ds.RasterYSize * scale))
    rgba = gdal.Translate("", ds, format="MEM", rgbExpand="rgba", width=width, height=height,
                          resampleAlg="nearest").ReadAsArray()
    panels = [_flatten(rgba)]
    if source:
        minx, xres, _, maxy, _, yres = ds.GetGeoTransform()
        bounds = (minx, maxy + yres * ds.RasterYSize, minx + xres * ds.RasterXSize, maxy)
        src = gdal.Warp("", source, format="MEM", dstSRS=ds.GetProjection(), outputBounds=bounds,
                        width=width, height=height, resampleAlg="average", dstAlpha=True)
        pixels = src.ReadAsArray()
        rgb = pixels[[0, 1, 2] if src.RasterCount >= 4 else [0, 0, 0]].astype(np.float32)
        if src.GetRasterBand(1).DataType != gdal.GDT_Byte:
            lo, hi = np.percentile(rgb[:, pixels[-1] > 0], (2, 98))
            rgb = np.clip((rgb - lo) / max(hi - lo, 1e-6) * 255, 0, 255)
        panels.insert(0, _flatten(np.concatenate([rgb.astype(np.uint8), pixels[-1:]])))
    gap = np.full((height, 8, 3), 255, np.uint8)
    image = np.concatenate(sum(([p, gap] for p in panels), [])[:-1], axis=1)
    mem = gdal.GetDriverByName("MEM").Create("", image.shape[1], image.shape[0], 3, gdal.GDT_Byte)
    for i in range(3):
        mem.GetRasterBand(i + 1).WriteArray(image[:, :, i])
    Path(output).parent.mkdir(parents=True, exist_ok=True)
    partial = temp_name(output, ".png")
    try:
        gdal.GetDriverByName("PNG").CreateCopy(str(partial), mem)
        os.replace(partial, output)
    finally:
        partial.unlink(missing_ok=True)
        Path(f"{partial}.aux.xml").unlink(missing_ok=True)
    return output


def _flatten(rgba: np.ndarray) -> np.ndarray:
    """(4, h, w) RGBA over a light grey background -> (h, w, 3)."""
    alpha = rgba[3:4].astype(np.float32) / 255
    rgb = rgba[:3].astype(np.float32) * alpha + 235 * (1 - alpha)
    return rgb.astype(np.uint8).transpose(1, 2, 0)
