"""The parameter dataclasses every door sends the engine (defined in :mod:`coredino_contract`)."""

from coredino_contract.params import (
    BatchParams,
    ClassifyOptions,
    ClassifyParams,
    ClusterParams,
    FitParams,
    ModelSpec,
    PolygonizeParams,
    ReclassifyParams,
    SimilarParams,
)

__all__ = ["BatchParams", "ClassifyOptions", "ClassifyParams", "ClusterParams", "FitParams", "ModelSpec",
           "PolygonizeParams", "ReclassifyParams", "SimilarParams"]
