"""K-means in torch for large fits on a GPU: millions of features, thousands of centroids.

Each Lloyd iteration streams the features in chunks: scores ``x . c - |c|^2 / 2`` (l2) or
``x . c`` (spherical, unit rows) by one matmul per chunk, argmax, and the per-cluster sums. On
CUDA the features are held in bfloat16 (half the memory: 4M x 768 is 6 GB) and multiplied on the
tensor cores with float32 accumulation and float32 scores; the sums are a one-hot matmul, also
accumulated in float32, which unlike ``index_add_`` (atomics) is deterministic. On the CPU
everything is float32 and the sums are exact ``index_add_``.

Initialisation: ``kmeans||`` (scalable k-means++, Bahmani et al. 2012: a few rounds that each
sample about ``2k`` points with probability proportional to their squared distance, then a
weighted k-means++ over those candidates), or ``random`` (k distinct rows, like faiss). Empty
clusters are re-seeded by splitting a populated one, as faiss does. All random draws come from
one CPU generator seeded with ``seed``, so a seed gives the same centroids on a given device.
"""

from __future__ import annotations

from typing import Optional

import numpy as np
import torch
import torch.nn.functional as F

from ..progress import Progress

_SPLIT_EPS = 1.0 / 1024  # relative perturbation when a centroid is split to fill an empty one
SCORE_BUDGET = 400_000_000  # float32 scores per matmul (1.6 GB): 65536 rows x 6000 centroids


def torch_kmeans(x: np.ndarray | torch.Tensor, k: int, metric: str = "l2", seed: int = 0, niter: int = 20,
                 device: str | torch.device = "cuda", init: str = "kmeans||",
                 chunk: Optional[int] = None, progress: Optional[Progress] = None,
                 stats: Optional[dict] = None, dtype: Optional[torch.dtype] = None) -> np.ndarray:
    """Cluster the rows of ``x`` (n, d) into ``k`` float32 centroids, returned as a numpy array.

    x may be a numpy array or a tensor (on any device); it is copied to ``device`` in chunks.
    chunk: rows scored per matmul (default 65536 on CUDA, 8192 on the CPU), fewer when the
           score matrix (rows x centroids) would pass SCORE_BUDGET elements.

    metric: ``l2`` (plain k-means) or ``cosine`` (spherical: rows and centroids L2-normalised).
    dtype:  how the features are held and multiplied: bfloat16 on CUDA, float32 elsewhere by
            default (bfloat16 on the CPU runs the GPU arithmetic, for tests).
    stats:  if a dict is given, it receives ``objective``: per iteration, the sum of squared
            distances of the rows to their nearest centroid (before that iteration's update).
    """
    if metric not in ("cosine", "l2"):
        raise ValueError(f"metric must be cosine or l2, got {metric!r}")
    if init not in ("kmeans||", "random"):
        raise ValueError(f"init must be kmeans|| or random, got {init!r}")
    n, d = x.shape
    if not 1 <= k <= n:
        raise ValueError(f"cannot fit {k} clusters to {n} rows")
    device = torch.device(device)
    cuda = device.type == "cuda"
    spherical = metric == "cosine"
    chunk = chunk or (65536 if cuda else 8192)
    gen = torch.Generator().manual_seed(seed)
    dtype = dtype or (torch.bfloat16 if cuda else torch.float32)
    data = _upload(x, device, dtype, spherical, chunk)
    sq = None if spherical else _row_norms2(data, chunk)  # |x|^2 in float32, for the objective
    if init == "random":
        centroids = data[torch.randperm(n, generator=gen)[:k].to(device)].float()
    else:
        centroids = _kmeans_parallel(data, sq, k, gen, chunk, spherical)
    objective: list[float] = []
    for it in range(niter):
        if progress is not None:
            progress.update(it / niter, f"k-means iteration {it + 1}/{niter}")
        sums, counts, obj = _lloyd_pass(data, sq, centroids, chunk, spherical)
        objective.append(obj)
        centroids = _update(centroids, sums, counts, gen, spherical)
    if progress is not None:
        progress.update(1.0, "k-means done")
    if stats is not None:
        stats["objective"] = objective
    return centroids.cpu().numpy().astype(np.float32)


