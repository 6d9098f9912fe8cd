"""A codebook's embedding basis: the space every embeddings file of that codebook is written in.

The principal components of the codebook's centroids (unit-normalised for the cosine metric)
and their mean. The centroids summarise the features the codebook was fitted on, so the basis
serves every raster classified with it, and a classifier or a query made on one raster's
embeddings is valid on another's. Deterministic: the same centroids always give the same basis
(signs fixed by the largest loading), so a codebook without a stored basis gets the same one
computed on load. Its id is the SHA-256 of its float32 bytes (``basis_id``), stored in the
embeddings files and in saved classifiers to refuse mismatches.
"""

from __future__ import annotations

import hashlib

import numpy as np

from .kmeans import normalise_rows

DIMS = 32


def fit_basis(centroids: np.ndarray, metric: str, dims: int = DIMS) -> tuple[np.ndarray, np.ndarray]:
    """(mean (D,), components (min(dims, D), D) orthonormal rows) of the centroids."""
    x = normalise_rows(centroids) if metric == "cosine" else np.asarray(centroids, np.float32)
    mean = x.mean(0, dtype=np.float64)
    centred = (x - mean).astype(np.float64)
    variance, vectors = np.linalg.eigh(centred.T @ centred)
    order = np.argsort(variance)[::-1][:min(dims, x.shape[1])]
    components = vectors[:, order].T
    signs = np.sign(components[np.arange(len(order)), np.abs(components).argmax(1)])
    components *= np.where(signs == 0, 1, signs)[:, None]
    return mean.astype(np.float32), np.ascontiguousarray(components, np.float32)


def basis_id(mean: np.ndarray, components: np.ndarray) -> str:
    """SHA-256 of the basis (its float32 little-endian bytes)."""
    h = hashlib.sha256()
    for a in (mean, components):
        h.update(np.ascontiguousarray(a, "<f4").tobytes())
    return h.hexdigest()
