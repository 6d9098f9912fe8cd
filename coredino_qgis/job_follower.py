"""Following one backend job: connect -> submit -> poll -> typed result. The plugin's only job follower.

:class:`JobFollower` is asynchronous (Qt signals and a QTimer; it never blocks the thread it lives
in) and serves the docks. :func:`run_blocking` drives one in a local event loop for Processing
algorithms, reporting to the algorithm's feedback and cancelling when it is cancelled.
"""

from __future__ import annotations

from typing import Any

from qgis.core import QgsProcessingException, QgsProcessingFeedback
from qgis.PyQt.QtCore import QEventLoop, QObject, QTimer, pyqtSignal

from .backend_connector import BackendConnector
from .backend_process import BackendLauncher
from .client import Answer
from .contract import FINAL_STATES, job_spec, kind_of, parse_result

POLL_MS = 400
MAX_MISSES = 3  # consecutive unanswered polls before the backend is declared gone
QUEUED = "Queued: the backend is busy with another job; this one starts when it ends (Cancel withdraws it)."


class JobFollower(QObject):
    """Runs one job given by its contract parameters on a reachable (or started) backend.

    Signals, exactly one of the last four once: ``progress(fraction, message)`` while it runs,
    ``submitted(job_id)``; ``finished(result)`` with the kind's result dataclass,
    ``job_failed(error)`` with the engine's one-line error, ``cancelled()``, or ``failed(message)``
    with a sentence when the backend cannot be reached, refuses the job or stops answering.
    """

    progress = pyqtSignal(float, str)
    submitted = pyqtSignal(str)
    finished = pyqtSignal(object)
    job_failed = pyqtSignal(str)
    cancelled = pyqtSignal()
    failed = pyqtSignal(str)

    def __init__(self, launcher: BackendLauncher, params: Any, parent: QObject = None):
        super().__init__(parent)
        self.kind = kind_of(params)
        self.spec = job_spec(params)
        self.connector = BackendConnector(launcher, self)
        self.connector.connected.connect(self._connected)
        self.connector.failed.connect(self._fail)
        self.connector.status.connect(lambda text: self.progress.emit(0.0, text))
        self.job_id = ""
        self.record: dict = {}
        self._misses = 0
        self._busy = False
        self._cancel_asked = False
        self._over = False
        self._timer = QTimer(self)
        self._timer.setInterval(POLL_MS)
        self._timer.timeout.connect(self._poll)

    @property
    def client(self):
        return self.connector.client

    def describe(self, error: str) -> str:
        """The sentence for a failed job: ``The class map failed: <the engine's line>``."""
        return f"{self.kind.title} failed: {error or 'no reason given'}"

    # -- control -------------------------------------------------------------------------------
    def start(self) -> None:
        self.progress.emit(0.0, "Connecting to the backend...")
        self.connector.connect_backend()

    def cancel(self) -> None:
        """Cancel: the backend's job if it has one (the backend reports ``cancelled``), else at once."""
        if self._over or self._cancel_asked:
            return
        self._cancel_asked = True
        if self.job_id:
            self.client.post(f"/v1/jobs/{self.job_id}/cancel", None, self._cancel_answered)
        elif self.connector.is_busy():
            self.connector.abandon()
            self._end(self.cancelled.emit)
        # else: the submission is in flight; the job is cancelled as soon as its id arrives

    def abandon(self) -> None:
        """Stop following (dock closed, plugin unloaded); the backend finishes any job it runs."""
        self._over = True
        self._timer.stop()
        self.connector.abandon()

    # -- steps ---------------------------------------------------------------------------------
    def _connected(self, _capabilities: dict) -> None:
        if not self._over:
            self.progress.emit(0.0, "Submitting the job...")
            self.client.post("/v1/jobs", self.spec, self._submitted)

    def _submitted(self, answer: Answer) -> None:
        if self._over:
            return
        if not answer.ok:
            self._fail(answer.error)
            return
        self.job_id = str((answer.data or {}).get("id", ""))
        self.submitted.emit(self.job_id)
        if self._cancel_asked:
            self.client.post(f"/v1/jobs/{self.job_id}/cancel", None, self._cancel_answered)
        self._accept(answer.data or {})
        self._timer.start()

    def _cancel_answered(self, answer: Answer) -> None:
        if answer.ok and answer.data:
            self._accept(answer.data)

    def _poll(self) -> None:
        if not (self._busy or self._over):
            self._busy = True
            self.client.get(f"/v1/jobs/{self.job_id}", self._polled, timeout_s=10.0)

    def _polled(self, answer: Answer) -> None:
        self._busy = False
        if self._over:
            return
        if answer.ok:
            self._misses = 0
            self._accept(answer.data or {})
        elif answer.status:
            self._fail(answer.error)
        else:
            self._misses += 1
            if self._misses >= MAX_MISSES:
                self._fail(f"The coredino backend at {self.client.url} stopped answering while the job was "
                           "running (it was closed or crashed); the job is lost: start the backend again and "
                           "run it again.")

    def _accept(self, record: dict) -> None:
        if self._over:
            return
        self.record = record
        state = record.get("state")
        if state == "done":
            self._end(lambda: self.finished.emit(parse_result(self.kind.name, record.get("result") or {})))
        elif state == "failed":
            self._end(lambda: self.job_failed.emit(record.get("error") or ""))
        elif state == "cancelled":
            self._end(self.cancelled.emit)
        elif state == "queued":  # "busy" only when the backend said another job runs
            busy = (self.connector.capabilities.get("queue") or {}).get("running")
            self.progress.emit(0.0, QUEUED if busy else "Starting the job...")
        elif state not in FINAL_STATES:
            self.progress.emit(float(record.get("progress") or 0), record.get("message") or "running")

    def _fail(self, message: str) -> None:
        self._end(lambda: self.failed.emit(message))

    def _end(self, emit) -> None:
        if self._over:
            return
        self._over = True
        self._timer.stop()
        emit()


def run_blocking(launcher: BackendLauncher, params: Any, feedback: QgsProcessingFeedback) -> Any:
    """Run a job to its end for a Processing algorithm; returns the kind's result dataclass.

    Progress goes to ``feedback``; cancelling the algorithm cancels the backend job. Failures
    raise :class:`QgsProcessingException` with one sentence.
    """
    loop = QEventLoop()
    follower = JobFollower(launcher, params)
    outcome: dict[str, Any] = {}

    def end(**what: Any) -> None:
        outcome.update(what)
        loop.quit()

    def report(fraction: float, message: str) -> None:
        feedback.setProgress(100.0 * fraction)
        if message != outcome.get("message"):
            outcome["message"] = message
            feedback.setProgressText(message)

    follower.progress.connect(report)
    follower.submitted.connect(lambda job_id: feedback.pushInfo(
        f"Backend job {job_id} ({follower.kind.name}) submitted to {follower.client.url}"))
    follower.finished.connect(lambda result: end(result=result))
    follower.job_failed.connect(lambda error: end(error=f"The backend job failed: {error or 'no reason given'}"))
    follower.cancelled.connect(lambda: end(error="Cancelled; the backend removed any partial output."))
    follower.failed.connect(lambda message: end(error=message))
    watch = QTimer()
    watch.setInterval(200)
    watch.timeout.connect(lambda: follower.cancel() if feedback.isCanceled() else None)
    watch.start()
    follower.start()
    if not outcome.get("error") and "result" not in outcome:
        loop.exec()
    watch.stop()
    follower.abandon()
    if "result" not in outcome:
        raise QgsProcessingException(outcome.get("error") or "The backend job ended without a result.")
    feedback.setProgress(100.0)
    return outcome["result"]
