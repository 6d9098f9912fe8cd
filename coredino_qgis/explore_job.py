"""One explore job (similar, reclassify, polygonize) from the GUI thread: connect -> submit -> follow.

Asynchronous throughout (Qt signals, a polling QTimer): ``finished(result)`` when the job is
done, ``failed(message)`` with a sentence for the user otherwise (backend missing, refused spec,
the engine's one-line error, cancelled).
"""

from __future__ import annotations

from qgis.PyQt.QtCore import QObject, pyqtSignal

from .backend_connector import BackendConnector
from .backend_process import BackendLauncher
from .job_poller import JobPoller

WHAT = {"similar": "Find similar", "reclassify": "The class map", "polygonize": "Polygonize"}


class ExploreJob(QObject):
    progress = pyqtSignal(float, str)
    finished = pyqtSignal(dict)
    failed = pyqtSignal(str)

    def __init__(self, launcher: BackendLauncher, spec: dict, parent: QObject = None):
        super().__init__(parent)
        self.spec = spec
        self.connector = BackendConnector(launcher, self)
        self.connector.connected.connect(self._connected)
        self.connector.failed.connect(self._fail)
        self.poller: JobPoller | None = None
        self._over = False

    def start(self) -> None:
        self.progress.emit(0.0, "Connecting to the backend...")
        self.connector.connect_backend()

    def cancel(self) -> None:
        if self.poller is not None and self.poller.job_id:
            self.poller.cancel()
        elif not self._over:
            self.connector.abandon()
            self._fail("Cancelled.")

    def abandon(self) -> None:
        """Stop following (dock closed, plugin unloaded); the backend finishes any job it runs."""
        self._over = True
        self.connector.abandon()
        if self.poller is not None:
            self.poller.stop()

    def _connected(self, _caps: dict) -> None:
        if self._over:
            return
        self.poller = JobPoller(self.connector.client, self)
        self.poller.progress.connect(self._progress)
        self.poller.finished.connect(self._done)
        self.poller.failed.connect(self._fail)
        self.poller.submit(self.spec)

    def _progress(self, record: dict) -> None:
        if record.get("state") == "queued":
            self.progress.emit(0.0, "Queued behind another backend job...")
        else:
            self.progress.emit(float(record.get("progress") or 0), record.get("message") or "running")

    def _done(self, record: dict) -> None:
        if self._over:
            return
        state = record.get("state")
        if state == "done":
            self._over = True
            self.finished.emit(record.get("result") or {})
        elif state == "cancelled":
            self._fail("Cancelled; no output was written.")
        else:
            what = WHAT.get(self.spec.get("kind"), "The job")
            self._fail(f"{what} failed: {record.get('error') or 'no reason given'}")

    def _fail(self, message: str) -> None:
        if self._over:
            return
        self._over = True
        self.failed.emit(message)
