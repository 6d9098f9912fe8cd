"""Classifiers of embeddings for `coredino learn`: trained with scikit-learn, kept as plain JSON.

Features of a cell (:func:`cell_features`): its embedding scaled to unit length, next to the unit
mean embedding of its 3 x 3 neighbourhood (context: a cell of 2 m sees part of a roof; its
neighbours say whose roof). No standardisation: the 32 components keep the embedding's own
geometry (standardising blew up the low-variance components and cost up to 0.06 IoU, see
docs/learn.md). ``logistic`` (the default): multinomial logistic regression, C = 1,
class-balanced. ``knn``: the 5 nearest examples (Euclidean on unit features, i.e. cosine),
distance-weighted. bench/learn_curves.py compares them with a random forest (benchmark only:
better on Dubai's five classes, worse on buildings, and not yet savable as plain arrays),
colour-only and cluster-majority baselines (docs/learn.md).

A saved classifier (``.classifier.json``) holds the arrays prediction needs (no pickle), the
class names and colours, and the id of the embedding basis it was trained in: it applies to any
map whose embeddings share that basis (every map classified with the same codebook) and is
refused with one line on any other.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np
# imported with the module (the backend imports it at start): a first import inside a job would
# hold the interpreter for seconds on a busy machine, and the service's answers with it
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedGroupKFold

from coredino_contract.params import CLASSIFIERS

from ..atomic import atomic_open
from ..errors import UserError

FORMAT = "coredino-classifier/2"
FEATURES = "unit embedding + unit 3x3 mean"
KNN_K = 5


def unit(z: np.ndarray) -> np.ndarray:
    return (z / np.maximum(np.linalg.norm(z, axis=-1, keepdims=True), 1e-12)).astype(np.float32)


def neighbourhood_mean(z: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """(h, w, d): the mean of the valid embeddings in each cell's 3 x 3 neighbourhood."""
    h, w, _ = z.shape
    zp = np.pad(np.where(valid[..., None], z, 0), ((1, 1), (1, 1), (0, 0)))
    vp = np.pad(valid.astype(np.float32), 1)
    total = sum(zp[i:i + h, j:j + w] for i in range(3) for j in range(3))
    count = sum(vp[i:i + h, j:j + w] for i in range(3) for j in range(3))
    return total / np.maximum(count, 1)[..., None]


