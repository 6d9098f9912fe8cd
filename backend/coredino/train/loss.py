"""Dense DINO loss: cross-entropy between sharpened teacher and student prototype
distributions at every (aligned) location, with an EMA centre or Sinkhorn-Knopp targets."""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from . import distributed as dist


def tokens(x: torch.Tensor) -> torch.Tensor:
    """(B, K, H, W) -> (B * H * W, K)."""
    return x.permute(0, 2, 3, 1).reshape(-1, x.shape[1])


@torch.no_grad()
def sinkhorn_knopp(logits: torch.Tensor, temp: float, iters: int = 3) -> torch.Tensor:
    """Balanced soft assignments of N tokens (N, K) to K prototypes (SwAV / DINOv2), all ranks together."""
    top = dist.all_reduce_max(logits.float().max().clone())  # one shift for all ranks: cancels out
    q = torch.exp((logits.float() - top) / temp).t()  # (K, N)
    n = torch.tensor(float(q.shape[1]), device=q.device)
    dist.all_reduce(n)
    k = q.shape[0]
    total = q.sum()
    dist.all_reduce(total)
    q /= total
    for _ in range(iters):
        rows = q.sum(dim=1, keepdim=True)
        dist.all_reduce(rows)
        q /= rows
        q /= k
        q /= q.sum(dim=0, keepdim=True)
        q /= n
    q *= n
    return q.t()


class DenseDINOLoss(nn.Module):
    """Holds the teacher centre (an EMA of the teacher's mean logits over all tokens)."""

    def __init__(self, out_dim: int, student_temp: float = 0.1, centre_momentum: float = 0.9,
                 centering: str = "centre") -> None:
        super().__init__()
        self.student_temp, self.centre_momentum, self.centering = student_temp, centre_momentum, centering
        self.register_buffer("centre", torch.zeros(1, out_dim))

    @torch.no_grad()
    def teacher_probs(self, teacher_logits: torch.Tensor, temp: float,
                      valid: Optional[torch.Tensor] = None) -> torch.Tensor:
        """(B, K, H, W) teacher logits -> (B, H, W, K) target distributions."""
        t = tokens(teacher_logits).float()
        if self.centering == "sinkhorn":
            keep = valid.reshape(-1) if valid is not None else torch.ones(len(t), dtype=torch.bool, device=t.device)
            p = torch.zeros_like(t)
            p[keep] = sinkhorn_knopp(t[keep], temp)
        else:
            p = F.softmax((t - self.centre) / temp, dim=-1)
        b, _, h, w = teacher_logits.shape
        return p.reshape(b, h, w, -1)

    @torch.no_grad()
    def update_centre(self, teacher_logits: torch.Tensor, valid: Optional[torch.Tensor] = None) -> None:
        t = tokens(teacher_logits).float()
        if valid is not None:
            t = t[valid.reshape(-1)]
        stats = torch.cat([t.sum(0), torch.tensor([float(len(t))], device=t.device)])
        dist.all_reduce(stats)
        if stats[-1] > 0:
            batch_centre = stats[:-1] / stats[-1]
            self.centre.mul_(self.centre_momentum).add_(batch_centre[None], alpha=1 - self.centre_momentum)

    def forward(self, student_logits: torch.Tensor, target: torch.Tensor,
                weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean cross-entropy over weighted locations; also returns the per-location (B, H, W) values.

        student_logits (B, K, H, W) already aligned to ``target`` (B, H, W, K); weight (B, H, W).
        """
        log_p = F.log_softmax(student_logits.float().permute(0, 2, 3, 1) / self.student_temp, dim=-1)
        ce = -(target * log_p).sum(-1)
        w = weight.float()
        return (ce * w).sum() / w.sum().clamp_min(1.0), ce