def _upload(x: np.ndarray | torch.Tensor, device: torch.device, dtype: torch.dtype,
            spherical: bool, chunk: int) -> torch.Tensor:
    """The rows on ``device`` in ``dtype`` (unit rows when spherical), converted chunk by chunk."""
    n, d = x.shape
    out = torch.empty((n, d), dtype=dtype, device=device)
    for i in range(0, n, chunk):
        if isinstance(x, torch.Tensor):
            part = x[i:i + chunk].to(device=device, dtype=torch.float32)
        else:
            part = torch.from_numpy(np.ascontiguousarray(x[i:i + chunk], dtype=np.float32)).to(device)
        if spherical:
            part = F.normalize(part, dim=1, eps=1e-12)
        out[i:i + chunk] = part.to(dtype)
    return out


def _row_norms2(data: torch.Tensor, chunk: int) -> torch.Tensor:
    return torch.cat([data[i:i + chunk].float().pow(2).sum(1) for i in range(0, len(data), chunk)])


def _scores(xb: torch.Tensor, c: torch.Tensor, bias: Optional[torch.Tensor]) -> torch.Tensor:
    """(m, k) float32 ``x . c (+ bias)``: low-precision inputs, float32 accumulation and result."""
    if xb.dtype == torch.float32:
        s = xb @ c.T
    else:
        cl = c.to(xb.dtype)
        try:
            s = torch.mm(xb, cl.T, out_dtype=torch.float32)
        except (NotImplementedError, RuntimeError, TypeError):
            s = (xb @ cl.T).float()
    if bias is not None:
        s += bias
    return s


