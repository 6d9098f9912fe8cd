"""Labelled rasters (RGB image + class mask) read on one metric grid through the engine's raster code."""

from __future__ import annotations

import glob
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
from osgeo import gdal

from ..errors import UserError
from ..raster import open_raster_source

IGNORE = 255  # mask nodata (no imagery), also used for pixels outside the image
MASK_SUFFIXES = ("_buildings_mask.tif", "_buildings.tif", "_mask.tif")
DEFAULT_PATTERN = "*_0p30m_image.tif"
DUBAI_CLASSES = ("water", "land (unpaved)", "road", "building", "vegetation")  # mask index 1..5
DUBAI_CROP = 384  # px: one centre crop per part keeps the CPU cost small


@dataclass(frozen=True)
class Pair:
    scene: str
    image: str
    mask: str

    @property
    def name(self) -> str:
        return Path(self.image).stem


def scene_of(path: str) -> str:
    """``kampala_uganda_patch1_0p30m_image.tif`` -> ``kampala_uganda``; ``kampala_0p30m_x.tif`` -> ``kampala``."""
    stem = Path(path).stem
    for marker in ("_patch", "_0p", "_image"):
        if marker in stem:
            return stem.split(marker)[0]
    return stem


def mask_for(image: str) -> Optional[str]:
    """The mask file beside ``image`` (``X_image.tif`` -> ``X_buildings_mask.tif``, ``X.tif`` ->
    ``X_buildings.tif`` or ``X_mask.tif``), or None."""
    p = Path(image)
    stems = [p.stem[: -len("_image")]] if p.stem.endswith("_image") else []
    stems.append(p.stem)
    for stem in stems:
        for suffix in MASK_SUFFIXES:
            candidate = p.with_name(stem + suffix)
            if candidate.is_file() and candidate != p:
                return str(candidate)
    return None


def find_pairs(data: str | Sequence[str], pattern: str = DEFAULT_PATTERN) -> list[Pair]:
    """(image, mask) pairs in a folder (images matching ``pattern``, else any raster with a mask
    beside it) or from a list of image files."""
    if isinstance(data, (str, os.PathLike)) and os.path.isdir(data):
        images = sorted(glob.glob(os.path.join(data, pattern)))
        if not images:
            images = sorted(f for f in glob.glob(os.path.join(data, "*.tif"))
                            if not any(f.endswith(s) for s in MASK_SUFFIXES))
    else:
        images = [data] if isinstance(data, (str, os.PathLike)) else list(data)
    pairs = []
    for image in images:
        mask = mask_for(str(image))
        if mask is not None:
            pairs.append(Pair(scene_of(str(image)), str(image), mask))
    if not pairs:
        raise UserError(f"{data}: no image with a mask beside it (expected X_image.tif + "
                        f"X_buildings_mask.tif, or X.tif + X_buildings.tif)")
    return pairs


@dataclass
class Labelled:
    pair: Pair
    rgb: np.ndarray  # (3, H, W) float32 in [0, 1], H and W multiples of 32
    label: np.ndarray  # (H, W) uint8 class ids, IGNORE where unknown


def dubai_pairs(folder: str) -> list[Pair]:
    """``dubai_tile<t>_part<nnn>_image.jpg`` + ``_mask_index.png``; the scene is the tile."""
    images = sorted(glob.glob(os.path.join(folder, "dubai_tile*_part*_image.jpg")))
    pairs = [Pair(Path(i).stem.split("_part")[0], i, i.replace("_image.jpg", "_mask_index.png"))
             for i in images]
    pairs = [p for p in pairs if os.path.isfile(p.mask)]
    if not pairs:
        raise UserError(f"{folder}: no dubai_tile<t>_part<nnn>_image.jpg with its _mask_index.png")
    return pairs


def load_dubai(pair: Pair, crop: int = DUBAI_CROP) -> Labelled:
    """The centre ``crop`` x ``crop`` px of a Dubai part (native pixels: not georeferenced) and its
    classes 0-4 (water, land, road, building, vegetation); unlabelled (mask 0) is IGNORE."""
    from PIL import Image

    with Image.open(pair.image) as im:
        rgb = np.asarray(im.convert("RGB"), dtype=np.float32) / 255.0
    with Image.open(pair.mask) as im:
        mask = np.asarray(im, dtype=np.uint8)
    if rgb.shape[:2] != mask.shape:
        raise UserError(f"{pair.mask}: {mask.shape} does not match {pair.image} {rgb.shape[:2]}")
    side = min(crop, *(s // 32 * 32 for s in mask.shape))
    y, x = (mask.shape[0] - side) // 2, (mask.shape[1] - side) // 2
    rgb, mask = rgb[y:y + side, x:x + side], mask[y:y + side, x:x + side]
    label = np.where((mask >= 1) & (mask <= len(DUBAI_CLASSES)), mask.astype(np.int16) - 1, IGNORE)
    return Labelled(pair, np.ascontiguousarray(rgb.transpose(2, 0, 1)), label.astype(np.uint8))


def load(pair: Pair, gsd: float) -> Labelled:
    """Image resampled to ``gsd`` on the engine's metric grid and its mask warped onto the same
    grid (nearest neighbour; nodata and invalid image pixels become IGNORE)."""
    raster = open_raster_source(pair.image, gsd, pad_to=32, multiple_of=32)
    try:
        g = raster.grid
        rgb, valid = raster.read(0, 0, g.width, g.height)
    finally:
        raster.close()
    src = gdal.Open(pair.mask)
    nodata = src.GetRasterBand(1).GetNoDataValue()
    warped = gdal.Warp("", src, format="MEM", dstSRS=g.wkt, xRes=gsd, yRes=gsd,
                       outputBounds=(g.x0, g.y0 - g.height * gsd, g.x0 + g.width * gsd, g.y0),
                       resampleAlg="near", srcNodata=IGNORE if nodata is None else nodata,
                       dstNodata=IGNORE, outputType=gdal.GDT_Byte)
    label = warped.ReadAsArray().astype(np.uint8)
    warped = src = None
    label[~valid] = IGNORE
    return Labelled(pair, rgb, label)
