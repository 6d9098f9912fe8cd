"""``<output stem>_embeddings.tif``: the patch embeddings of a classification, kept for exploring.

Same grid as the classification (one cell per encoder patch). What a cell holds: its feature
vector scaled to unit length (the codebook's cosine geometry), centred and projected on a PCA
basis (``dims``, 32 by default). ``coredino classify`` uses its codebook's basis
(:mod:`coredino.codebook.basis`, tag ``BASIS=codebook``), so every raster classified with one
codebook shares one space and a classifier or query travels between them; files written before
(or by a writer given no basis) hold a basis fitted on a uniform sample of the raster's own cells
(``BASIS=raster``). ``BASIS_SHA256`` names the basis either way. Stored as Int16 with a per-band scale and offset
(GDAL's band scale/offset: ``value = raw * scale + offset``, exact min/max of every band mapped
to +-32767, so the quantisation step is 1/65534 of the band's range) and nodata -32768; a tiled,
pixel-interleaved DEFLATE GeoTIFF (one block holds whole vectors). The mean and the components
are in the ``COREDINO_PCA`` metadata domain (base64 float32), so ``mean + z @ components``
reconstructs the unit feature and nothing ever re-runs the encoder.

Writing streams like the class map: unit features go to a float16 scratch file on disk while
tiles are encoded (memory stays bounded), a reservoir keeps the PCA sample; at the end the
scratch is projected window by window into the final file, which is renamed into place.
"""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path
from typing import Optional

import numpy as np
import torch
import torch.nn.functional as F
from osgeo import gdal

from ..atomic import temp_name
from ..codebook import Reservoir
from ..codebook.basis import basis_id
from ..errors import UserError
from ..progress import Progress
from .rasters import open_dataset, same_grid

FORMAT = "coredino-embeddings/1"
DOMAIN = "COREDINO_PCA"
NODATA = -32768
DEFAULT_DIMS = 32
SAMPLE = 20000  # cells the PCA is fitted on
_CHUNK = 1 << 23  # scratch values per projection step (32 MB as float32)


def embeddings_path(classes_path: str) -> str:
    """Where ``coredino classify --embeddings`` writes the embeddings of ``classes_path``."""
    path = Path(classes_path)
    return str(path.with_name(f"{path.stem}_embeddings.tif"))


def _b64(array: np.ndarray) -> str:
    return base64.b64encode(np.ascontiguousarray(array, "<f4").tobytes()).decode("ascii")


def _unb64(text: str, shape: tuple) -> np.ndarray:
    return np.frombuffer(base64.b64decode(text), "<f4").reshape(shape).astype(np.float32)


