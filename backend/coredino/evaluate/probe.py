"""Frozen-backbone probe: a 2-layer conv head on patch features, trained with a soft IoU
(Jaccard) loss, scored by IoU at the mask's pixel resolution (logits upsampled bilinearly)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .data import IGNORE


@dataclass
class FeatureMap:
    """Frozen features of one labelled image and its pixel labels (binary target: class 1)."""

    features: torch.Tensor  # (C, h, w) float32
    label: torch.Tensor  # (H, W) uint8, IGNORE = not scored; H = h * patch


class ConvHead(nn.Module):
    """3x3 conv -> BN -> ReLU -> 1x1 conv: one logit per patch."""

    def __init__(self, in_dim: int, hidden: int = 64) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(in_dim, hidden, 3, padding=1), nn.BatchNorm2d(hidden),
                                 nn.ReLU(inplace=True), nn.Conv2d(hidden, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def soft_iou_loss(logits: torch.Tensor, target: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """1 - soft Jaccard of sigmoid(logits) against a binary target over valid pixels."""
    p = torch.sigmoid(logits) * valid
    t = target * valid
    inter = (p * t).sum()
    union = (p + t - p * t).sum()
    return 1 - (inter + 1) / (union + 1)


TRAIN_DOWN = 4  # the training loss runs at 1/4 of the mask resolution (soft targets): 16x cheaper


def _upsampled(head: nn.Module, fm: FeatureMap, mean: torch.Tensor, std: torch.Tensor,
               size: tuple[int, int] | None = None) -> torch.Tensor:
    x = ((fm.features - mean) / std)[None]
    size = size or tuple(fm.label.shape)
    return F.interpolate(head(x), size=size, mode="bilinear", align_corners=False)[0, 0]


def soft_targets(label: torch.Tensor, down: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Class-1 fraction of the labelled pixels and the labelled fraction, per ``down`` x ``down`` block."""
    valid = (label != IGNORE).float()[None, None]
    pos = (label == 1).float()[None, None]
    if down > 1:
        valid, pos = F.avg_pool2d(valid, down), F.avg_pool2d(pos, down)
    return (pos / valid.clamp_min(1e-6))[0, 0], valid[0, 0]


def standardiser(train: list[FeatureMap]) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and std of the training features (random features have wild scales)."""
    flat = torch.cat([fm.features.flatten(1) for fm in train], dim=1)
    return flat.mean(1)[:, None, None], flat.std(1).clamp_min(1e-6)[:, None, None]


def train_probe(train: list[FeatureMap], iters: int = 300, lr: float = 3e-3, seed: int = 0,
                hidden: int = 64) -> tuple[nn.Module, torch.Tensor, torch.Tensor, list[float]]:
    """Fit the head on all training images each iteration (full batch); returns head, mean, std, losses."""
    torch.manual_seed(seed)
    mean, std = standardiser(train)
    head = ConvHead(train[0].features.shape[0], hidden)
    opt = torch.optim.AdamW(head.parameters(), lr=lr, weight_decay=1e-4)
    targets = [soft_targets(fm.label, TRAIN_DOWN) for fm in train]
    losses = []
    head.train()
    for _ in range(iters):
        opt.zero_grad(set_to_none=True)
        loss = sum(soft_iou_loss(_upsampled(head, fm, mean, std, tuple(t.shape)), t, v)
                   for fm, (t, v) in zip(train, targets)) / len(train)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    head.eval()
    return head, mean, std, losses


@torch.no_grad()
def iou(head: nn.Module, mean: torch.Tensor, std: torch.Tensor, maps: list[FeatureMap]) -> float:
    """Hard IoU of class 1 (sigmoid > 0.5) pooled over all valid pixels of ``maps``."""
    tp = fp = fn = 0
    for fm in maps:
        pred = _upsampled(head, fm, mean, std) > 0
        valid = fm.label != IGNORE
        truth = fm.label == 1
        tp += int((pred & truth & valid).sum())
        fp += int((pred & ~truth & valid).sum())
        fn += int((~pred & truth & valid).sum())
    return tp / max(1, tp + fp + fn)


def run_probe(train: list[FeatureMap], test: list[FeatureMap], iters: int = 300, seeds: int = 1,
              lr: float = 3e-3) -> dict:
    """Train ``seeds`` heads; test IoU mean / std / per seed, and train IoU."""
    test_ious, train_ious = [], []
    for seed in range(seeds):
        head, mean, std, _ = train_probe(train, iters, lr, seed)
        test_ious.append(iou(head, mean, std, test))
        train_ious.append(iou(head, mean, std, train))
    return {"iou": float(np.mean(test_ious)), "iou_std": float(np.std(test_ious)),
            "iou_per_seed": test_ious, "train_iou": float(np.mean(train_ious)), "iters": iters,
            "seeds": seeds}
