"""Similarity search quality: ROC AUC of buildings vs background for the product's query rule
(:func:`coredino.explore.similar.rocchio`) from random clicks (10 building, 5 background cells)
on one held-out image, features centred on that image's mean (as the stored embeddings are)."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import roc_auc_score

from ..explore.similar import rocchio
from .probe import UNSCORED, Cells

POSITIVES, NEGATIVES = 10, 5


def click_auc(cells: Cells, rng: np.random.Generator, positives: int = POSITIVES,
              negatives: int = NEGATIVES) -> float | None:
    """AUC over the image's other scored cells; None when it lacks enough cells of a class."""
    f = cells.features.flatten(1).t().numpy().astype(np.float64)
    y = cells.labels.flatten().numpy()
    keep = y != UNSCORED
    f, y = f[keep] - f[keep].mean(0), y[keep]
    pos, neg = np.flatnonzero(y == 1), np.flatnonzero(y == 0)
    if len(pos) < positives * 2 or len(neg) < negatives * 2:
        return None
    p = rng.choice(pos, positives, replace=False)
    n = rng.choice(neg, negatives, replace=False)
    q = rocchio(f[p], f[n]).astype(np.float64)
    unit = f / np.maximum(np.linalg.norm(f, axis=1, keepdims=True), 1e-12)
    rest = np.ones(len(y), bool)
    rest[p] = rest[n] = False
    return float(roc_auc_score(y[rest], unit[rest] @ q))


def similarity_auc(test: list[Cells], seeds: int = 3, draws: int = 5) -> list[float]:
    """Mean AUC over the test images and ``draws`` click sets, one value per seed."""
    out = []
    for seed in range(seeds):
        rng = np.random.default_rng(seed)
        values = [a for c in test for _ in range(draws) if (a := click_auc(c, rng)) is not None]
        out.append(float(np.mean(values)) if values else float("nan"))
    return out
