"""Nearest-centroid assignment by matmul + argmax, chunked, on the features' device.

Scores: cosine ``x . c`` with unit centroids (the argmax does not depend on ``|x|``, so features
need no normalising); l2 ``x . c - |c|^2 / 2`` (the same argmin as ``|x - c|^2``); ip ``x . c``
with the centroids as stored (faiss ``IndexFlatIP``, the geocentroids notebook's search).

On the CPU the search is faiss's blocked exact inner-product search for the best two centroids
(1.2-1.8x faster than the chunked matmul: no score matrix is written and read back), then an
exact float64 re-scoring of every row whose two best scores lie within float32's rounding bound
of each other, so the ids are those of an exact search whatever the summation order.

On other devices (a GPU) the matmul and the argmax are fused by blocks (:class:`_Scorer`): rows
and centroids in cache-sized blocks with a running best per row, so no score matrix is written
to memory and read back. Scores are always float32, also for bfloat16/float16 features on CUDA
(cast block by block, with TF32 off): a low-precision matmul, even with centred centroids and the top 8 re-scored in float32,
changed 0.2-1.4 % of the ids on real-imagery features at k = 2000 (bfloat16), while the float32
matmul (65536 x 768 x 6000: 0.6 TFLOP) costs milliseconds next to the encoder. Exact ties go to
the lowest centroid index; scores within float32 rounding (about 1e-6 relative) of each other may
resolve differently on CPU and GPU, whose summation orders differ.
"""

from __future__ import annotations

import contextlib
from typing import Iterator, Optional

import numpy as np
import torch
import torch.nn.functional as F

from ..threads import current_policy, split_map, split_rows
from .codebook import Codebook


@contextlib.contextmanager
def _full_float32(device: torch.device) -> Iterator[None]:
    """No TF32 (10-bit mantissa) for CUDA float32 matmuls in this block, whatever the caller set."""
    if device.type != "cuda":
        yield
        return
    saved = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision("highest")
    try:
        yield
    finally:
        torch.set_float32_matmul_precision(saved)


#: A (rows x centroids) float32 score block of the fused search: 8192 x 1024 x 4 B = 32 MB, meant
#: to stay in the GPU's L2 cache (50 MB on an H100 or H200) between the matmul that writes it and
#: the max that reads it, so that scores do not travel to HBM and back. Smaller blocks cost more
#: kernel launches (about 17 per 8192 rows and 6000 centroids, each 5-10 us of host time in eager
#: PyTorch): about 530 per km² for the default model's 250,000 cells, 1000 with 4096-row blocks.
#: Not tuned on a GPU (none was available): ``bench/gpu.py`` sweeps the row block.
ROW_BLOCK, CENTROID_BLOCK = 8192, 1024


class _Scorer:
    """Float32 centroids (unit for cosine, as stored for ip) and the l2 bias ``-|c|^2 / 2``.

    The search is a blocked running argmax: for each block of rows, each block of centroids is
    scored (matmul, plus the l2 bias) and reduced to its best score and index at once; the best
    block is picked at the end. No (rows x k) score matrix exists (65,536 x 6000 float32 would be
    1.5 GB per chunk). Ties go to the lowest centroid index, as ``argmax`` over the whole row:
    ``max`` returns a block's first best, and the final ``argmax`` over blocks the first block
    holding the best score (NaN counts as the best, as for ``argmax``).
    """

    def __init__(self, centroids: torch.Tensor, metric: str, rows: int = ROW_BLOCK,
                 columns: int = CENTROID_BLOCK) -> None:
        self.rows = rows
        c = centroids.float()
        bias: Optional[torch.Tensor] = None
        if metric == "cosine":
            c = F.normalize(c, dim=1)
        elif metric == "l2":
            bias = -0.5 * (c * c).sum(1)
        elif metric != "ip":
            raise ValueError(f"metric must be cosine, l2 or ip, got {metric!r}")
        self.bias = bias
        self.centroids_t = c.T.contiguous()
        starts = range(0, len(c), columns)
        self.blocks = [(self.centroids_t[:, j:j + columns].contiguous(),
                        None if bias is None else bias[j:j + columns]) for j in starts]
        self.offsets = torch.tensor(list(starts), dtype=torch.long, device=c.device)

    @torch.no_grad()
    def __call__(self, x: torch.Tensor, chunk: int) -> torch.Tensor:
        d = self.centroids_t.shape[0]
        if x.ndim != 2 or x.shape[1] != d:
            raise ValueError(f"features must be (n, {d}), got {tuple(x.shape)}")
        out = torch.empty(x.shape[0], dtype=torch.long, device=x.device)
        step = max(1, min(chunk, self.rows))
        with torch.autocast(device_type=x.device.type, enabled=False), _full_float32(x.device):
            for i0 in range(0, x.shape[0], step):
                out[i0:i0 + step] = self._block(x[i0:i0 + step].float())
        return out

    def _block(self, x: torch.Tensor) -> torch.Tensor:
        """Ids of the rows of ``x``: each centroid block's (first) best, then the first best block."""
        best = torch.empty(len(self.blocks), len(x), device=x.device)
        where = torch.empty(len(self.blocks), len(x), dtype=torch.long, device=x.device)
        for b, (c_t, bias) in enumerate(self.blocks):
            scores = x @ c_t
            if bias is not None:
                scores += bias
            torch.max(scores, 1, out=(best[b], where[b]))
        block = best.argmax(0)
        return where.gather(0, block[None])[0] + self.offsets[block]


