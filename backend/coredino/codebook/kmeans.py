"""K-means over every feature with faiss, one Lloyd iteration per call so progress and cancel work."""

from __future__ import annotations

from typing import Optional

import faiss
import numpy as np

from ..device import pick_device
from ..errors import UserError
from ..progress import Progress


def _on_cuda(device: str) -> bool:
    return device != "cpu" and pick_device(device).type == "cuda"


def normalise_rows(x: np.ndarray) -> np.ndarray:
    """Unit-L2 rows as a new float32 array; all-zero rows stay zero."""
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(norms, np.float32(1e-12))


def fit_kmeans(x: np.ndarray, k: int, metric: str, seed: int, niter: int = 20,
               progress: Optional[Progress] = None, device: str = "auto") -> np.ndarray:
    """Cluster the rows of ``x`` (n, d) into ``k`` float32 centroids.

    ``cosine``: rows are L2-normalised (in a copy) and faiss runs spherical k-means, so the
    centroids are unit-norm. ``l2``: plain k-means. Every row is used (faiss would otherwise
    subsample to 256 rows per centroid), initial centroids are ``k`` rows drawn with ``seed``,
    and the same input and seed give identical centroids.

    On a CUDA device (``device`` auto or cuda) the fit runs in torch on the GPU instead
    (:func:`~coredino.codebook.torch_kmeans.torch_kmeans`: k-means|| initialisation, bfloat16
    matmuls with float32 accumulation); faiss is the CPU path.
    """
    if x.ndim != 2:
        raise ValueError(f"features must be (n, d), got {x.shape}")
    n, d = x.shape
    if k < 1 or k > n:
        raise UserError(f"cannot fit {k} clusters to {n} features: "
                        f"use a smaller --k (at most {n}) or more rasters")
    if not np.isfinite(x).all():
        raise UserError("the features contain NaN or infinite values: check the rasters' nodata "
                        "and the encoder weights")
    if _on_cuda(device):
        from .torch_kmeans import torch_kmeans
        return torch_kmeans(x, k, metric, seed, niter, device=pick_device(device), progress=progress)
    x = normalise_rows(x) if metric == "cosine" else np.ascontiguousarray(x, dtype=np.float32)
    params = dict(
        niter=1, seed=seed, spherical=metric == "cosine", verbose=False,
        max_points_per_centroid=-(-n // k),  # ceil(n / k): k * this >= n, so nothing is dropped
        min_points_per_centroid=1,  # few points per centroid is allowed: no faiss warning
    )
    centroids = None
    for i in range(niter):
        if progress is not None:
            progress.update(i / niter, f"k-means iteration {i + 1}/{niter}")
        # faiss draws the initial centroids only when none are given; the later single
        # iterations are identical to one faiss call with niter iterations (see tests).
        km = faiss.Kmeans(d, k, **params)
        km.train(x, init_centroids=centroids)
        centroids = km.centroids
    if progress is not None:
        progress.update(1.0, "k-means done")
    return np.ascontiguousarray(centroids, dtype=np.float32)
