"""A job queue: one worker thread runs engine jobs in submission order, one at a time."""

from __future__ import annotations

import logging
import queue
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Optional

from ..errors import Cancelled, UserError
from ..progress import Progress
from ..runners import run

log = logging.getLogger(__name__)

KEEP_FINISHED = 100  # finished jobs remembered (newest first) ...
KEEP_FINISHED_S = 24 * 3600.0  # ... and for at most this long after they finished


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


@dataclass
class Job:
    """A job's record; every field is read and written under the queue's lock."""

    id: str
    kind: str
    params: Any
    state: str = "queued"
    progress: float = 0.0
    message: str = "queued"
    created: str = field(default_factory=_now)
    started: Optional[str] = None
    finished: Optional[str] = None
    result: Any = None
    error: Optional[str] = None
    cancel: threading.Event = field(default_factory=threading.Event)
    ended: Optional[float] = None  # time.monotonic() when it finished (for pruning)

    def record(self) -> dict[str, Any]:
        """The protocol's job record (without params and the cancel event)."""
        return {name: getattr(self, name) for name in (
            "id", "kind", "state", "progress", "message", "created", "started", "finished",
            "result", "error")}


def prune_finished(jobs: dict[str, Job], keep: int, keep_s: float) -> None:
    """Forget finished jobs beyond the ``keep`` newest and those finished over ``keep_s`` ago
    (call with the queue's lock held); queued and running jobs are always kept."""
    finished = [job for job in jobs.values() if job.ended is not None]
    now = time.monotonic()
    for i, job in enumerate(sorted(finished, key=lambda j: j.ended, reverse=True)):
        if i >= keep or now - job.ended > keep_s:
            del jobs[job.id]


class JobQueue:
    """Runs jobs through the engine in a worker thread, independent of any client connection."""

    def __init__(self, keep: int = KEEP_FINISHED, keep_s: float = KEEP_FINISHED_S) -> None:
        self.keep, self.keep_s = keep, keep_s
        self._jobs: dict[str, Job] = {}
        self._lock = threading.Lock()
        self._pending: queue.Queue[Optional[Job]] = queue.Queue()
        self._worker = threading.Thread(target=self._work, name="coredino-jobs", daemon=True)

    def start(self) -> None:
        self._worker.start()

    def close(self, timeout: float = 10.0) -> None:
        """Cancel every unfinished job and wait (bounded) for the running one to clean up."""
        with self._lock:
            for job in self._jobs.values():
                self._cancel(job)
        self._pending.put(None)
        if self._worker.is_alive():
            self._worker.join(timeout)
            if self._worker.is_alive():
                log.warning("the running job did not stop within %.0f s; exiting anyway", timeout)

    def submit(self, kind: str, params: Any) -> dict[str, Any]:
        job = Job(uuid.uuid4().hex, kind, params)
        with self._lock:
            prune_finished(self._jobs, self.keep, self.keep_s)
            self._jobs[job.id] = job
            record = job.record()
        self._pending.put(job)
        return record

    def get(self, job_id: str) -> Optional[dict[str, Any]]:
        with self._lock:
            job = self._jobs.get(job_id)
            return job.record() if job else None

    def records(self) -> list[dict[str, Any]]:
        """Every job's record, newest first."""
        with self._lock:
            return [job.record() for job in reversed(self._jobs.values())]

    def cancel(self, job_id: str) -> Optional[dict[str, Any]]:
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None:
                return None
            self._cancel(job)
            return job.record()

    def status(self) -> tuple[Optional[str], int]:
        """The running job's id (or None) and the number of queued jobs."""
        with self._lock:
            running = next((j.id for j in self._jobs.values() if j.state == "running"), None)
            return running, sum(j.state == "queued" for j in self._jobs.values())

    def _cancel(self, job: Job) -> None:
        """With the lock held: a queued job is cancelled now, a running one at its next step."""
        if job.state == "queued":
            job.state, job.finished, job.message = "cancelled", _now(), "cancelled before it started"
            job.ended = time.monotonic()
        elif job.state == "running" and not job.cancel.is_set():
            job.cancel.set()
            job.message = "cancelling"

    def _work(self) -> None:
        while (job := self._pending.get()) is not None:
            with self._lock:
                if job.state != "queued":  # cancelled while it waited
                    continue
                job.state, job.started, job.message = "running", _now(), "starting"
            self._run(job)

    def _run(self, job: Job) -> None:
        def report(fraction: float, message: str) -> None:
            with self._lock:
                job.progress, job.message = fraction, message

        outcome: dict[str, Any]
        try:
            outcome = {"state": "done", "result": run(job.params, Progress(report, job.cancel))}
        except Cancelled:
            outcome = {"state": "cancelled", "message": "cancelled"}
        except UserError as exc:
            outcome = {"state": "failed", "error": str(exc), "message": "failed"}
        except Exception as exc:  # noqa: BLE001 - a job must never kill the worker
            log.exception("job %s (%s) failed", job.id, job.kind)
            first_line = (str(exc).strip().splitlines() or [""])[0]
            outcome = {"state": "failed", "message": "failed",
                       "error": f"internal error: {type(exc).__name__}: {first_line} (see the backend log)"}
        with self._lock:
            for name, value in outcome.items():
                setattr(job, name, value)
            job.finished, job.ended = _now(), time.monotonic()
            prune_finished(self._jobs, self.keep, self.keep_s)
