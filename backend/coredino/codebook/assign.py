"""Nearest-centroid assignment by matmul + argmax, chunked, on the features' device.

Scores: cosine ``x . c`` with unit centroids (the argmax does not depend on ``|x|``, so features
need no normalising); l2 ``x . c - |c|^2 / 2`` (the same argmin as ``|x - c|^2``).

Float32 features on the CPU are scored exactly in float32. Anywhere else (low-precision features,
or CUDA, where float32 matmuls may run as TF32) the matmul runs in the features' dtype and the
best ``RERANK`` candidates are re-scored in float32 element-wise. The ids then equal the float32
ones unless the float32 best falls outside the low-precision top ``RERANK``, or two centroids'
float32 scores tie to within float32 rounding (about 1e-6 relative), where either id may win.
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F

from .file import Codebook

RERANK = 8


def _prepare(centroids: torch.Tensor, metric: str) -> tuple[torch.Tensor, Optional[torch.Tensor]]:
    """Float32 centroids (unit for cosine) and the l2 bias ``-|c|^2 / 2`` (None for cosine)."""
    c = centroids.float()
    if metric == "cosine":
        return F.normalize(c, dim=1), None
    if metric == "l2":
        return c, -0.5 * (c * c).sum(1)
    raise ValueError(f"metric must be cosine or l2, got {metric!r}")


@torch.no_grad()
def _assign(x: torch.Tensor, c32: torch.Tensor, bias32: Optional[torch.Tensor],
            c_low: torch.Tensor, bias_low: Optional[torch.Tensor], chunk: int) -> torch.Tensor:
    if x.ndim != 2 or x.shape[1] != c32.shape[1]:
        raise ValueError(f"features must be (n, {c32.shape[1]}), got {tuple(x.shape)}")
    exact = x.dtype == torch.float32 and x.device.type == "cpu"
    rerank = min(RERANK, c32.shape[0])
    out = torch.empty(x.shape[0], dtype=torch.long, device=x.device)
    with torch.autocast(device_type=x.device.type, enabled=False):
        for i0 in range(0, x.shape[0], chunk):
            xb = x[i0:i0 + chunk]
            scores = xb @ (c32 if exact else c_low).T
            if bias32 is not None:
                scores += bias32 if exact else bias_low
            if exact:
                out[i0:i0 + chunk] = scores.argmax(1)
                continue
            cand = scores.topk(rerank, dim=1).indices
            del scores
            xb32 = xb.float()
            best = torch.stack([(c32[cand[:, r]] * xb32).sum(1) for r in range(rerank)], 1)
            if bias32 is not None:
                best += bias32[cand]
            out[i0:i0 + chunk] = cand.gather(1, best.argmax(1, keepdim=True)).squeeze(1)
    return out


def assign(features: torch.Tensor, centroids: torch.Tensor, metric: str,
           chunk: int = 65536) -> torch.Tensor:
    """Index (n,) of the nearest of ``centroids`` (k, d) for each row of ``features`` (n, d).

    Runs on the features' device; ``chunk`` rows at a time bound memory to ``chunk * k`` scores.
    """
    c32, bias32 = _prepare(centroids.to(features.device), metric)
    low = None if bias32 is None else bias32.to(features.dtype)
    return _assign(features, c32, bias32, c32.to(features.dtype), low, chunk)


class Assigner:
    """A codebook's centroids held on one device, built once and applied to many feature batches.

    On the CPU features are scored in float32; on CUDA in their own dtype with float32 re-ranking.
    """

    def __init__(self, codebook: Codebook, device: torch.device | str, chunk: int = 65536) -> None:
        self.device = torch.device(device)
        self.chunk = chunk
        centroids = torch.from_numpy(codebook.centroids).to(self.device)
        self.c32, self.bias32 = _prepare(centroids, codebook.metric)
        self._low: dict[torch.dtype, tuple[torch.Tensor, Optional[torch.Tensor]]] = {}

    def __call__(self, features: torch.Tensor) -> torch.Tensor:
        """Nearest-centroid ids (n,) on this assigner's device for features (n, d)."""
        features = features.to(self.device)
        if self.device.type == "cpu":
            features = features.float()
        dtype = features.dtype
        if dtype not in self._low:
            bias = None if self.bias32 is None else self.bias32.to(dtype)
            self._low[dtype] = (self.c32.to(dtype), bias)
        return _assign(features, self.c32, self.bias32, *self._low[dtype], self.chunk)
