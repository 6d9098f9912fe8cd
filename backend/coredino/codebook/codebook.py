"""A codebook is one file: centroids, their colours, the metric and the feature recipe."""

from __future__ import annotations

import datetime
import json
import math
import os
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np

from coredino_contract.params import METRICS as FIT_METRICS, model_id

from .. import __version__
from ..atomic import atomic_open
from ..encoders.weights import sha256_file
from ..errors import UserError
from .basis import basis_id, fit_basis
from .hierarchy import merge_tree

FORMAT = "coredino-codebook/1"
METRICS = FIT_METRICS + ("ip",)  # ip: inner product with the centroids as stored (imported ones)
# What a running encoder must agree on with the codebook's encoder.
MATCH_KEYS = ("family", "variant", "layer", "dim", "normalisation", "weights_sha256")
ENCODER_KEYS = MATCH_KEYS + ("patch", "weights_uri")
RECIPE_KEYS = ENCODER_KEYS + (
    "tile", "border", "gsd", "k", "seed", "n_features", "sources", "coredino_version", "created",
)
OPTIONAL_ARRAYS = ("tree_merges", "basis_mean", "basis_components")  # absent in files before 0.2
_TREES: dict[str, np.ndarray] = {}  # trees computed for files without one, by file sha256 (3 s at k=6000)
FIX = "pass --model/--weights matching the codebook, or fit a new one with `coredino fit-codebook`"
# Sane ranges of the recipe's numbers: outside them a codebook would allocate terabytes, plan a
# job of days, or divide by zero. (inclusive bounds)
GSD_RANGE = (0.01, 1000.0)  # metres per pixel: 1 cm (close-range drone) to 1 km
PATCH_RANGE = (1, 64)  # pixels per cell
TILE_RANGE = (2, 256)  # cells per tile side
MAX_TILE_PX = 8192  # tile * patch: one tile's side in pixels


