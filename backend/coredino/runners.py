"""The engine function behind each job kind; the CLI and the service dispatch through :func:`run`."""

from __future__ import annotations

from typing import Any, Callable, Optional

from coredino_contract import JOB_KINDS, FitResult, kind_of

from . import engine
from .cluster import cluster
from .explore.learn import learn
from .explore.levels import level_views
from .explore.polygonize import polygonize
from .explore.reclassify import reclassify
from .explore.similar import similar
from .params import FitParams
from .progress import Progress


def _fit(params: FitParams, progress: Progress) -> FitResult:
    codebook = engine.fit_codebook(params, progress)
    return FitResult(params.output, codebook.k, codebook.dim, codebook.metric,
                     int(codebook.recipe.get("n_features") or 0))


RUNNERS: dict[str, Callable[[Any, Progress], Any]] = {
    "classify": engine.classify, "batch": engine.batch, "fit-codebook": _fit, "cluster": cluster,
    "similar": similar, "reclassify": reclassify, "polygonize": polygonize, "levels": level_views,
    "learn": learn}


def run(params: Any, progress: Optional[Progress] = None) -> Any:
    """Validate ``params`` and run the job kind they belong to; returns the kind's result."""
    params.validate()
    return RUNNERS[kind_of(params).name](params, progress or Progress())