class _ExactCpuScorer:
    """faiss top-2 search in float32, then a float64 re-score of the rows it cannot tell apart.

    Scores are inner products with the augmented centroids ``[c, bias]`` and features ``[x, 1]``
    (the bias only for l2). Any float32 summation order is within ``g = (d + 1) * 2**-23``
    relative error of the exact value: ``|s_hat - s| <= g * |x'| * |c'|`` (Higham's bound, with
    a factor-2 margin). When the best two scores differ by more than twice that, the best is the
    exact best; other rows are scored in float64 against every centroid (ties: lowest index).
    """

    def __init__(self, scorer: _Scorer) -> None:
        import faiss

        c = scorer.centroids_t.T.contiguous().numpy()
        if scorer.bias is not None:
            c = np.hstack([c, scorer.bias.numpy()[:, None]])
        self.augment = scorer.bias is not None
        self.centroids64 = c.astype(np.float64)
        self.max_norm = float(np.linalg.norm(self.centroids64, axis=1).max())
        self.rel = 2.0 * (c.shape[1] + 1) * 2.0 ** -23
        self.index = faiss.IndexFlatIP(c.shape[1])
        self.index.add(np.ascontiguousarray(c, dtype=np.float32))

    def __call__(self, x: torch.Tensor, chunk: int) -> torch.Tensor:
        d = self.centroids64.shape[1] - self.augment
        if x.ndim != 2 or x.shape[1] != d:
            raise ValueError(f"features must be (n, {d}), got {tuple(x.shape)}")
        q = np.ascontiguousarray(x.detach().float().numpy())
        if self.augment:
            q = np.hstack([q, np.ones((len(q), 1), np.float32)])
        ids = np.empty(len(q), np.int64)
        for i0 in range(0, len(q), chunk):
            ids[i0:i0 + chunk] = self._search(q[i0:i0 + chunk])
        return torch.from_numpy(ids)

    def _search(self, q: np.ndarray) -> np.ndarray:
        """Ids of the rows of ``q``, the rows split among the compute workers (threads.py)."""
        if self.index.ntotal == 1:
            return np.zeros(len(q), np.int64)
        parts = split_rows(len(q), current_policy().threads, least=256)
        return np.concatenate(split_map(lambda part: self._search_part(q[part]), parts))

    def _search_part(self, q: np.ndarray) -> np.ndarray:
        import faiss

        faiss.omp_set_num_threads(1)  # this worker's share, single-threaded (threads.split_map)
        scores, ids = self.index.search(q, 2)
        bound = self.rel * np.linalg.norm(q, axis=1) * self.max_norm
        unsure = ~(scores[:, 0] - scores[:, 1] > 2 * bound)  # NaN scores are unsure too
        if unsure.any():
            ids[unsure, 0] = (q[unsure].astype(np.float64) @ self.centroids64.T).argmax(1)
        return ids[:, 0]


def _scorer_for(centroids: torch.Tensor, metric: str):
    scorer = _Scorer(centroids, metric)
    return _ExactCpuScorer(scorer) if centroids.device.type == "cpu" else scorer


def assign(features: torch.Tensor, centroids: torch.Tensor, metric: str,
           chunk: int = 65536) -> torch.Tensor:
    """Index (n,) of the nearest of ``centroids`` (k, d) for each row of ``features`` (n, d).

    Runs on the features' device (exact search on the CPU); ``chunk`` rows at a time bound memory.
    """
    return _scorer_for(centroids.to(features.device), metric)(features, chunk)


class Assigner:
    """A codebook's centroids held on one device, built once and applied to many feature batches."""

    def __init__(self, codebook: Codebook, device: torch.device | str, chunk: int = 65536) -> None:
        self.device = torch.device(device)
        self.chunk = chunk
        self._scorer = _scorer_for(torch.from_numpy(codebook.centroids).to(self.device), codebook.metric)

    def __call__(self, features: torch.Tensor) -> torch.Tensor:
        """Nearest-centroid ids (n,) on this assigner's device for features (n, d) of any float dtype."""
        return self._scorer(features.to(self.device), self.chunk)
