"""Few-example classification on the kept embeddings vs colour-only and cluster-majority baselines.

    PYTHONPATH=backend nice -n 10 .venv/bin/python bench/learn_data.py     # classify once, cache cells
    PYTHONPATH=backend nice -n 10 .venv/bin/python bench/learn_curves.py   # curves, table, PNG

For 5/10/20/50 examples per class (random labelled cells of the training scenes, 10 draws), each
method is trained on the training scenes and scored on every labelled cell of the held-out ones:
building IoU (buildings) and 5-class accuracy (Dubai). Methods:

* ``logistic`` / ``knn``: :mod:`coredino.explore.classifier` (what ``coredino learn`` runs) on the
  cell features (unit embedding in the codebook's basis + unit 3 x 3 neighbourhood mean);
  ``forest``: scikit-learn's random forest (100 trees) on the same features (benchmark only);
* ``logistic, embedding only``: without the neighbourhood (ablation);
* ``colour``: the same logistic regression on the cell's mean RGB;
* ``cluster majority``: each cluster takes the majority class of the examples in it; clusters
  without examples take that of the nearest (cosine) cluster with examples.

Writes docs/img/learn_curves.png and prints a markdown table (mean [min, max] over the draws).
"""

from __future__ import annotations

import sys
import time

import numpy as np

from common import ROOT
from learn_data import WORK

sys.path.insert(0, str(ROOT / "backend"))
from coredino.codebook import Codebook  # noqa: E402
from coredino.explore.classifier import cell_features, train, unit  # noqa: E402

SIZES = (5, 10, 20, 50)
DRAWS = 10
IGNORE = 255
SPLITS = {  # name: (metric, classes, train scene prefixes, test scene prefixes)
    "buildings: Kampala + Nairobi -> Kathmandu": ("iou", 2, ("kampala", "nairobi"), ("kathmandu",)),
    "buildings: Kathmandu + Nairobi -> Kampala": ("iou", 2, ("kathmandu", "nairobi"), ("kampala",)),
    "buildings: Kampala + Kathmandu -> Nairobi": ("iou", 2, ("kampala", "kathmandu"), ("nairobi",)),
    "Dubai: tiles 1-3 -> 4, 5, 7": ("accuracy", 5, ("dubai_tile1", "dubai_tile2", "dubai_tile3"),
                                    ("dubai_tile4", "dubai_tile5", "dubai_tile7")),
    "Dubai: tiles 4, 5, 7 -> 1-3": ("accuracy", 5, ("dubai_tile4", "dubai_tile5", "dubai_tile7"),
                                    ("dubai_tile1", "dubai_tile2", "dubai_tile3")),
}
METHODS = ("logistic", "knn", "forest", "logistic, embedding only", "colour", "cluster majority")


def load(prefixes, classes: int) -> dict[str, np.ndarray]:
    parts = {k: [] for k in ("z", "features", "rgb", "ids", "label")}
    for path in sorted(WORK.glob("*.npz")):
        if not path.stem.startswith(prefixes):
            continue
        d = np.load(path)
        keep = d["label"] != IGNORE
        label = d["label"][keep].astype(np.int64)
        parts["z"].append(unit(d["z"])[keep])
        parts["features"].append(cell_features(d["z"], d["valid"])[keep])
        parts["rgb"].append(d["rgb"][keep])
        parts["ids"].append(d["ids"][keep])
        parts["label"].append(label)
    return {k: np.concatenate(v) for k, v in parts.items()}


def cluster_majority(train_ids, train_y, test_ids, centroids, classes) -> np.ndarray:
    votes = np.zeros((len(centroids), classes))
    np.add.at(votes, (train_ids, train_y), 1)
    labelled = np.flatnonzero(votes.sum(1) > 0)
    unit = centroids / np.linalg.norm(centroids, axis=1, keepdims=True)
    nearest = labelled[(unit @ unit[labelled].T).argmax(1)]
    owner = votes[nearest].argmax(1)
    owner[labelled] = votes[labelled].argmax(1)
    return owner[test_ids]


