"""Collapse monitors: is the teacher using many prototypes, each token confidently?

* ``teacher_entropy``: mean per-token entropy of the teacher distribution (nats). ~0: every
  token is one-hot; ~log K: every token is uniform (no information).
* ``batch_entropy``: entropy of the batch-mean teacher distribution. ~0: all tokens pick the
  same prototype (collapse to one prototype); high: prototypes are used evenly.
* ``kl``: KL(teacher || student) per token, the part of the loss the student can still reduce.
* ``feature_std``: std across the batch's tokens of the L2-normalised student features, mean
  over channels, times sqrt(C): about 1 for spread-out features, 0 when they are constant.
"""

from __future__ import annotations

import math
from typing import Optional

import torch
import torch.nn.functional as F

ONE_PROTOTYPE = 0.05  # batch entropy below this fraction of log K: one prototype for all tokens
UNIFORM = 0.98  # token entropy above this fraction of log K: uniform teacher outputs
CONSTANT_FEATURES = 0.02  # feature_std below this: constant features


@torch.no_grad()
def collapse_stats(teacher_probs: torch.Tensor, student_logits: Optional[torch.Tensor] = None,
                   student_temp: float = 0.1, features: Optional[torch.Tensor] = None,
                   valid: Optional[torch.Tensor] = None) -> dict:
    """teacher_probs (..., K) per token; student_logits aligned (B, K, H, W); features (B, C, H, W)."""
    p = teacher_probs.float().reshape(-1, teacher_probs.shape[-1])
    keep = valid.reshape(-1) if valid is not None else None
    if keep is not None:
        p = p[keep]
    k = p.shape[-1]
    logp = torch.log(p.clamp_min(1e-12))
    stats = {
        "teacher_entropy": float(-(p * logp).sum(-1).mean()),
        "batch_entropy": float(_entropy(p.mean(0))),
        "log_k": math.log(k),
    }
    if student_logits is not None:
        s = F.log_softmax(student_logits.float().permute(0, 2, 3, 1).reshape(-1, k) / student_temp, -1)
        if keep is not None:
            s = s[keep]
        stats["kl"] = float((p * (logp - s)).sum(-1).mean())
    if features is not None:
        f = F.normalize(features.float(), dim=1).permute(0, 2, 3, 1).reshape(-1, features.shape[1])
        if keep is not None and len(f) == len(keep):
            f = f[keep]
        stats["feature_std"] = float(f.std(0).mean() * math.sqrt(f.shape[1])) if len(f) > 1 else 0.0
    return stats


def _entropy(p: torch.Tensor) -> torch.Tensor:
    return -(p * torch.log(p.clamp_min(1e-12))).sum()


def collapse_warnings(stats: dict) -> list[str]:
    """Human-readable warnings when the monitors say the representation collapsed."""
    log_k = stats["log_k"]
    out = []
    if stats["batch_entropy"] < ONE_PROTOTYPE * log_k:
        out.append(f"COLLAPSE: all tokens pick the same prototype (batch-mean entropy "
                   f"{stats['batch_entropy']:.3f} nats of log K = {log_k:.2f}, token entropy "
                   f"{stats['teacher_entropy']:.3f}); lower the learning rate, raise the teacher "
                   f"temperature warm-up, or use --centering sinkhorn")
    if stats["teacher_entropy"] > UNIFORM * log_k:
        out.append(f"COLLAPSE: teacher outputs are uniform (token entropy "
                   f"{stats['teacher_entropy']:.3f} of log K = {log_k:.2f}); lower the teacher "
                   f"temperature or the centre momentum")
    if "feature_std" in stats and stats["feature_std"] < CONSTANT_FEATURES:
        out.append(f"COLLAPSE: student features are constant across the batch (feature std "
                   f"{stats['feature_std']:.4f})")
    return out
