"""Request and response models of the protocol; they make /openapi.json describe the API.

Job specs and results are generated from the contract's table of job kinds
(:data:`coredino_contract.JOB_KINDS`): the parameters are the engine's own dataclasses,
validated by pydantic, so the service accepts exactly the fields the engine has. Every model
forbids unknown fields, which also applies to the dataclasses nested in it.
"""

from __future__ import annotations

from typing import Annotated, Literal, Optional, Union

from fastapi import Body
from pydantic import BaseModel, ConfigDict, Field, create_model

from coredino_contract import JOB_KINDS, JOB_STATES, JobKind


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
    license: str = Field(description="licence of the model the codebook's features come from")


class CatalogueFile(_Model):
    path: str = Field(description="inside the entry's folder on the backend's machine")
    url: str
    sha256: Optional[str] = Field(description="pinned, or recorded at the first download; null: not yet known")
    pinned: bool
    present: bool


class CatalogueEntry(_Model):
    name: str = Field(description="pass it as options.codebook (when codebook is not 'fit') or as --model")
    title: str
    license: str
    gsd: float = Field(description="metres per pixel the model works at")
    recipe: str = Field(description="how the features are made")
    sources: list[str]
    codebook: Literal["bundled", "import", "fit"] = Field(
        description="bundled; import: built from the published files on first use; fit: fit your own (cluster)")
    folder: Optional[str] = Field(description="where its files are kept on the backend's machine")
    ready: bool = Field(description="every file present: usable without network")
    files: list[CatalogueFile]


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
    gdal: Optional[str] = Field(None, description="GDAL version of the backend's Python")
    python: Optional[str] = Field(None, description="the backend's Python executable")
    python_version: Optional[str] = None
    platform: Optional[str] = None
    package: Optional[str] = Field(None, description="folder the coredino package is imported from")
    runtimes: list[str] = Field(default_factory=list, description="encoder runtimes installed "
                                "(torch, onnx); a job's runtime 'auto' picks the fastest exact one")
    threads: Optional[int] = Field(None, description="CPU threads the engine uses")
    model_families: list[str]
    job_kinds: list[str] = Field(description="the job kinds this backend runs")
    codebooks: list[CodebookInfo]
    catalogue: list[CatalogueEntry] = Field(description="named models and codebooks, with licences")
    queue: QueueInfo


def _spec_model(kind: JobKind) -> type[_Model]:
    """``{"kind": "<name>", "params": <the kind's parameter dataclass>}``."""
    title = "".join(part.title() for part in kind.name.split("-"))
    return create_model(f"{title}Spec", __base__=_Model, kind=(Literal[kind.name], ...),
                        params=(kind.params, ...))


JobSpec = Annotated[Union[tuple(_spec_model(kind) for kind in JOB_KINDS.values())],
                    Body(discriminator="kind")]
JobResult = Optional[Union[tuple(kind.result for kind in JOB_KINDS.values())]]


class JobRecord(_Model):
    id: str
    kind: Literal[tuple(JOB_KINDS)]
    state: Literal[JOB_STATES]
    progress: float = Field(ge=0, le=1)
    message: str
    created: str = Field(description="ISO 8601, UTC")
    started: Optional[str]
    finished: Optional[str]
    result: JobResult = Field(description="when done: the engine's result for the job's kind")
    error: Optional[str] = Field(description="when failed: a one-line message")


class JobList(_Model):
    jobs: list[JobRecord] = Field(description="newest first")
