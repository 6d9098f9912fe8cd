"""Follows one backend job from the GUI thread with a QTimer (never blocks the UI)."""

from __future__ import annotations

from qgis.PyQt.QtCore import QObject, QTimer, pyqtSignal

from .client import Answer, BackendClient
from .job_specs import FINAL_STATES

POLL_MS = 400
MAX_MISSES = 3  # consecutive unanswered polls before the backend is declared gone


class JobPoller(QObject):
    """Submits a job spec, then polls its record until it is done, failed or cancelled.

    Signals: ``progress(record)`` at each poll, ``finished(record)`` once in a final state,
    ``failed(message)`` when the backend cannot be reached or refuses.
    """

    progress = pyqtSignal(dict)
    finished = pyqtSignal(dict)
    failed = pyqtSignal(str)

    def __init__(self, client: BackendClient, parent: QObject = None):
        super().__init__(parent)
        self.client = client
        self.job_id = ""
        self.record: dict = {}
        self._misses = 0
        self._busy = False
        self._done = False
        self._timer = QTimer(self)
        self._timer.setInterval(POLL_MS)
        self._timer.timeout.connect(self._poll)

    def submit(self, spec: dict) -> None:
        self.client.post("/v1/jobs", spec, self._submitted)

    def cancel(self) -> None:
        """Ask the backend to cancel; polling goes on until it reports the job ``cancelled``."""
        if self.job_id and not self._done:
            self.client.post(f"/v1/jobs/{self.job_id}/cancel", None, self._cancel_answered)

    def stop(self) -> None:
        """Stop following the job (the backend keeps it); no more signals."""
        self._done = True
        self._timer.stop()
        self.client.abort_all()

    def _submitted(self, answer: Answer) -> None:
        if self._done:
            return
        if not answer.ok:
            self._fail(answer.error)
            return
        self.record = answer.data or {}
        self.job_id = str(self.record.get("id", ""))
        self.progress.emit(self.record)
        self._timer.start()

    def _cancel_answered(self, answer: Answer) -> None:
        if answer.ok and answer.data:
            self._accept(answer.data)

    def _poll(self) -> None:
        if self._busy or self._done:
            return
        self._busy = True
        self.client.get(f"/v1/jobs/{self.job_id}", self._polled, timeout_s=10.0)

    def _polled(self, answer: Answer) -> None:
        self._busy = False
        if self._done:
            return
        if answer.ok:
            self._misses = 0
            self._accept(answer.data or {})
            return
        if answer.unreachable or not answer.status:
            self._misses += 1
            if self._misses < MAX_MISSES:
                return
            self._fail(f"The coredino backend at {self.client.url} stopped answering while the job was "
                       "running (it was closed or crashed); the job is lost: start the backend again and "
                       "press Run.")
            return
        self._fail(answer.error)

    def _accept(self, record: dict) -> None:
        if self._done:
            return
        self.record = record
        if record.get("state") in FINAL_STATES:
            self._done = True
            self._timer.stop()
            self.finished.emit(record)
        else:
            self.progress.emit(record)

    def _fail(self, message: str) -> None:
        self._done = True
        self._timer.stop()
        self.failed.emit(message)