def build_recipe(encoder_recipe: dict, *, tile: int, border: int, gsd: Optional[float], k: int,
                 seed: int, n_features: int, sources: list[str]) -> dict:
    """The recipe stored in a codebook: the encoder's ``recipe()`` plus tiling and fit details."""
    recipe = {key: encoder_recipe[key] for key in ENCODER_KEYS}
    recipe.update(tile=tile, border=border, gsd=gsd, k=k, seed=seed, n_features=n_features,
                  sources=[str(s) for s in sources], coredino_version=__version__,
                  created=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"))
    return recipe


def _encoder_id(recipe: dict) -> str:
    sha = str(recipe.get("weights_sha256") or "none")[:12]
    return (f"{model_id(recipe.get('family'), recipe.get('variant'), recipe.get('layer'))} (weights sha256 {sha}, "
            f"dim {recipe.get('dim')}, normalisation {recipe.get('normalisation')})")


def validate_recipe(recipe: dict) -> None:
    """Raise ValueError naming the first recipe field out of its range (see the ranges above)."""
    def integer(name: str, lo: int, hi: int) -> int:
        value = recipe[name]
        if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
            raise ValueError(f"recipe field {name} is {value!r}; expected a whole number from {lo} to {hi}")
        return value

    gsd = recipe["gsd"]
    if isinstance(gsd, bool) or not isinstance(gsd, (int, float)) or not math.isfinite(gsd) \
            or not GSD_RANGE[0] <= gsd <= GSD_RANGE[1]:
        raise ValueError(f"recipe field gsd is {gsd!r}; expected metres per pixel from {GSD_RANGE[0]} "
                         f"to {GSD_RANGE[1]}")
    patch = integer("patch", *PATCH_RANGE)
    tile = integer("tile", TILE_RANGE[0], min(TILE_RANGE[1], MAX_TILE_PX // patch))
    integer("border", 0, (tile - 1) // 2)
    integer("k", 1, 65535)
    integer("dim", 1, 1 << 16)
    integer("seed", -(1 << 63), (1 << 63) - 1)
    integer("n_features", 0, 1 << 62)
    if recipe["layer"] is not None:
        integer("layer", 0, 1000)
    for name in ("family", "variant", "normalisation", "weights_uri", "weights_sha256"):
        if not isinstance(recipe[name], str):
            raise ValueError(f"recipe field {name} is {recipe[name]!r}; expected text")
    if not isinstance(recipe["sources"], list):
        raise ValueError(f"recipe field sources is {recipe['sources']!r}; expected a list of file names")


@dataclass(eq=False)
class Codebook:
    """K centroids of patch embeddings, an RGB colour per centroid, and how the features were made."""

    centroids: np.ndarray  # (k, d) float32
    colors: np.ndarray  # (k, 3) uint8
    metric: str  # "cosine" or "l2"
    recipe: dict
    path: Optional[Path] = field(default=None, repr=False)
    tree_merges: Optional[np.ndarray] = field(default=None, repr=False)  # hierarchy.merge_tree
    basis_mean: Optional[np.ndarray] = field(default=None, repr=False)  # basis.fit_basis
    basis_components: Optional[np.ndarray] = field(default=None, repr=False)
    _sha256: Optional[str] = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        self.centroids = np.ascontiguousarray(self.centroids, dtype=np.float32)
        self.colors = np.ascontiguousarray(self.colors, dtype=np.uint8)
        if not isinstance(self.recipe, dict):
            raise ValueError(f"recipe must be a dict, got {type(self.recipe).__name__}")
        if self.centroids.ndim != 2 or self.centroids.shape[0] == 0:
            raise ValueError(f"centroids must be a non-empty (k, d) array, got {self.centroids.shape}")
        if self.colors.shape != (self.k, 3):
            raise ValueError(f"colors must be ({self.k}, 3), got {self.colors.shape}")
        if self.metric not in METRICS:
            raise ValueError(f"metric must be one of {METRICS}, got {self.metric!r}")
        missing = [key for key in RECIPE_KEYS if key not in self.recipe]
        if missing:
            raise ValueError(f"recipe lacks {', '.join(missing)}")
        if self.tree_merges is not None:
            self.tree_merges = np.asarray(self.tree_merges, np.int32)
            if self.tree_merges.shape != (self.k - 1, 2) or (self.k > 1 and (
                    self.tree_merges.min() < 0 or self.tree_merges.max() >= 2 * self.k - 2)):
                raise ValueError(f"tree_merges must be ({self.k - 1}, 2) node ids below {2 * self.k - 1}")
        if (self.basis_mean is None) != (self.basis_components is None):
            raise ValueError("basis_mean and basis_components go together")
        if self.basis_mean is not None and (self.basis_mean.shape != (self.dim,) or np.ndim(
                self.basis_components) != 2 or np.shape(self.basis_components)[1] != self.dim):
            raise ValueError(f"basis must be a ({self.dim},) mean and (dims, {self.dim}) components")
        if (self.recipe["k"], self.recipe["dim"]) != self.centroids.shape:
            raise ValueError(f"recipe says k={self.recipe['k']}, dim={self.recipe['dim']} but "
                             f"centroids are {self.centroids.shape[0]} x {self.centroids.shape[1]}")
        if not np.isfinite(self.centroids).all():
            bad = int((~np.isfinite(self.centroids).all(axis=1)).sum())
            raise ValueError(f"centroids: {bad} of {self.k} hold NaN or inf")
        if self.metric == "cosine" and (np.linalg.norm(self.centroids, axis=1) == 0).any():
            raise ValueError("centroids: a zero vector has no direction (metric cosine)")
        validate_recipe(self.recipe)

    @property
    def k(self) -> int:
        return int(self.centroids.shape[0])

    @property
    def dim(self) -> int:
        return int(self.centroids.shape[1])

    @property
    def merges(self) -> np.ndarray:
        """The merge tree of the centroids (:mod:`.hierarchy`); computed when the file has none."""
        if self.tree_merges is None:
            key = self.sha256
            if key is None or key not in _TREES:
                tree = merge_tree(self.centroids, self.metric)
                if key is None:
                    return tree
                _TREES[key] = tree
            self.tree_merges = _TREES[key]
        return self.tree_merges

    @property
    def basis(self) -> tuple[np.ndarray, np.ndarray]:
        """(mean, components) of the embedding basis (:mod:`.basis`); computed when the file has none."""
        if self.basis_mean is None or self.basis_components is None:
            self.basis_mean, self.basis_components = fit_basis(self.centroids, self.metric)
        return self.basis_mean, self.basis_components

    @property
    def basis_id(self) -> str:
        return basis_id(*self.basis)

    @property
    def identities(self) -> set[str]:
        """SHA-256s naming this codebook: the file's, and the file's before `coredino codebook upgrade`."""
        return {s for s in (self.sha256, *self.recipe.get("sha256_before_upgrade", [])) if s}

    def is_complete(self) -> bool:
        """True when the file holds the merge tree and the embedding basis."""
        return all(getattr(self, name) is not None for name in OPTIONAL_ARRAYS)

    @property
    def sha256(self) -> Optional[str]:
        """SHA-256 of the file this codebook was loaded from or saved to (None if neither)."""
        if self._sha256 is None and self.path is not None:
            self._sha256 = sha256_file(self.path)
        return self._sha256

    def save(self, path: str | os.PathLike) -> None:
        """Write one compressed ``.npz``; a temporary file in the same folder is renamed when complete."""
        path = Path(path)
        with atomic_open(path) as f:
            np.savez_compressed(
                f, format=np.array(FORMAT), centroids=self.centroids, colors=self.colors,
                metric=np.array(self.metric), recipe=np.array(json.dumps(self.recipe)),
                tree_merges=self.merges, basis_mean=self.basis[0], basis_components=self.basis[1])
        self.path, self._sha256 = path, None

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Codebook":
        """Read a codebook written by :meth:`save`; any problem is a one-line :class:`UserError`."""
        path = Path(path)
        refit = "fit one with `coredino fit-codebook` or pass the right --codebook"
        if not path.is_file():
            raise UserError(f"codebook {path} does not exist: {refit}")
        try:
            npz = np.load(path, allow_pickle=False)
            if not isinstance(npz, np.lib.npyio.NpzFile):
                raise ValueError("not an .npz archive")
            with npz:
                if "format" not in npz.files or str(npz["format"]) != FORMAT:
                    raise ValueError("no coredino codebook format marker")
                arrays = {name: npz[name] for name in ("centroids", "colors", "metric", "recipe")}
                extra = {name: npz[name] for name in OPTIONAL_ARRAYS if name in npz.files}
            recipe = json.loads(str(arrays["recipe"]))
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile, zlib.error) as exc:
            raise UserError(f"{path} is not a coredino codebook or is corrupt ({exc}): {refit}") from None
        try:
            return cls(arrays["centroids"], arrays["colors"], str(arrays["metric"]), recipe, path=path,
                       **extra)
        except ValueError as exc:
            raise UserError(f"codebook {path} is inconsistent ({exc}): {refit}") from None

    def check_matches(self, encoder_recipe: dict) -> None:
        """Raise :class:`UserError` unless the running encoder makes the features this codebook needs."""
        diffs = [f"{key} {self.recipe.get(key)!r} vs {encoder_recipe.get(key)!r}"
                 for key in MATCH_KEYS if self.recipe.get(key) != encoder_recipe.get(key)]
        if diffs:
            name = self.path if self.path is not None else "in memory"
            raise UserError(
                f"codebook {name} was fitted with {_encoder_id(self.recipe)} but the running encoder "
                f"is {_encoder_id(encoder_recipe)} (differs in {'; '.join(diffs)}): {FIX}")

    def summary(self) -> dict:
        """What `coredino info` shows about this codebook."""
        r = self.recipe
        return {
            "path": str(self.path) if self.path is not None else None,
            "sha256": self.sha256,
            "k": self.k,
            "dim": self.dim,
            "metric": self.metric,
            "encoder": _encoder_id(r),
            "weights_uri": r["weights_uri"],
            "patch": r["patch"],
            "tile": r["tile"],
            "border": r["border"],
            "gsd": r["gsd"],
            "seed": r["seed"],
            "n_features": r["n_features"],
            "sources": len(r["sources"]),
            "created": r["created"],
            "coredino_version": r["coredino_version"],
        }


def upgrade(path: str | os.PathLike) -> tuple[Codebook, bool]:
    """Add the merge tree and the embedding basis to a codebook file that lacks them, atomically.

    Returns (codebook, changed). The file's SHA-256 changes; the old one is kept in the recipe's
    ``sha256_before_upgrade`` so maps classified before still find their codebook (``identities``).
    """
    codebook = Codebook.load(path)
    if codebook.is_complete():
        return codebook, False
    before = codebook.sha256
    codebook.recipe = {**codebook.recipe,
                       "sha256_before_upgrade": [*codebook.recipe.get("sha256_before_upgrade", []), before]}
    codebook.save(path)
    return codebook, True
