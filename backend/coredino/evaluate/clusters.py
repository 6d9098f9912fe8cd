"""Cluster quality against labels on the cell grid: K-means (labels unused) on the training folds'
cells, each cluster mapped to its majority class there, accuracy / NMI on the held-out fold."""

from __future__ import annotations

from typing import Optional

import numpy as np
import torch
from sklearn.metrics import normalized_mutual_info_score

from ..codebook import assign, fit_kmeans
from .probe import UNSCORED, Cells

MAX_CELLS = 10000  # K-means sample of training cells


def majority_mapping(ids: np.ndarray, labels: np.ndarray, k: int, n_classes: int) -> np.ndarray:
    """Class of each of ``k`` clusters by majority vote; unseen clusters get the overall majority."""
    counts = np.zeros((k, n_classes), dtype=np.int64)
    np.add.at(counts, (ids, labels), 1)
    mapping = counts.argmax(1)
    mapping[counts.sum(1) == 0] = np.bincount(labels, minlength=n_classes).argmax()
    return mapping


def overclustering_accuracy(train_ids: np.ndarray, train_labels: np.ndarray, test_ids: np.ndarray,
                            test_labels: np.ndarray, k: int, n_classes: Optional[int] = None) -> float:
    """Map each cluster to its majority class on the train split; accuracy on the test split."""
    n_classes = n_classes or int(max(train_labels.max(), test_labels.max())) + 1
    mapping = majority_mapping(train_ids, train_labels, k, n_classes)
    return float((mapping[test_ids] == test_labels).mean())


def nmi(ids: np.ndarray, labels: np.ndarray) -> float:
    return float(normalized_mutual_info_score(labels, ids))


def _flat(cells: list[Cells]) -> tuple[np.ndarray, np.ndarray]:
    x = torch.cat([c.features.flatten(1).t() for c in cells])
    y = torch.cat([c.labels.flatten() for c in cells])
    keep = y != UNSCORED
    return x[keep].numpy().astype(np.float32), y[keep].numpy()


def cluster_scores(train: list[Cells], test: list[Cells], n_classes: int, k: int = 32, seed: int = 0,
                   metric: str = "cosine", niter: int = 10) -> dict:
    """Over-clustering accuracy and NMI on the test cells, with the majority-class accuracy beside."""
    x_tr, y_tr = _flat(train)
    x_te, y_te = _flat(test)
    if len(x_tr) > MAX_CELLS:
        pick = np.random.default_rng(seed).choice(len(x_tr), MAX_CELLS, replace=False)
        x_tr, y_tr = x_tr[pick], y_tr[pick]
    centroids = torch.from_numpy(fit_kmeans(x_tr, min(k, len(x_tr)), metric, seed, niter, device="cpu"))
    ids_tr = assign(torch.from_numpy(x_tr), centroids, metric).numpy()
    ids_te = assign(torch.from_numpy(x_te), centroids, metric).numpy()
    acc = overclustering_accuracy(ids_tr, y_tr, ids_te, y_te, len(centroids), n_classes)
    return {"accuracy": acc, "nmi": nmi(ids_te, y_te), "k": int(len(centroids)),
            "majority_baseline": float(np.bincount(y_te, minlength=n_classes).max() / len(y_te))}