def fit_pca(sample: np.ndarray, dims: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(mean (D,), components (dims, D) orthonormal rows, explained variance ratio (dims,)).

    Signs are fixed (largest loading positive) so the same sample gives the same file.
    """
    d = sample.shape[1]
    if len(sample) == 0:
        return np.zeros(d, np.float32), np.eye(d, dtype=np.float32)[:dims], np.zeros(dims, np.float32)
    mean = sample.mean(0, dtype=np.float64)
    centred = sample - mean.astype(np.float32)
    variance, vectors = np.linalg.eigh((centred.T @ centred).astype(np.float64))  # D x D: small
    order = np.argsort(variance)[::-1][:dims]
    components = vectors[:, order].T
    signs = np.sign(components[np.arange(len(order)), np.abs(components).argmax(1)])
    components *= np.where(signs == 0, 1, signs)[:, None]
    explained = np.clip(variance[order], 0, None) / max(np.clip(variance, 0, None).sum(), 1e-30)
    return mean.astype(np.float32), components.astype(np.float32), explained.astype(np.float32)


class EmbeddingWriter:
    """Collects unit features cell by cell; :meth:`finish` projects them into ``path``.

    Use as a context manager: leaving it on an error removes every temporary file, and the
    published file too (so a classification that fails after this finished leaves nothing).
    """

    def __init__(self, path: str, grid, dim: int, tags: dict[str, str], dims: int = DEFAULT_DIMS,
                 sample: int = SAMPLE, seed: int = 0,
                 basis: Optional[tuple[np.ndarray, np.ndarray]] = None):
        self.path = Path(path)
        self.width, self.height, self.dim = grid.width, grid.height, dim
        self.grid = grid
        self.basis = basis
        self.dims = min(dims, dim) if basis is None else len(basis[1])
        self.tags = dict(tags)
        self.reservoir = Reservoir(sample, dim, seed)
        self._scratch = temp_name(self.path, ".features.f16")
        self._valid_path = temp_name(self.path, ".valid.u8")
        self._partial = temp_name(self.path, ".partial.tif")
        self._published = False
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.features = np.memmap(self._scratch, np.float16, "w+", shape=(self.height, self.width, dim))
            self.valid = np.memmap(self._valid_path, np.uint8, "w+", shape=(self.height, self.width))
        except OSError as exc:
            self._cleanup()
            raise UserError(f"{self.path}: cannot write there ({exc.strerror}); choose another "
                            f"output folder") from None
        except BaseException:  # a signal (SIGTERM): leave nothing behind
            self._cleanup()
            raise

    def __enter__(self) -> "EmbeddingWriter":
        return self

    def __exit__(self, exc_type, *_) -> None:
        self._cleanup()
        if exc_type is not None and self._published:
            self.path.unlink(missing_ok=True)

    def _cleanup(self) -> None:
        self.features = self.valid = None
        for path in (self._scratch, self._valid_path, self._partial):
            path.unlink(missing_ok=True)

    def add(self, tiles, features: torch.Tensor, keep: np.ndarray) -> None:
        """Features (m, D) of the cells ``keep`` (n, tile, tile) marks in ``tiles``, in C order."""
        if not len(features):
            return
        unit = F.normalize(features.float(), dim=1).cpu().numpy()
        i, r, c = np.nonzero(keep)
        rows = np.array([t.y for t in tiles])[i] + r
        cols = np.array([t.x for t in tiles])[i] + c
        self.features[rows, cols] = unit
        self.valid[rows, cols] = 1
        self.reservoir.add(unit)

    def finish(self, progress: Optional[Progress] = None) -> str:
        """Fit the PCA, write the Int16 file, rename it into place; returns its path."""
        progress = progress or Progress()
        if self.basis is None:
            mean, components, explained = fit_pca(self.reservoir.sample(), self.dims)
        else:
            mean, components = self.basis
            explained = _explained(self.reservoir.sample(), mean, components)
        rows = max(1, min(self.height, _CHUNK // max(1, self.width * self.dim)))
        rows = rows - rows % 256 if rows >= 256 else rows  # whole blocks of the output when possible
        lo = np.full(self.dims, np.inf)
        hi = np.full(self.dims, -np.inf)
        for y in range(0, self.height, rows):  # pass 1: exact range of every component
            z, valid = self._project(y, rows, mean, components)
            if valid.any():
                lo = np.minimum(lo, z[valid].min(0))
                hi = np.maximum(hi, z[valid].max(0))
            progress.update(0.3 * (y + rows) / self.height, "embeddings: PCA range")
        lo, hi = np.where(np.isfinite(lo), lo, 0.0), np.where(np.isfinite(hi), hi, 0.0)
        offset = (hi + lo) / 2
        scale = np.where(hi > lo, (hi - lo) / 65534.0, 1.0)
        ds = self._create(mean, components, explained, scale, offset)
        for y in range(0, self.height, rows):  # pass 2: quantise and write
            z, valid = self._project(y, rows, mean, components)
            raw = np.clip(np.rint((z - offset) / scale), -32767, 32767).astype(np.int16)
            raw[~valid] = NODATA
            ds.WriteArray(np.ascontiguousarray(raw.transpose(2, 0, 1)), 0, y)
            progress.update(0.3 + 0.7 * (y + rows) / self.height, "embeddings: writing")
        ds = None
        os.replace(self._partial, self.path)
        self._published = True
        return str(self.path)

    def _project(self, y: int, rows: int, mean: np.ndarray, components: np.ndarray):
        f = np.asarray(self.features[y:y + rows], np.float32)
        z = (f - mean) @ components.T
        return z, np.asarray(self.valid[y:y + rows]).astype(bool)

    def _create(self, mean, components, explained, scale, offset) -> gdal.Dataset:
        try:
            ds = gdal.GetDriverByName("GTiff").Create(
                str(self._partial), self.width, self.height, self.dims, gdal.GDT_Int16,
                ["TILED=YES", "BLOCKXSIZE=256", "BLOCKYSIZE=256", "INTERLEAVE=PIXEL", "COMPRESS=DEFLATE",
                 "PREDICTOR=2", "BIGTIFF=IF_SAFER"])
        except RuntimeError as exc:
            raise UserError(f"{self.path}: cannot write there ({(str(exc).splitlines() or [''])[0]}); "
                            f"choose another output folder") from None
        ds.SetGeoTransform(self.grid.geotransform)
        ds.SetProjection(self.grid.wkt)
        for b in range(self.dims):
            band = ds.GetRasterBand(b + 1)
            band.SetNoDataValue(NODATA)
            band.SetScale(float(scale[b]))
            band.SetOffset(float(offset[b]))
            band.SetDescription(f"pc{b + 1}")
        ds.SetMetadata({**self.tags, "COREDINO_EMBEDDINGS": FORMAT, "EMBEDDING_DIMS": str(self.dims),
                        "FEATURE_DIM": str(self.dim), "FEATURES": "unit length, centred, PCA",
                        "PCA_SAMPLE": str(len(self.reservoir.sample())),
                        "BASIS": "raster" if self.basis is None else "codebook",
                        "BASIS_SHA256": basis_id(mean, components),
                        "PCA_EXPLAINED_VARIANCE": f"{float(explained.sum()):.4f}"})
        ds.SetMetadata({"MEAN": _b64(mean), "COMPONENTS": _b64(components),
                        "EXPLAINED": json.dumps([round(float(e), 6) for e in explained])}, DOMAIN)
        return ds


def _explained(sample: np.ndarray, mean: np.ndarray, components: np.ndarray) -> np.ndarray:
    """Share of the sample's variance along each of the given (orthonormal) components."""
    if len(sample) == 0:
        return np.zeros(len(components), np.float32)
    centred = sample - sample.mean(0)
    total = max(float((centred ** 2).sum()), 1e-30)
    return (((centred @ components.T) ** 2).sum(0) / total).astype(np.float32)


class EmbeddingFile:
    """An embeddings file opened for reading (see the module docstring for what it holds)."""

    def __init__(self, path: str):
        self.path = str(path)
        self.ds = open_dataset(self.path, "a coredino embeddings file (<classes>_embeddings.tif)")
        tags = self.ds.GetMetadata()
        if tags.get("COREDINO_EMBEDDINGS") != FORMAT:
            raise UserError(f"{path}: not a coredino embeddings file (classify with --embeddings to "
                            f"write <output>_embeddings.tif)")
        self.tags = tags
        self.dims, self.feature_dim = int(tags["EMBEDDING_DIMS"]), int(tags["FEATURE_DIM"])
        pca = self.ds.GetMetadata(DOMAIN)
        try:
            self.mean = _unb64(pca["MEAN"], (self.feature_dim,))
            self.components = _unb64(pca["COMPONENTS"], (self.dims, self.feature_dim))
        except (KeyError, ValueError) as exc:
            raise UserError(f"{path}: its PCA basis is missing or corrupt ({exc}); classify again "
                            f"with --embeddings") from None
        self.basis_id = tags.get("BASIS_SHA256") or basis_id(self.mean, self.components)
        bands = [self.ds.GetRasterBand(b + 1) for b in range(self.dims)]
        self.scale = np.array([band.GetScale() or 1.0 for band in bands], np.float32)
        self.offset = np.array([band.GetOffset() or 0.0 for band in bands], np.float32)

    @property
    def width(self) -> int:
        return self.ds.RasterXSize

    @property
    def height(self) -> int:
        return self.ds.RasterYSize

    def read(self, x: int, y: int, w: int, h: int) -> tuple[np.ndarray, np.ndarray]:
        """(z (h, w, dims) float32, valid (h, w) bool) of a window."""
        raw = self.ds.ReadAsArray(x, y, w, h).reshape(self.dims, h, w)
        valid = raw[0] != NODATA
        z = raw.transpose(1, 2, 0).astype(np.float32) * self.scale + self.offset
        return z, valid

    def reconstruct(self, z: np.ndarray) -> np.ndarray:
        """The unit features (..., D) that ``z`` (..., dims) approximates."""
        return self.mean + z @ self.components

    def close(self) -> None:
        self.ds = None


def resolve(path: str) -> EmbeddingFile:
    """The embeddings file itself, or the one beside a classification (same grid and codebook)."""
    ds = open_dataset(path, "a coredino embeddings file or classification")
    tags = ds.GetMetadata()
    if tags.get("COREDINO_EMBEDDINGS") == FORMAT:
        return EmbeddingFile(path)
    if "CODEBOOK_SHA256" not in tags:
        raise UserError(f"{path}: neither a coredino embeddings file nor a coredino classification")
    if "COREDINO_SIMILARITY" in tags:
        raise UserError(f"{path} is a similarity map; give the classification ({tags.get('EMBEDDINGS', '')} "
                        f"lies beside it)")
    if "CLASS_NAMES" in tags:
        raise UserError(f"{path} is a named-class map; give the classification it was made from "
                        f"({tags.get('CLUSTERS', 'the cluster map')}) or its _embeddings.tif")
    beside = embeddings_path(path)
    if not os.path.isfile(beside):
        raise UserError(f"{path}: no embeddings beside it ({Path(beside).name}); classify again with "
                        f"--embeddings (or 'Keep embeddings' in QGIS)")
    embeddings = EmbeddingFile(beside)
    if not same_grid(ds, embeddings.ds) or embeddings.tags.get("CODEBOOK_SHA256") != tags["CODEBOOK_SHA256"]:
        raise UserError(f"{beside} does not match {path} (different grid or codebook: the "
                        f"classification was redone without --embeddings); classify again with --embeddings")
    return embeddings
