"""Codebooks from centroids and colours fitted elsewhere (``coredino import-codebook``).

A *recipe* says how the features behind the centroids were made, so that ``classify`` makes the
same ones: ``geocentroids`` is the notebook of aliaksandr960/dinov2_geocentroids_southamerica
(DINOv2-with-registers-base behind the Hugging Face processor, 224 px tiles at 0.25 m every
140 px with a 3-patch border, float16 patch tokens, exact inner-product search).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np
import torch

from ..encoders import ModelSpec, build_encoder
from ..encoders.weights import sha256_file
from ..errors import UserError
from .codebook import Codebook, build_recipe

MAX_K = 65535  # ids are UInt16 and 65535 is nodata


@dataclass(frozen=True)
class ImportRecipe:
    """How the imported centroids' features were made (tile and border in output cells)."""

    family: str
    variant: str
    metric: str
    gsd: float
    tile: int
    border: int
    lattice: Optional[str]
    license: str


RECIPES = {
    "geocentroids": ImportRecipe(
        family="dinov2-processor", variant="facebook/dinov2-with-registers-base", metric="ip",
        gsd=0.25, tile=32, border=6, lattice="centred",  # 7 px cells: 224 px tiles, 42 px border
        license="model Apache-2.0 (facebook/dinov2-with-registers-base); centroids and colours MIT "
                "(aliaksandr960/dinov2_geocentroids_southamerica)"),
}


def _load_array(path: str | os.PathLike, what: str) -> np.ndarray:
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{what} file {path} does not exist; pass the .npy file")
    try:
        array = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:
        raise UserError(f"{path}: not a plain .npy array ({str(exc).splitlines()[0]}); pass the "
                        f"{what} saved with numpy.save") from None
    if not isinstance(array, np.ndarray):
        raise UserError(f"{path}: an .npz archive, not one .npy array; pass the {what} .npy file")
    return array


def read_centroids(path: str | os.PathLike, dim: int) -> np.ndarray:
    """(k, dim) float32 centroids from a .npy file, or a one-line UserError saying what is wrong."""
    c = _load_array(path, "centroids")
    if c.ndim != 2 or not 1 <= c.shape[0] <= MAX_K or c.shape[1] != dim:
        raise UserError(f"{path}: centroids are {' x '.join(map(str, c.shape)) or 'a scalar'}, "
                        f"expected k x {dim} (k up to {MAX_K}) for this model's {dim}-d features")
    if not np.issubdtype(c.dtype, np.floating):
        raise UserError(f"{path}: centroids are {c.dtype}, expected floating point")
    if not np.isfinite(c).all():
        raise UserError(f"{path}: centroids hold NaN or infinite values; re-export them")
    return np.ascontiguousarray(c, dtype=np.float32)


def read_colors(path: str | os.PathLike, k: int) -> np.ndarray:
    """(k, 3) uint8 colours from a .npy file, or a one-line UserError saying what is wrong."""
    rgb = _load_array(path, "colours")
    if rgb.shape != (k, 3):
        raise UserError(f"{path}: colours are {' x '.join(map(str, rgb.shape)) or 'a scalar'}, "
                        f"expected {k} x 3 (one RGB per centroid)")
    if not np.issubdtype(rgb.dtype, np.integer) or rgb.min() < 0 or rgb.max() > 255:
        raise UserError(f"{path}: colours must be integers 0-255 (uint8), got {rgb.dtype}")
    return rgb.astype(np.uint8)


def import_codebook(centroids: str, colors: str, recipe: str, output: str,
                    variant: Optional[str] = None) -> Codebook:
    """Write ``output``: the centroids and colours with ``recipe`` and the model's weights hash.

    variant: the model (hub id or local folder) instead of the recipe's hub id; it is loaded to
    record its weights' sha256 and feature size.
    """
    if recipe not in RECIPES:
        raise UserError(f"unknown recipe {recipe!r}; known: {', '.join(RECIPES)}")
    r = RECIPES[recipe]
    out = Path(output).resolve()
    if out in (Path(centroids).resolve(), Path(colors).resolve()):
        raise UserError(f"{output}: would overwrite an input; choose another output path")
    encoder = build_encoder(ModelSpec(r.family, variant or r.variant, "", None), torch.device("cpu"))
    c = read_centroids(centroids, encoder.dim)
    rgb = read_colors(colors, len(c))
    rec = build_recipe(encoder.recipe(), tile=r.tile, border=r.border, gsd=r.gsd, k=len(c), seed=0,
                       n_features=0, sources=[Path(centroids).name, Path(colors).name])
    rec.update(recipe=recipe, lattice=r.lattice, model_license=r.license,
               centroids_sha256=sha256_file(centroids), colors_sha256=sha256_file(colors))
    codebook = Codebook(c, rgb, r.metric, rec)
    codebook.save(output)
    return codebook
