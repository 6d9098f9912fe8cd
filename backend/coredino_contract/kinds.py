"""The table of job kinds: each kind's parameter and result dataclass and how users call it.

Adding a job kind: a params and a result dataclass (params.py, results.py), a row here, a runner
in ``coredino/runners.py``, a CLI verb and a Processing algorithm (docs/extending.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .codec import from_json, to_json
from .params import (BatchParams, ClassifyParams, ClusterParams, FitParams, LearnParams, LevelsParams,
                     PolygonizeParams, ReclassifyParams, SimilarParams)
from .results import (BatchResult, ClassifyResult, ClusterResult, FitResult, LearnResult, LevelsResult,
                      PolygonizeResult, ReclassifyResult, SimilarResult)

JOB_STATES = ("queued", "running", "done", "failed", "cancelled")
FINAL_STATES = ("done", "failed", "cancelled")


@dataclass(frozen=True)
class JobKind:
    """name: the ``kind`` of a job spec; title: what the user calls the job's product in messages."""

    name: str
    params: type
    result: type
    title: str


JOB_KINDS: dict[str, JobKind] = {kind.name: kind for kind in (
    JobKind("classify", ClassifyParams, ClassifyResult, "The classification"),
    JobKind("batch", BatchParams, BatchResult, "The batch classification"),
    JobKind("fit-codebook", FitParams, FitResult, "The codebook"),
    JobKind("cluster", ClusterParams, ClusterResult, "The clustering"),
    JobKind("similar", SimilarParams, SimilarResult, "Find similar"),
    JobKind("reclassify", ReclassifyParams, ReclassifyResult, "The class map"),
    JobKind("polygonize", PolygonizeParams, PolygonizeResult, "Polygonize"),
    JobKind("levels", LevelsParams, LevelsResult, "The coarser views"),
    JobKind("learn", LearnParams, LearnResult, "Learn"),
)}


def kind_of(params: Any) -> JobKind:
    """The job kind whose parameter class ``params`` is an instance of."""
    for kind in JOB_KINDS.values():
        if type(params) is kind.params:
            return kind
    raise TypeError(f"{type(params).__name__} is not the parameter class of a job kind")


def job_spec(params: Any) -> dict:
    """The JSON job spec of docs/protocol.md: ``{"kind": ..., "params": {...}}``."""
    return {"kind": kind_of(params).name, "params": to_json(params)}


def parse_result(kind: str, data: dict) -> Any:
    """A finished job's ``result`` (JSON) as the kind's result dataclass."""
    return from_json(JOB_KINDS[kind].result, data or {})
