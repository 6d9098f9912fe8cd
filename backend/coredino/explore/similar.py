"""Places like the clicked ones: cosine similarity of every cell to a query built from clicks.

Query (Rocchio's rule): ``q = unit(mean(unit(p_i))) - mean(unit(n_j))`` over the embeddings
``p_i`` of the positive clicks and ``n_j`` of the negative ones, in the embeddings' centred PCA
space; every cell gets ``cos(z, q)``. Centring (the vectors are relative to the raster's mean
feature) spreads the scores: raw CNN features all point roughly the same way, so their cosines
crowd near 1. Measured on the labelled Kampala patch (tests/backend/test_explore.py; ROC AUC of
buildings vs background over 30 random sets of 10 building + 5 background clicks, bundled model):
the stored centred PCA-32 scores 0.788 on average, the full features 0.788-0.794 (so PCA loses
nothing), a nearest-exemplar rule (max over positives minus max over negatives) 0.758, and without
negatives centring helps (0.770 vs 0.745 uncentred).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
from osgeo import gdal

from coredino_contract.naming import style_path
from coredino_contract.results import SIMILARITY_BINS, SimilarResult

from ..atomic import output_lock
from ..cog import AtomicCOG
from ..errors import UserError
from ..outputs import SIMILARITY, check_output
from ..params import SimilarParams
from ..progress import Progress
from ..styling import similarity_qml
from .embeddings import EmbeddingFile, resolve
from .rasters import cell_area, cell_of, windows

NODATA = -2.0  # outside the cosine range [-1, 1]


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), 1e-12)


def _vectors(emb: EmbeddingFile, points: Sequence[Sequence[float]], what: str) -> np.ndarray:
    out = []
    for point in points:
        x, y = float(point[0]), float(point[1])
        col, row = cell_of(emb.ds, emb.path, x, y)
        z, valid = emb.read(col, row, 1, 1)
        if not valid[0, 0]:
            raise UserError(f"{what} point ({x:.2f}, {y:.2f}) falls on a nodata cell of {emb.path}; "
                            f"click inside the classified area")
        out.append(z[0, 0])
    return np.asarray(out, np.float32).reshape(-1, emb.dims)


def query_vector(emb: EmbeddingFile, positives, negatives) -> np.ndarray:
    """The unit query vector of the module docstring."""
    neg = _vectors(emb, negatives, "negative") if negatives else None
    return rocchio(_vectors(emb, positives, "positive"), neg)


def rocchio(positives: np.ndarray, negatives: Optional[np.ndarray] = None) -> np.ndarray:
    """``unit(unit(mean(unit(p))) - mean(unit(n)))`` of (n, d) click embeddings (module docstring)."""
    q = _unit(_unit(positives).mean(0))
    if negatives is not None and len(negatives):
        q = q - _unit(negatives).mean(0)
    norm = float(np.linalg.norm(q))
    if norm < 1e-6:
        raise UserError("the positive and negative points describe the same place; click different ones")
    return (q / norm).astype(np.float32)


def similar(params: SimilarParams, progress: Optional[Progress] = None) -> SimilarResult:
    """Write the similarity COG of ``params.embeddings`` (or of the classification it belongs to)."""
    params.validate()
    start = time.perf_counter()
    progress = progress or Progress()
    emb = resolve(params.embeddings)
    qml_path = style_path(params.output)
    try:
        check_output(params.output, SIMILARITY, [params.embeddings, emb.path], params.overwrite,
                     sidecars=[(qml_path, None)])
        q = query_vector(emb, params.positives, params.negatives)
        area = cell_area(emb.ds, emb.path)
        counts = np.zeros(SIMILARITY_BINS, np.int64)
        lo, hi = np.inf, -np.inf
        with output_lock(params.output, [qml_path]), \
                AtomicCOG(params.output, emb.ds, gdal.GDT_Float32, NODATA, resampling="AVERAGE") as out:
            blocks = list(windows(emb.width, emb.height))
            for i, (x, y, w, h) in enumerate(blocks):
                progress.update(i / len(blocks), f"block {i + 1}/{len(blocks)}")
                z, valid = emb.read(x, y, w, h)
                score = (z @ q) / np.maximum(np.linalg.norm(z, axis=-1), 1e-12)
                score = np.where(valid, np.clip(score, -1.0, 1.0), NODATA).astype(np.float32)
                out.write(x, y, score)
                if valid.any():
                    values = score[valid]
                    lo, hi = min(lo, float(values.min())), max(hi, float(values.max()))
                    bins = np.clip(((values + 1.0) * SIMILARITY_BINS / 2).astype(np.int64), 0, SIMILARITY_BINS - 1)
                    counts += np.bincount(bins, minlength=SIMILARITY_BINS)
            if not np.isfinite(lo):
                lo = hi = 0.0
            tags = {key: emb.tags[key] for key in ("MODEL", "CODEBOOK_SHA256", "WEIGHTS_SHA256", "SOURCE")
                    if key in emb.tags}
            tags.update(COREDINO_SIMILARITY="cosine", EMBEDDINGS=Path(emb.path).name,
                        POSITIVES=_points(params.positives), NEGATIVES=_points(params.negatives))
            qml_lo = _percentile(counts, 0.5)
            out.sidecar(qml_path).write_text(
                similarity_qml(qml_lo, max(hi, qml_lo + 0.01)), encoding="utf-8")
            output = out.publish(tags)
    finally:
        emb.close()
    progress.update(1.0, "done")
    return SimilarResult(output, str(params.embeddings), int(counts.sum()), area, lo, hi,
                         [int(c) for c in counts], (-1.0, 1.0), time.perf_counter() - start)


def _points(points) -> str:
    return ";".join(f"{float(x):.3f},{float(y):.3f}" for x, y in points)


def _percentile(counts: np.ndarray, fraction: float) -> float:
    """The similarity below which ``fraction`` of the cells lie (bin resolution)."""
    total = counts.sum()
    if not total:
        return 0.0
    i = int(np.searchsorted(np.cumsum(counts), fraction * total))
    return -1.0 + 2.0 * i / SIMILARITY_BINS