def cell_features(z: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """(h, w, 2d) float32 features of every cell of an embeddings grid (module docstring)."""
    return np.concatenate([unit(z), unit(neighbourhood_mean(z, valid))], axis=-1)


@dataclass
class Classifier:
    """What prediction needs; ``predict_proba`` works on (n, 2 dims) :func:`cell_features`."""

    kind: str
    classes: list[str]
    basis_sha256: str
    codebook_sha256: Optional[str]
    coef: Optional[np.ndarray] = None  # logistic: (n_classes or 1, features)
    intercept: Optional[np.ndarray] = None
    examples: Optional[np.ndarray] = None  # knn: (m, features)
    labels: Optional[np.ndarray] = None  # knn: (m,) class index

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        """(n, n_classes) float32 probabilities."""
        if self.kind == "logistic":
            logits = x @ self.coef.T + self.intercept
            if self.coef.shape[0] == 1:  # binary: sklearn keeps one row, for the second class
                logits = np.concatenate([np.zeros_like(logits), logits], axis=1)
            logits -= logits.max(1, keepdims=True)
            p = np.exp(logits)
            return (p / p.sum(1, keepdims=True)).astype(np.float32)
        ref = self.examples
        k = min(KNN_K, len(ref))
        p = np.zeros((len(x), len(self.classes)), np.float64)
        for i in range(0, len(x), 8192):  # bounded (8192 x examples) distance matrix
            xb = x[i:i + 8192]
            dist = ((xb ** 2).sum(1)[:, None] - 2 * xb @ ref.T + (ref ** 2).sum(1)[None, :]).clip(min=0)
            near = np.argpartition(dist, k - 1, axis=1)[:, :k]
            weight = 1.0 / (np.sqrt(np.take_along_axis(dist, near, 1)) + 1e-6)
            rows = np.arange(i, i + len(xb))
            for j in range(k):  # one neighbour per row at a time: no repeated (row, class) index
                p[rows, self.labels[near[:, j]]] += weight[:, j]
        return (p / p.sum(1, keepdims=True)).astype(np.float32)

    def save(self, path: str, colors: list[tuple[int, int, int]]) -> str:
        body = {"format": FORMAT, "features": FEATURES, "kind": self.kind, "classes": self.classes,
                "colors": ["#%02x%02x%02x" % tuple(c[:3]) for c in colors],
                "basis_sha256": self.basis_sha256, "codebook_sha256": self.codebook_sha256}
        for name in ("coef", "intercept", "examples", "labels"):
            value = getattr(self, name)
            if value is not None:
                body[name] = value.tolist()
        with atomic_open(path) as f:
            f.write(json.dumps(body).encode("utf-8"))
        return str(path)

    @classmethod
    def load(cls, path: str) -> "Classifier":
        if not Path(path).is_file():
            raise UserError(f"{path}: no such file")
        try:
            body = json.loads(Path(path).read_text(encoding="utf-8"))
            if body.get("format") != FORMAT or body.get("kind") not in CLASSIFIERS:
                raise ValueError(f"no {FORMAT} format marker")
            arrays = {name: np.asarray(body[name], np.float32) for name in ("coef", "intercept", "examples")
                      if name in body}
            labels = np.asarray(body["labels"], np.int64) if "labels" in body else None
            return cls(body["kind"], [str(c) for c in body["classes"]], str(body["basis_sha256"]),
                       body.get("codebook_sha256"), labels=labels, **arrays)
        except (ValueError, KeyError, TypeError, UnicodeDecodeError) as exc:
            raise UserError(f"{path}: not a coredino classifier or corrupt ({exc}); save one with "
                            f"`coredino learn --save-model`") from None


def train(kind: str, x: np.ndarray, y: np.ndarray, classes: list[str], basis_sha256: str,
          codebook_sha256: Optional[str]) -> Classifier:
    """Fit on features ``x`` (n, f) with class indices ``y``."""
    if kind not in CLASSIFIERS:
        raise UserError(f"classifier {kind!r}: choose one of {', '.join(CLASSIFIERS)}")
    out = Classifier(kind, classes, basis_sha256, codebook_sha256)
    if kind == "logistic":
        model = LogisticRegression(C=1.0, max_iter=3000, class_weight="balanced").fit(x, y)
        out.coef = model.coef_.astype(np.float32)
        out.intercept = model.intercept_.astype(np.float32)
    else:
        out.examples, out.labels = np.asarray(x, np.float32), y.astype(np.int64)
    return out


def cross_validate(kind: str, x: np.ndarray, y: np.ndarray, groups: np.ndarray, n_classes: int) -> Optional[np.ndarray]:
    """Confusion matrix (true x predicted) of a grouped, stratified k-fold (k <= 5), or None when a
    class has fewer than two examples."""
    per_class = [len(np.unique(groups[y == c])) for c in range(n_classes)]
    folds = min(5, min(per_class))
    if folds < 2:
        return None
    matrix = np.zeros((n_classes, n_classes), np.int64)
    for train_idx, test_idx in StratifiedGroupKFold(folds, shuffle=True, random_state=0).split(x, y, groups):
        if len(np.unique(y[train_idx])) < n_classes:
            continue
        model = train(kind, x[train_idx], y[train_idx], [str(c) for c in range(n_classes)], "", None)
        np.add.at(matrix, (y[test_idx], model.predict_proba(x[test_idx]).argmax(1)), 1)
    return matrix
