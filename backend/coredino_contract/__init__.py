"""The contract between every door (CLI, HTTP service, QGIS plugin, Processing) and the engine.

Standard library only: the backend imports it, and the QGIS plugin carries a copy
(``coredino_qgis/contract``, made by ``make vendor``; a test pins it to this source). It holds
the parameter and result dataclasses of every job kind, the table of job kinds, the file-naming
rules, the protocol version and the error types: every rule both sides need, written once.
"""

from .errors import Cancelled, UserError
from .kinds import FINAL_STATES, JOB_KINDS, JOB_STATES, JobKind, job_spec, kind_of, parse_result
from .params import (
    BatchParams,
    ClassifyOptions,
    ClassifyParams,
    ClusterParams,
    FitParams,
    LearnParams,
    LevelsParams,
    ModelSpec,
    PolygonizeParams,
    ReclassifyParams,
    SimilarExamples,
    SimilarParams,
    parse_model,
)
from .results import (
    BatchResult,
    ClassArea,
    ClassifyResult,
    ClusterResult,
    FitResult,
    LearnResult,
    LevelsResult,
    PolygonizeResult,
    ReclassifyResult,
    SimilarResult,
)

__all__ = [
    "BatchParams", "BatchResult", "Cancelled", "ClassArea", "ClassifyOptions", "ClassifyParams",
    "ClassifyResult", "ClusterParams", "ClusterResult", "FINAL_STATES", "FitParams", "FitResult", "JOB_KINDS", "JOB_STATES", "JobKind",
    "ModelSpec", "PolygonizeParams", "PolygonizeResult", "ReclassifyParams", "ReclassifyResult",
    "SimilarParams", "SimilarResult", "UserError", "LearnParams", "LearnResult", "LevelsParams",
    "LevelsResult", "SimilarExamples", "job_spec", "kind_of", "parse_model", "parse_result",
]
