"""The FastAPI app: health, capabilities and jobs, behind a bearer token."""

from __future__ import annotations

import asyncio
import secrets
from contextlib import asynccontextmanager
from pathlib import Path
from typing import AsyncIterator, Optional

from fastapi import APIRouter, Depends, FastAPI, HTTPException
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from coredino_contract import JOB_KINDS
from coredino_contract.protocol import PROTOCOL_VERSION

from .. import __version__, catalogue
from ..codebook.discovery import CodebookCatalogue
from ..about import environment
from ..device import describe, pick_device
from ..engine import DEFAULT_CODEBOOK
from ..encoders import FAMILIES
from ..encoders.runtime import installed_runtimes
from .guards import add_guards
from .jobs import JobQueue
from .schemas import (Capabilities, CatalogueEntry, CodebookInfo, Health, JobList, JobRecord, JobSpec,
                      QueueInfo)


def create_app(token: str, codebook_dirs: list[Path], bound_host: str = "127.0.0.1") -> FastAPI:
    """The app; its job worker starts and stops with the server (the ASGI lifespan).

    bound_host: the address the server listens on (requests must name it or loopback as Host).
    """
    jobs = JobQueue()
    codebooks = CodebookCatalogue(codebook_dirs, DEFAULT_CODEBOOK)
    bearer = HTTPBearer(auto_error=False, description="the token `coredino serve` wrote to its token file")

    def authorised(credentials: Optional[HTTPAuthorizationCredentials] = Depends(bearer)) -> None:
        given = credentials.credentials.encode() if credentials else b""
        if not secrets.compare_digest(given, token.encode()):
            raise HTTPException(401, headers={"WWW-Authenticate": "Bearer"}, detail=(
                "missing or wrong token: send 'Authorization: Bearer <token>' with the token this "
                "backend wrote to its token file (it changes at every start; see service-<port>.json)"))

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        jobs.start()
        yield
        await asyncio.to_thread(jobs.close)

    app = FastAPI(title="coredino backend", version=__version__, lifespan=lifespan, redoc_url=None,
                  description="Classify aerial rasters with the coredino engine; see docs/protocol.md.")
    v1 = APIRouter(prefix="/v1", dependencies=[Depends(authorised)],
                   responses={401: {"description": "missing or wrong token"}})

    @app.get("/v1/health", tags=["service"])
    def health() -> Health:
        """Whether a backend answers here (no token needed)."""
        return Health(ok=True, protocol=PROTOCOL_VERSION)

    @v1.get("/capabilities", tags=["service"])
    def capabilities() -> Capabilities:
        """Device, model families, codebooks and queue of this backend."""
        running, queued = jobs.status()
        info = describe(pick_device("auto"))
        env = environment()
        return Capabilities(
            protocol=PROTOCOL_VERSION, version=__version__, device=info["device"],
            gpu=info.get("gpu"), gpu_memory_gb=info.get("gpu_memory_gb"), torch=info["torch"],
            gdal=env["gdal"], python=env["python"], python_version=env["python_version"],
            platform=env["platform"], package=env["package"],
            runtimes=installed_runtimes(), threads=info["threads"],
            model_families=sorted(FAMILIES), job_kinds=list(JOB_KINDS),
            codebooks=[CodebookInfo(**info) for info in codebooks.scan()],
            catalogue=[CatalogueEntry(**entry) for entry in catalogue.describe()],
            queue=QueueInfo(running=running, queued=queued))

    @v1.post("/jobs", status_code=202, tags=["jobs"])
    def submit(spec: JobSpec) -> JobRecord:
        """Queue a job; it runs after the jobs submitted before it."""
        return JobRecord(**jobs.submit(spec.kind, spec.params))

    @v1.get("/jobs", tags=["jobs"])
    def list_jobs() -> JobList:
        """Every job since the backend started, newest first."""
        return JobList(jobs=[JobRecord(**record) for record in jobs.records()])

    @v1.get("/jobs/{job_id}", tags=["jobs"], responses={404: {"description": "unknown job"}})
    def get_job(job_id: str) -> JobRecord:
        return JobRecord(**_found(jobs.get(job_id), job_id))

    @v1.post("/jobs/{job_id}/cancel", tags=["jobs"], responses={404: {"description": "unknown job"}})
    def cancel_job(job_id: str) -> JobRecord:
        """Cancel a job: a queued one at once, a running one at its next progress step."""
        return JobRecord(**_found(jobs.cancel(job_id), job_id))

    app.include_router(v1)
    add_guards(app, bound_host)
    return app


def _found(record: Optional[dict], job_id: str) -> dict:
    if record is None:
        raise HTTPException(404, detail=f"no job {job_id} on this backend (jobs are forgotten when it restarts)")
    return record
