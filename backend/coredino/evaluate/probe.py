"""Frozen-feature probes on the 8 px cell grid: a linear (softmax regression) probe and a small
conv probe (3x3 conv, BatchNorm, ReLU, 1x1 conv), both on features standardised with the
training folds' channel statistics, trained on the training folds' cells and scored on the
held-out fold's cells (majority label per cell; cells under half labelled are not used)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .data import IGNORE

UNSCORED = -1
MIN_LABELLED = 0.5  # a cell is scored when at least half of its pixels are labelled


@dataclass
class Cells:
    """Frozen features of one labelled image on the cell grid and the cells' classes."""

    features: torch.Tensor  # (C, h, w) float32
    labels: torch.Tensor  # (h, w) int64 class ids, UNSCORED where under half labelled


def cell_labels(label: np.ndarray, cell: int, n_classes: int) -> torch.Tensor:
    """Majority class of every ``cell`` x ``cell`` block of a pixel label map (IGNORE = unknown)."""
    lab = torch.from_numpy(label).long()
    valid = (lab != IGNORE).float()
    one_hot = F.one_hot(lab.clamp_max(n_classes - 1), n_classes).permute(2, 0, 1).float() * valid
    counts = F.avg_pool2d(one_hot[None], cell)[0]
    labelled = F.avg_pool2d(valid[None, None], cell)[0, 0]
    out = counts.argmax(0)
    out[labelled < MIN_LABELLED] = UNSCORED
    return out


def standardiser(train: list[Cells]) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and std over the training cells (random features have wild scales)."""
    flat = torch.cat([c.features.flatten(1) for c in train], dim=1)
    return flat.mean(1)[:, None, None], flat.std(1).clamp_min(1e-6)[:, None, None]


def _scored(cells: list[Cells], mean: torch.Tensor, std: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.cat([((c.features - mean) / std).flatten(1).t() for c in cells])
    y = torch.cat([c.labels.flatten() for c in cells])
    keep = y != UNSCORED
    return x[keep], y[keep]


def linear_probe(train: list[Cells], test: list[Cells], n_classes: int, seed: int = 0,
                 max_cells: int = 10000, iters: int = 50) -> list[torch.Tensor]:
    """Softmax regression (L-BFGS, small L2) on up to ``max_cells`` random training cells;
    the predicted class of every cell of every test image."""
    mean, std = standardiser(train)
    x, y = _scored(train, mean, std)
    gen = torch.Generator().manual_seed(seed)
    if len(y) > max_cells:
        pick = torch.randperm(len(y), generator=gen)[:max_cells]
        x, y = x[pick], y[pick]
    torch.manual_seed(seed)
    lin = nn.Linear(x.shape[1], n_classes)
    opt = torch.optim.LBFGS(lin.parameters(), lr=1, max_iter=iters, history_size=10,
                            line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = F.cross_entropy(lin(x), y) + 1e-4 * lin.weight.pow(2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    with torch.no_grad():
        return [lin(((c.features - mean) / std).flatten(1).t()).argmax(1).view(c.labels.shape)
                for c in test]


class ConvHead(nn.Module):
    """3x3 conv -> BN -> ReLU -> 1x1 conv: class logits per cell."""

    def __init__(self, in_dim: int, n_classes: int, hidden: int = 16) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(in_dim, hidden, 3, padding=1), nn.BatchNorm2d(hidden),
                                 nn.ReLU(inplace=True), nn.Conv2d(hidden, n_classes, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def _windows(cells: list[Cells], size: int, n: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` random ``size`` x ``size`` windows of (features, labels) from the training images."""
    xs, ys = [], []
    for _ in range(n):
        c = cells[int(torch.randint(len(cells), (1,), generator=gen))]
        h, w = c.labels.shape
        s_h, s_w = min(size, h), min(size, w)
        y0 = int(torch.randint(h - s_h + 1, (1,), generator=gen))
        x0 = int(torch.randint(w - s_w + 1, (1,), generator=gen))
        f = c.features[:, y0:y0 + s_h, x0:x0 + s_w]
        lab = c.labels[y0:y0 + s_h, x0:x0 + s_w]
        pad = (0, size - s_w, 0, size - s_h)
        xs.append(F.pad(f, pad))
        ys.append(F.pad(lab, pad, value=UNSCORED))
    return torch.stack(xs), torch.stack(ys)


def conv_probe(train: list[Cells], test: list[Cells], n_classes: int, seed: int = 0, iters: int = 100,
               window: int = 16, batch: int = 8, lr: float = 1e-2) -> list[torch.Tensor]:
    """The conv head trained with cross-entropy on random windows of the training cells
    (AdamW, ``iters`` steps of ``batch`` windows); the predicted class of every test cell."""
    mean, std = standardiser(train)
    normed = [Cells((c.features - mean) / std, c.labels) for c in train]
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    head = ConvHead(train[0].features.shape[0], n_classes)
    opt = torch.optim.AdamW(head.parameters(), lr=lr, weight_decay=1e-4)
    head.train()
    for _ in range(iters):
        x, y = _windows(normed, window, batch, gen)
        if not (y != UNSCORED).any():
            continue
        loss = F.cross_entropy(head(x), y, ignore_index=UNSCORED)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    head.eval()
    with torch.no_grad():
        return [head(((c.features - mean) / std)[None])[0].argmax(0) for c in test]


def scores(preds: list[torch.Tensor], test: list[Cells], n_classes: int) -> dict:
    """Accuracy, mean IoU over classes present, and the IoU of class 1 (building, binary tasks)."""
    p = torch.cat([x.flatten() for x in preds])
    y = torch.cat([c.labels.flatten() for c in test])
    keep = y != UNSCORED
    p, y = p[keep], y[keep]
    ious = []
    for k in range(n_classes):
        inter = int(((p == k) & (y == k)).sum())
        union = int(((p == k) | (y == k)).sum())
        if int((y == k).sum()):
            ious.append(inter / max(1, union))
    out = {"accuracy": float((p == y).float().mean()), "miou": float(np.mean(ious)), "cells": int(len(y))}
    if n_classes == 2:
        inter, union = int(((p == 1) & (y == 1)).sum()), int(((p == 1) | (y == 1)).sum())
        out["iou"] = inter / max(1, union)
    return out
