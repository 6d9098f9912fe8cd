"""Cluster quality against labels: over-clustering accuracy and NMI, on the patch grid."""

from __future__ import annotations

from typing import Optional

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.metrics import normalized_mutual_info_score

from ..codebook import assign, fit_kmeans
from .data import IGNORE
from .probe import FeatureMap

MIN_VALID = 0.5  # a patch is scored when at least half of its pixels are labelled


def patch_labels(label: torch.Tensor, patch: int, n_classes: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """Majority class per patch (H, W) -> (h, w) and whether enough of the patch is labelled."""
    lab = label.long()
    valid = (lab != IGNORE).float()
    one_hot = F.one_hot(lab.clamp_max(n_classes - 1), n_classes).permute(2, 0, 1).float() * valid
    counts = F.avg_pool2d(one_hot[None], patch)[0]
    frac = F.avg_pool2d(valid[None, None], patch)[0, 0]
    return counts.argmax(0).numpy(), (frac >= MIN_VALID).numpy()


def cells(maps: list[FeatureMap], patch: int, n_classes: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """Features (n, C) and labels (n,) of every scored patch of ``maps``."""
    feats, labels = [], []
    for fm in maps:
        lab, ok = patch_labels(fm.label, patch, n_classes)
        f = fm.features.permute(1, 2, 0).numpy()[: lab.shape[0], : lab.shape[1]]
        feats.append(f[ok])
        labels.append(lab[ok])
    return np.concatenate(feats).astype(np.float32), np.concatenate(labels)


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


def cluster_quality(train: list[FeatureMap], test: list[FeatureMap], patch: int, k: int = 32,
                    seed: int = 0, centroids: Optional[np.ndarray] = None, metric: str = "cosine",
                    niter: int = 20) -> dict:
    """K-means on the train split's patch features (labels unused) or given centroids; labels
    map clusters to classes on the train split, accuracy / NMI / building IoU on the test split."""
    x_tr, y_tr = cells(train, patch)
    x_te, y_te = cells(test, patch)
    if centroids is None:
        centroids = fit_kmeans(x_tr, min(k, len(x_tr)), metric, seed, niter)
    k = len(centroids)
    c = torch.from_numpy(centroids)
    ids_tr = assign(torch.from_numpy(x_tr), c, metric).numpy()
    ids_te = assign(torch.from_numpy(x_te), c, metric).numpy()
    mapping = majority_mapping(ids_tr, y_tr, k, 2)
    pred = mapping[ids_te]
    tp, fp, fn = (int(((pred == 1) & (y_te == 1)).sum()), int(((pred == 1) & (y_te == 0)).sum()),
                  int(((pred == 0) & (y_te == 1)).sum()))
    return {
        "k": k,
        "accuracy": float((pred == y_te).mean()),
        "majority_baseline": float(max(np.mean(y_te == 0), np.mean(y_te == 1))),
        "nmi": nmi(ids_te, y_te),
        "cluster_iou": tp / max(1, tp + fp + fn),
        "train_cells": int(len(y_tr)),
        "test_cells": int(len(y_te)),
    }
