"""Request and response models of protocol version 1; they make /openapi.json describe the API.

Job parameters are the engine's own dataclasses (:mod:`coredino.params`), validated by pydantic,
so the service accepts exactly the fields the engine has. Every model forbids unknown fields,
which also applies to the dataclasses nested in it.
"""

from __future__ import annotations

from typing import Annotated, Literal, Optional, Union

from fastapi import Body
from pydantic import BaseModel, ConfigDict, Field

from ..engine import BatchResult, ClassifyResult
from ..explore.polygonize import PolygonizeResult
from ..explore.reclassify import ReclassifyResult
from ..explore.similar import SimilarResult
from ..params import BatchParams, ClassifyParams, FitParams, PolygonizeParams, ReclassifyParams, SimilarParams
from .jobs import FitResult

JobState = Literal["queued", "running", "done", "failed", "cancelled"]
JobKind = Literal["classify", "batch", "fit-codebook", "similar", "reclassify", "polygonize"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Health(_Model):
    ok: bool
    protocol: int


class CodebookInfo(_Model):
    name: str = Field(description="file name")
    path: str = Field(description="absolute path on the backend's machine (pass it as options.codebook)")
    k: int = Field(description="number of clusters")
    metric: str
    model: str = Field(description="encoder the codebook was fitted on, e.g. core-dino:n@19")
    gsd: Optional[float] = Field(description="metres per pixel the rasters are resampled to")
    patch: int = Field(description="pixels per output cell")
    tile: int
    border: int
    default: bool = Field(description="the bundled codebook, used when options.codebook is null")


class QueueInfo(_Model):
    running: Optional[str] = Field(description="id of the running job")
    queued: int = Field(description="jobs waiting to run")


class Capabilities(_Model):
    protocol: int
    version: str = Field(description="coredino version")
    device: str = Field(description="cpu, cuda or mps: where jobs with device 'auto' run")
    gpu: Optional[str] = None
    gpu_memory_gb: Optional[float] = None
    torch: str
    model_families: list[str]
    codebooks: list[CodebookInfo]
    queue: QueueInfo


class ClassifySpec(_Model):
    kind: Literal["classify"]
    params: ClassifyParams


class BatchSpec(_Model):
    kind: Literal["batch"]
    params: BatchParams


class FitSpec(_Model):
    kind: Literal["fit-codebook"]
    params: FitParams


class SimilarSpec(_Model):
    kind: Literal["similar"]
    params: SimilarParams


class ReclassifySpec(_Model):
    kind: Literal["reclassify"]
    params: ReclassifyParams


class PolygonizeSpec(_Model):
    kind: Literal["polygonize"]
    params: PolygonizeParams


JobSpec = Annotated[Union[ClassifySpec, BatchSpec, FitSpec, SimilarSpec, ReclassifySpec, PolygonizeSpec],
                    Body(discriminator="kind")]


class JobRecord(_Model):
    id: str
    kind: JobKind
    state: JobState
    progress: float = Field(ge=0, le=1)
    message: str
    created: str = Field(description="ISO 8601, UTC")
    started: Optional[str]
    finished: Optional[str]
    result: Union[ClassifyResult, BatchResult, FitResult, SimilarResult, ReclassifyResult,
                  PolygonizeResult, None] = Field(
        description="when done: the engine's result for the job's kind")
    error: Optional[str] = Field(description="when failed: a one-line message")


class JobList(_Model):
    jobs: list[JobRecord] = Field(description="newest first")
