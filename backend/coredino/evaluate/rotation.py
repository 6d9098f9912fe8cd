"""The rotating evaluation: every labelled development set, every fold held out in turn.

Tasks (folds): buildings at 0.30 m and at 0.15 m with each city held out in turn (Kampala,
Kathmandu, Nairobi; the probe trains on the other two), Dubai land cover (5 classes) with each
tile held out in turn. Per fold and seed: a linear and a conv probe, K-means clusters mapped to
classes on the training folds, and for buildings the similarity-search ROC AUC from 10 building
/ 5 background clicks on each held-out image. Every metric is reported as the mean over folds
and seeds, the spread over folds (std of the per-fold means) and over seeds.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from ..errors import UserError
from .clusters import cluster_scores
from .data import DUBAI_CLASSES, Labelled, dubai_pairs, find_pairs, load, load_dubai
from .extractors import CELL, Extractor
from .probe import Cells, cell_labels, conv_probe, linear_probe, scores
from .similarity import similarity_auc

BUILDINGS = "oam_osm_buildings"
DUBAI = "dubai_landcover"
TASKS = ("buildings@0.30", "buildings@0.15", "dubai")
# the headline metrics: (task kind, metric); their mean is the "rotating-evaluation mean"
HEADLINE = {"buildings": ("conv_iou", "linear_iou", "similarity_auc", "cluster_nmi"),
            "dubai": ("conv_accuracy", "linear_accuracy", "cluster_accuracy")}


@dataclass
class Task:
    name: str
    items: list[Labelled]
    n_classes: int
    classes: tuple[str, ...]

    @property
    def kind(self) -> str:
        return self.name.split("@")[0]

    @property
    def groups(self) -> list[str]:
        return sorted({i.pair.scene for i in self.items})


def load_tasks(root: str, names: Sequence[str] = TASKS) -> list[Task]:
    """The labelled development sets under ``root`` (``oam_osm_buildings/``, ``dubai_landcover/``)."""
    tasks = []
    for name in names:
        if name.startswith("buildings@"):
            gsd = float(name.split("@")[1])
            pattern = f"*_0p{round(gsd * 100):02d}m_image.tif"
            pairs = find_pairs(os.path.join(root, BUILDINGS), pattern)
            tasks.append(Task(name, [load(p, gsd) for p in pairs], 2, ("background", "building")))
        elif name == "dubai":
            pairs = dubai_pairs(os.path.join(root, DUBAI))
            tasks.append(Task(name, [load_dubai(p) for p in pairs], len(DUBAI_CLASSES), DUBAI_CLASSES))
        else:
            raise UserError(f"unknown evaluation task {name!r}; use {', '.join(TASKS)}")
        if len(tasks[-1].groups) < 2:
            raise UserError(f"{name}: needs at least two scenes to hold one out, found {tasks[-1].groups}")
    return tasks


def summarise(per_fold: dict[str, list[float]]) -> dict:
    """Mean over all folds and seeds, spread over folds (std of fold means) and over seeds."""
    folds = {g: [v for v in vals if np.isfinite(v)] for g, vals in per_fold.items()}
    folds = {g: v for g, v in folds.items() if v}
    fold_means = [float(np.mean(v)) for v in folds.values()]
    return {"mean": float(np.mean(fold_means)) if fold_means else float("nan"),
            "fold_std": float(np.std(fold_means)) if fold_means else float("nan"),
            "seed_std": float(np.mean([np.std(v) for v in folds.values()])) if folds else float("nan"),
            "folds": {g: [round(x, 4) for x in v] for g, v in folds.items()}}


def evaluate(extractor: Extractor, tasks: list[Task], seeds: int = 3, k: int = 32,
             log: Callable[[str], None] = print) -> dict:
    """Every metric of every task for one extractor."""
    out = {}
    for task in tasks:
        t0 = time.perf_counter()
        cells = [Cells(extractor(i.rgb), cell_labels(i.label, CELL, task.n_classes)) for i in task.items]
        t_feat = time.perf_counter() - t0
        metrics: dict[str, dict[str, list[float]]] = {}

        def add(metric: str, group: str, value: float) -> None:
            metrics.setdefault(metric, {}).setdefault(group, []).append(value)

        for group in task.groups:
            train = [c for c, i in zip(cells, task.items) if i.pair.scene != group]
            test = [c for c, i in zip(cells, task.items) if i.pair.scene == group]
            for seed in range(seeds):
                for probe, fn in (("linear", linear_probe), ("conv", conv_probe)):
                    s = scores(fn(train, test, task.n_classes, seed), test, task.n_classes)
                    for key in ("iou", "accuracy", "miou"):
                        if key in s:
                            add(f"{probe}_{key}", group, s[key])
                cl = cluster_scores(train, test, task.n_classes, k, seed)
                add("cluster_accuracy", group, cl["accuracy"])
                add("cluster_nmi", group, cl["nmi"])
                add("majority_accuracy", group, cl["majority_baseline"])
            if task.n_classes == 2:
                for value in similarity_auc(test, seeds):
                    add("similarity_auc", group, value)
        out[task.name] = {m: summarise(v) for m, v in metrics.items()}
        out[task.name]["seconds"] = {"features": round(t_feat, 1), "total": round(time.perf_counter() - t0, 1)}
        head = ", ".join(f"{m} {out[task.name][m]['mean']:.3f}" for m in HEADLINE[task.kind])
        log(f"{extractor.name}: {task.name}: {head} ({time.perf_counter() - t0:.0f} s)")
    return out


def headline(result: dict) -> dict:
    """The rotating-evaluation mean: the mean of the headline metrics, and the mean of their fold spreads."""
    means, spreads = [], []
    for task, metrics in result.items():
        for m in HEADLINE[task.split("@")[0]]:
            if m in metrics and np.isfinite(metrics[m]["mean"]):
                means.append(metrics[m]["mean"])
                spreads.append(metrics[m]["fold_std"])
    return {"mean": float(np.mean(means)), "spread": float(np.mean(spreads)), "metrics": len(means)}