def _rows(chunk: int, k: int, device: torch.device) -> int:
    """Rows per matmul so that the (rows, k) float32 scores stay within SCORE_BUDGET elements
    (an eighth of it on the CPU: 200 MB)."""
    budget = SCORE_BUDGET if device.type == "cuda" else SCORE_BUDGET // 8
    return max(256, min(chunk, budget // max(1, k)))


def _d2(data: torch.Tensor, sq: Optional[torch.Tensor], c: torch.Tensor, chunk: int,
        spherical: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Squared distance of every row to its nearest row of ``c``, and that row's index."""
    bias = None if spherical else -0.5 * c.pow(2).sum(1)
    chunk = _rows(chunk, len(c), data.device)
    best_d, best_i = [], []
    for i in range(0, len(data), chunk):
        s, idx = _scores(data[i:i + chunk], c, bias).max(1)
        base = 1.0 if spherical else 0.5 * sq[i:i + chunk]
        best_d.append((2 * (base - s)).clamp_(min=0))
        best_i.append(idx)
    return torch.cat(best_d), torch.cat(best_i)


def _kmeans_parallel(data: torch.Tensor, sq: Optional[torch.Tensor], k: int, gen: torch.Generator,
                     chunk: int, spherical: bool, rounds: int = 5, oversample: float = 2.0) -> torch.Tensor:
    """k-means|| initial centroids (float32, on the data's device)."""
    n, device = len(data), data.device
    first = int(torch.randint(n, (1,), generator=gen))
    picked = [torch.tensor([first])]
    dist, _ = _d2(data, sq, data[first:first + 1].float(), chunk, spherical)
    ell = oversample * k
    for _ in range(rounds):
        phi = float(dist.double().sum())
        if phi <= 0:
            break
        p = (ell * dist.double() / phi).clamp_(max=1.0).cpu()
        new = torch.nonzero(torch.rand(n, generator=gen, dtype=torch.float64) < p).flatten()
        if len(new) == 0:
            continue
        picked.append(new)
        d_new, _ = _d2(data, sq, data[new.to(device)].float(), chunk, spherical)
        dist = torch.minimum(dist, d_new)
    candidates = torch.unique(torch.cat(picked))  # sorted: independent of the round order
    cand = data[candidates.to(device)].float()
    if len(cand) <= k:
        rest = torch.randperm(n, generator=gen)
        rest = rest[~torch.isin(rest, candidates)][:k - len(cand)]
        return torch.cat([cand, data[rest.to(device)].float()])
    # weight each candidate by the rows nearest to it, then weighted k-means++ over candidates
    _, nearest = _d2(data, sq, cand, chunk, spherical)
    weights = torch.bincount(nearest, minlength=len(cand)).double()
    return cand[_weighted_kmeanspp(cand, weights, k, gen, spherical)]


def _weighted_kmeanspp(cand: torch.Tensor, weights: torch.Tensor, k: int, gen: torch.Generator,
                       spherical: bool) -> torch.Tensor:
    """Indices of ``k`` rows of ``cand`` chosen by k-means++ with row weights ``weights``."""
    m = len(cand)
    sq = cand.pow(2).sum(1)
    chosen = torch.empty(k, dtype=torch.long, device=cand.device)
    closest = torch.full((m,), float("inf"), dtype=torch.float64, device=cand.device)
    prob = weights.clone()
    for j in range(k):
        cum = torch.cumsum(prob, 0)
        total = float(cum[-1])
        if total <= 0:  # every remaining candidate coincides with a chosen one
            pick = int(torch.randint(m, (1,), generator=gen))
        else:
            u = float(torch.rand(1, generator=gen, dtype=torch.float64)) * total
            value = torch.tensor([u], dtype=cum.dtype, device=cum.device)
            pick = min(int(torch.searchsorted(cum, value, right=True)), m - 1)
        chosen[j] = pick
        c = cand[pick]
        d = (sq + c.pow(2).sum() - 2 * (cand @ c)).clamp_(min=0).double()
        closest = torch.minimum(closest, d)
        prob = weights * closest
    return chosen


def _lloyd_pass(data: torch.Tensor, sq: Optional[torch.Tensor], centroids: torch.Tensor,
                chunk: int, spherical: bool) -> tuple[torch.Tensor, torch.Tensor, float]:
    """Assign every row; return per-cluster sums (k, d) float32, counts (k,) and the objective."""
    k, d = centroids.shape
    bias = None if spherical else -0.5 * centroids.pow(2).sum(1)
    sums = torch.zeros((k, d), dtype=torch.float32, device=data.device)
    counts = torch.zeros(k, dtype=torch.long, device=data.device)
    obj = torch.zeros((), dtype=torch.float64, device=data.device)
    onehot_sums = data.dtype != torch.float32
    chunk = _rows(chunk, k, data.device)
    for i in range(0, len(data), chunk):
        xb = data[i:i + chunk]
        s, idx = _scores(xb, centroids, bias).max(1)
        base = 1.0 if spherical else 0.5 * sq[i:i + chunk]
        obj += (2 * (base - s)).clamp_(min=0).double().sum()
        counts += torch.bincount(idx, minlength=k)
        if onehot_sums:  # deterministic tensor-core sums (index_add_ on CUDA uses atomics)
            onehot = F.one_hot(idx, k).to(xb.dtype)
            try:
                sums += torch.mm(onehot.T, xb, out_dtype=torch.float32)
            except (NotImplementedError, RuntimeError, TypeError):
                sums += (onehot.T.float() @ xb.float())
        else:
            sums.index_add_(0, idx, xb)
    return sums, counts, float(obj)


def _update(centroids: torch.Tensor, sums: torch.Tensor, counts: torch.Tensor,
            gen: torch.Generator, spherical: bool) -> torch.Tensor:
    """Means of the clusters; an empty cluster takes half of a populated one (faiss's split)."""
    new = torch.where(counts[:, None] > 0, sums / counts.clamp(min=1)[:, None].float(), centroids)
    counts = counts.cpu().clone()
    empty = torch.nonzero(counts == 0).flatten().tolist()
    if empty:
        sign = torch.ones(new.shape[1], device=new.device)
        sign[1::2] = -1
        for j in empty:
            weights = (counts - 1).clamp(min=0).double()
            if float(weights.sum()) <= 0:
                break
            m = int(torch.multinomial(weights, 1, generator=gen))
            new[j] = new[m] * (1 + _SPLIT_EPS * sign)
            new[m] = new[m] * (1 - _SPLIT_EPS * sign)
            counts[j] = counts[m] // 2
            counts[m] -= counts[j]
    if spherical:
        new = F.normalize(new, dim=1, eps=1e-12)
    return new
