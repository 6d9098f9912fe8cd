"""Clustering without a codebook: K-means on a raster's own features, then its class map."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Optional

from coredino_contract.naming import codebook_path
from coredino_contract.results import ClusterResult

from . import catalogue
from .encoders import ModelSpec
from .engine import classify, fit_codebook
from .errors import UserError
from .params import ClassifyOptions, ClassifyParams, ClusterParams, FitParams
from .progress import Progress


def default_tiling(model: ModelSpec) -> tuple[int, int]:
    """(tile, border) in patches: about 384 px tiles with a sixth of context on each side."""
    if model.family == "dinov2-processor":
        return 32, 6  # the processor's 224 px tile in 7 px cells
    if model.family == "dinov2":
        return 16, 3  # 224 px: DINOv2's training size
    return (48, 6) if model.layer == 16 else (24, 3)


def cluster(params: ClusterParams, progress: Optional[Progress] = None) -> ClusterResult:
    """Fit ``params.k`` clusters on the input's features, save the codebook, classify the input."""
    start = time.perf_counter()
    params.validate()
    progress = progress or Progress()
    model = params.model or catalogue.model_spec("default")
    tile, border = default_tiling(model)
    tile, border = params.tile or tile, params.border if params.border is not None else border
    book = Path(codebook_path(params.output))
    if book.resolve() == Path(params.input).resolve():
        raise UserError(f"{params.output}: its codebook {book.name} would overwrite the input")
    fit = FitParams([params.input], str(book), model, params.gsd, tile, border, params.k,
                    "cosine", params.max_features, params.niter, params.seed, params.device,
                    params.batch_size, params.bands)
    try:
        codebook = fit_codebook(fit, progress.scaled(0, 0.5))
        options = ClassifyOptions(codebook=str(book), device=params.device,
                                  batch_size=params.batch_size, bands=params.bands, rgb=params.rgb)
        result = classify(ClassifyParams(params.input, params.output, options),
                          progress.scaled(0.5, 1), codebook=codebook)
    except BaseException:
        book.unlink(missing_ok=True)
        raise
    return ClusterResult(params.output, str(book), codebook.k, result.classes,
                         time.perf_counter() - start, result.rgb_output, result.warnings)
