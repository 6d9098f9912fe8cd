"""Stage 1 of the two-stage recipe: dense distillation of the ImageNet MobileNetV2 prior.

The frozen prior (:mod:`coredino.train.prior`) embeds the clean teacher crop; the student (YOLO11
layers 0..layer) embeds the same degraded, distorted, masked views as in the DINO objective; its
maps at layer 16 (stride 8) and at ``--layer`` are brought back to the teacher's frame, projected
per location by a small 1x1-conv MLP to the prior's 128 channels, and pulled towards the prior
at the same grid by a cosine loss on every visible valid cell. Stage 2 is ``coredino train
--init <stage-1 student>`` with the DINO objective.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..encoders.yolo import LAYER_STRIDES, run_layers_taps
from .augment import Views, align
from .prior import PRIOR_DIM, MobileNetV2Prior
from .trainer import Trainer, feature_dim

PROJECTOR_HIDDEN = 256
TAP = 16  # always distilled besides --layer: the engine's default feature layer


class Projector(nn.Module):
    """Per-location MLP (1x1 convs) from student channels to the prior's channels."""

    def __init__(self, in_dim: int, out_dim: int = PRIOR_DIM, hidden: int = PROJECTOR_HIDDEN) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(in_dim, hidden, 1), nn.GELU(), nn.Conv2d(hidden, out_dim, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class DistillModel(nn.Module):
    """YOLO11 layers 0..max(taps) and one projector per tapped layer."""

    def __init__(self, layers: nn.ModuleList, taps: tuple[int, ...]) -> None:
        super().__init__()
        self.taps = taps
        self.backbone = nn.ModuleList(list(layers)[: max(taps) + 1])
        self.head = nn.ModuleDict({str(t): Projector(feature_dim(layers, t)) for t in taps})

    def forward(self, views: list[tuple[torch.Tensor, list, int]]) -> list[dict[int, torch.Tensor]]:
        """[(images, D4 transforms, side in cells of ``side_stride``)] -> [{tap: projected aligned map}]."""
        out = []
        for images, transforms, crop in views:
            maps = run_layers_taps(self.backbone, images, self.taps)
            out.append({t: self.head[str(t)](align(maps[t], transforms, crop // LAYER_STRIDES[t]))
                        for t in self.taps})
        return out


def cosine_loss(pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor) -> tuple[torch.Tensor, float]:
    """Weighted mean of 1 - cos over locations of (B, C, h, w) maps; also the mean cosine."""
    cos = F.cosine_similarity(pred.float(), target.float(), dim=1)
    w = weight.float()
    mean_cos = float((cos.detach() * w).sum() / w.sum().clamp_min(1.0))
    return ((1 - cos) * w).sum() / w.sum().clamp_min(1.0), mean_cos


def _on_grid(cells: torch.Tensor, side: int) -> torch.Tensor:
    """A boolean (B, h, w) cell map at another grid (nearest)."""
    if cells.shape[-1] == side:
        return cells
    return F.interpolate(cells[:, None].float(), size=(side, side), mode="nearest")[:, 0] > 0.5


class DistillTrainer(Trainer):
    """:class:`Trainer` with the prior as a fixed teacher (no EMA teacher, no prototypes)."""

    def _build_models(self, layers: nn.ModuleList) -> None:
        taps = tuple(sorted({TAP, self.cfg.layer}))
        self.student = DistillModel(layers, taps).to(self.device)
        self.student.train()
        self.teacher_layers = None
        self.prior = MobileNetV2Prior().to(self.device)

    def _model_state(self) -> dict:
        return {"student_head": self.student.head.state_dict(), "prior_sha256": self.prior.sha256}

    def _load_model_state(self, ckpt: dict) -> None:
        self.student.head.load_state_dict(ckpt["student_head"])

    def train_step(self, views: Views, step: int, monitor: bool = False) -> dict:
        c, sched = self.cfg, self.scheduled(step)
        views = views.to(self.device)
        crop = views.teacher.shape[-1]
        view = views.students[0]
        outs = self.model([(view.image, view.transforms, crop)])[0]
        targets = self.prior.grids(views.teacher, tuple(LAYER_STRIDES[t] for t in outs))
        weights = {}
        for tap in outs:
            side = crop // LAYER_STRIDES[tap]
            weight = _on_grid(views.cell_valid, side)
            if view.mask is not None and not c.loss_on_masked:
                weight = weight & ~_on_grid(view.mask, side)
            weights[tap] = weight
        losses, cosines = [], []
        for tap, pred in outs.items():
            loss, cos = cosine_loss(pred, targets[LAYER_STRIDES[tap]], weights[tap])
            losses.append(loss)
            cosines.append(cos)
        extra = {}
        margin = context_margin(crop, c.context_window)
        if margin and view.image.shape[-1] == crop:  # down-then-up views: the teacher's frame
            extra["context_cos"] = self._context_step(view, outs, targets, weights, crop, margin, losses)
        loss, grad_norm = self.optimise(losses, step)
        return {"step": step + 1, "loss": loss.item(), "grad_norm": grad_norm, **sched,
                "cosine": sum(cosines) / len(cosines), "mode": view.mode,
                "gsd": sum(view.gsd) / len(view.gsd), **extra}

    def _context_step(self, view, outs: dict, targets: dict, weights: dict, crop: int, margin: int,
                      losses: list) -> float:
        """The student sees the view's centre alone (a centred square is its own image under the
        D4 transforms); its features there are pulled to the prior's and to the whole view's
        features of the same cells: one location, two contexts, one feature. Returns the mean
        cosine between the two contexts' features."""
        inner = self.model([(view.image[..., margin:crop - margin, margin:crop - margin],
                             view.transforms, crop - 2 * margin)])[0]
        agreement = []
        for tap, pred in inner.items():
            cut = slice(margin // LAYER_STRIDES[tap], (crop - margin) // LAYER_STRIDES[tap])
            weight = weights[tap][:, cut, cut]
            loss, _ = cosine_loss(pred, targets[LAYER_STRIDES[tap]][..., cut, cut], weight)
            consistency, cos = cosine_loss(pred, outs[tap][..., cut, cut], weight)
            losses.extend([loss, consistency])
            agreement.append(cos)
        return sum(agreement) / len(agreement)


def context_margin(crop: int, window: float) -> int:
    """Pixels cut from each side of a ``crop`` for a centred window of ``window`` of its side
    (0: off): a multiple of 32, so the window's cells stay on the crop's grid at every stride."""
    if window <= 0:
        return 0
    return min(max(32, int(round(crop * (1 - window) / 64)) * 32), (crop - 64) // 64 * 32)