def predict(method, tr, te, idx, y, classes, centroids) -> np.ndarray:
    if method == "cluster majority":
        return cluster_majority(tr["ids"][idx], y, te["ids"], centroids, classes)
    feature = {"colour": "rgb", "logistic, embedding only": "z"}.get(method, "features")
    x, xt = tr[feature][idx], te[feature]
    if method == "forest":
        from sklearn.ensemble import RandomForestClassifier
        return RandomForestClassifier(100, random_state=0, n_jobs=1).fit(x, y).predict(xt)
    kind = "knn" if method == "knn" else "logistic"
    if method == "colour":  # colour is not an embedding: plain standardised logistic regression
        from sklearn.linear_model import LogisticRegression
        mean, scale = x.mean(0), x.std(0) + 1e-6
        model = LogisticRegression(max_iter=1000, class_weight="balanced").fit((x - mean) / scale, y)
        return model.predict((xt - mean) / scale)
    return train(kind, x, y, [str(c) for c in range(classes)], "bench", None).predict_proba(xt).argmax(1)


def score(metric: str, truth: np.ndarray, pred: np.ndarray) -> float:
    if metric == "iou":
        inter = np.sum((truth == 1) & (pred == 1))
        union = np.sum((truth == 1) | (pred == 1))
        return float(inter / max(union, 1))
    return float(np.mean(truth == pred))


def main() -> None:
    codebook = Codebook.load(ROOT / "backend" / "coredino" / "resources" / "coredino-n-default.codebook.npz")
    results = {}
    seconds = {m: [] for m in METHODS}
    for split, (metric, classes, train_p, test_p) in SPLITS.items():
        tr, te = load(train_p, classes), load(test_p, classes)
        for n in SIZES:
            for method in METHODS:
                values = []
                for draw in range(DRAWS):
                    rng = np.random.default_rng(1000 * n + draw)
                    idx = np.concatenate([rng.choice(np.flatnonzero(tr["label"] == c), n,
                                                     replace=(tr["label"] == c).sum() < n)
                                          for c in range(classes)])
                    t = time.perf_counter()
                    pred = predict(method, tr, te, idx, tr["label"][idx], classes, codebook.centroids)
                    seconds[method].append(time.perf_counter() - t)
                    values.append(score(metric, te["label"], pred))
                results[(split, n, method)] = values
            print(split, n, {m: round(float(np.mean(results[(split, n, m)])), 3) for m in METHODS}, flush=True)
    table(results)
    plot(results)
    print("median seconds per fit+predict:", {m: round(float(np.median(s)), 3) for m, s in seconds.items()})


def table(results) -> None:
    print("\n| split | examples / class | " + " | ".join(METHODS) + " |")
    print("|---|---|" + "---|" * len(METHODS))
    for split in SPLITS:
        for n in SIZES:
            cells = []
            for m in METHODS:
                v = results[(split, n, m)]
                cells.append(f"{np.mean(v):.3f} [{np.min(v):.2f}, {np.max(v):.2f}]")
            print(f"| {split} | {n} | " + " | ".join(cells) + " |")


def plot(results) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, len(SPLITS), figsize=(5 * len(SPLITS), 4.2), sharex=True)
    for ax, (split, (metric, *_)) in zip(axes, SPLITS.items()):
        for m in METHODS:
            v = np.array([results[(split, n, m)] for n in SIZES])
            ax.plot(SIZES, v.mean(1), marker="o", label=m)
            ax.fill_between(SIZES, v.min(1), v.max(1), alpha=0.15)
        ax.axhline(0.50 if metric == "iou" else 0.75, color="k", ls=":", lw=1)
        ax.set_xscale("log")
        ax.set_xticks(SIZES, [str(s) for s in SIZES])
        ax.set_title(split, fontsize=9)
        ax.set_xlabel("examples per class")
        ax.set_ylabel("building IoU" if metric == "iou" else "5-class accuracy")
        ax.set_ylim(0, 1)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    out = ROOT / "docs" / "img" / "learn_curves.png"
    fig.savefig(out, dpi=80)
    print(out)


if __name__ == "__main__":
    main()
