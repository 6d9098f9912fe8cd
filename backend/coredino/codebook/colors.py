"""Colours for centroids: a 3-D t-SNE of the centroids scaled to RGB, so similar clusters look alike."""

from __future__ import annotations

import numpy as np
from sklearn.decomposition import PCA
from sklearn.manifold import TSNE
from threadpoolctl import threadpool_limits

from .kmeans import normalise_rows

PCA_DIMS = 50  # t-SNE's neighbour search on 50 PCA dims instead of d: faster, same picture
MIN_TSNE_K = 5  # below this t-SNE is meaningless: PCA straight to 3-D
# Large codebooks trade t-SNE precision for time. 6000 x 768 on one core: 1000 iterations at
# angle 0.5 (sklearn's defaults) take 131 s, at 0.8 55 s, 500 at 0.8 40 s; the neighbourhoods kept
# are the same (trustworthiness@10 on 2000 real centroids: 0.973, 0.974, 0.972). Small ones keep
# the defaults: at k = 128 the shorter run leaves similar centroids with visibly unlike colours.
LARGE_K = 1000
LARGE_K_TSNE = dict(max_iter=500, angle=0.8)
SMALL_K_TSNE = dict(max_iter=1000, angle=0.5)
# Small codebooks run t-SNE on one thread: more only spin-wait on each other (128 points on a busy
# 2-core machine: 30 s with 2 threads, 0.6 s with 1; OMP_WAIT_POLICY=PASSIVE also cures it).


def _scale_to_rgb(emb: np.ndarray) -> np.ndarray:
    """Each axis to 0..255 between its 1st and 99th percentiles, clipped; flat axes go grey."""
    lo, hi = np.percentile(emb, [1, 99], axis=0)
    span = hi - lo
    unit = np.where(span > 0, (emb - lo) / np.where(span > 0, span, 1), 0.5)
    return np.round(np.clip(unit, 0, 1) * 255).astype(np.uint8)


def centroid_colors(centroids: np.ndarray, metric: str, seed: int) -> np.ndarray:
    """(k, 3) uint8 colours for (k, d) centroids, deterministic for a given ``seed``.

    Cosine centroids are L2-normalised first, so Euclidean t-SNE distances follow cosine ones.
    """
    x = np.asarray(centroids, dtype=np.float64)
    if metric == "cosine":
        x = normalise_rows(x).astype(np.float64)
    k, d = x.shape
    if k < MIN_TSNE_K:
        n = min(3, k, d)
        emb = np.zeros((k, 3))
        if k > 1:
            emb[:, :n] = PCA(n_components=n, random_state=seed).fit_transform(x)
        return _scale_to_rgb(emb)
    if d > PCA_DIMS:
        x = PCA(n_components=min(PCA_DIMS, k), random_state=seed).fit_transform(x)
    large = k >= LARGE_K
    tsne = TSNE(n_components=3, perplexity=min(30.0, (k - 1) / 3), method="barnes_hut",
                init="pca", random_state=seed, **(LARGE_K_TSNE if large else SMALL_K_TSNE))
    with threadpool_limits(limits=None if large else 1, user_api="openmp"):
        return _scale_to_rgb(tsne.fit_transform(x))
