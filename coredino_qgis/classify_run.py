"""One classification started from the dock: (export) -> submit -> follow -> add the result.

Runs entirely on Qt signals and QgsTask, so the GUI thread never waits. The outcome arrives as
``finished(message, level)``; :attr:`result_layer` holds the added layer on success.
"""

from __future__ import annotations

import os
import tempfile
import uuid

from qgis.core import QgsApplication, QgsCoordinateReferenceSystem, QgsRasterLayer, QgsRectangle
from qgis.PyQt.QtCore import QObject, pyqtSignal

from .client import BackendClient
from .job_poller import JobPoller
from .job_specs import ClassifyJob, ClassifyOptions
from .layer_export import ExportError, LayerExportTask, local_raster_path, plan_export
from .log import CRITICAL, INFO, SUCCESS, WARNING, log
from .results import ResultError, add_classified_layer


def export_folder() -> str:
    return os.path.join(tempfile.gettempdir(), "coredino")


class ClassifyRun(QObject):
    status = pyqtSignal(str)
    progress = pyqtSignal(float)
    finished = pyqtSignal(str, object)  # message, Qgis.MessageLevel

    def __init__(self, client: BackendClient, layer: QgsRasterLayer, output: str, codebook: dict,
                 view_extent: QgsRectangle, view_crs: QgsCoordinateReferenceSystem, max_pixels: int,
                 parent: QObject = None):
        super().__init__(parent)
        self.client = client
        self.layer = layer
        self.output = output
        self.codebook = codebook or {}
        self.view_extent = view_extent
        self.view_crs = view_crs
        self.max_pixels = max_pixels
        self.task: LayerExportTask | None = None
        self.poller: JobPoller | None = None
        self.exported = ""
        self.result_layer: QgsRasterLayer | None = None
        self.job_id = ""
        self.embeddings = False  # also write <output stem>_embeddings.tif
        self._cancelled = False
        self._over = False

    # -- steps ---------------------------------------------------------------------------
    def start(self) -> None:
        path = local_raster_path(self.layer)
        if path:
            self._submit(path)
            return
        try:
            plan = plan_export(self.layer, self.view_extent, self.view_crs, float(self.codebook.get("gsd") or 0),
                               self.max_pixels)
        except ExportError as exc:
            self._finish(str(exc), CRITICAL)
            return
        target = os.path.join(export_folder(), f"export_{uuid.uuid4().hex[:8]}.tif")
        self.status.emit(f"Exporting {self.layer.name()} ({plan.width} x {plan.height} px at {plan.gsd:g} m)...")
        self.task = LayerExportTask(self.layer, plan, target)
        self.task.done.connect(self._exported)
        self.task.progressChanged.connect(self._export_progress)
        QgsApplication.taskManager().addTask(self.task)

    def _export_progress(self, percent: float) -> None:
        self.progress.emit(0.1 * percent / 100)  # the export is the first tenth of the bar

    def _exported(self, path: str, error: str) -> None:
        self.task = None
        if self._cancelled:
            self._finish("Cancelled; no output was written.", INFO)
            return
        if error:
            self._finish(error, CRITICAL)
            return
        self.exported = path
        log(f"exported {self.layer.name()} to {path}")
        self._submit(path)

    def _submit(self, path: str) -> None:
        options = ClassifyOptions(codebook=None if self.codebook.get("default") else self.codebook.get("path"),
                                  embeddings=self.embeddings)
        spec = ClassifyJob(path, self.output, options).spec()
        self.status.emit("Submitting the job...")
        self.poller = JobPoller(self.client, self)
        self.poller.progress.connect(self._progress)
        self.poller.finished.connect(self._job_finished)
        self.poller.failed.connect(lambda message: self._finish(message, CRITICAL))
        self.poller.submit(spec)

    def _progress(self, record: dict) -> None:
        if not self.job_id and record.get("id"):
            self.job_id = str(record["id"])
            log(f"job {self.job_id}: classify {self.layer.name()} -> {self.output}")
            if self._cancelled:  # Cancel pressed while the job was being submitted
                self.poller.cancel()
        if self._cancelled:
            return
        if record.get("state") == "queued":
            self.status.emit("Queued: the backend is busy with another job; this one starts when it ends "
                             "(Cancel withdraws it).")
        else:
            self.status.emit(f"Running: {record.get('message') or 'starting'}")
        fraction = float(record.get("progress") or 0)
        self.progress.emit(0.1 + 0.9 * fraction if self.exported else fraction)

    def _job_finished(self, record: dict) -> None:
        state = record.get("state")
        if state == "cancelled":
            self._finish("Cancelled; no output was written.", INFO)
        elif state == "failed":
            self._finish(f"The classification failed: {record.get('error') or 'no reason given'}", CRITICAL)
        else:
            result = record.get("result") or {}
            try:
                self.result_layer = add_classified_layer(result.get("output") or self.output, self.layer,
                                                         result.get("classes"))
            except ResultError as exc:
                self._finish(str(exc), CRITICAL)
                return
            seconds = result.get("seconds")
            timing = f" in {seconds:.1f} s" if isinstance(seconds, (int, float)) else ""
            message = (f"Done: {len(result.get('classes') or {})} classes{timing} on "
                       f"{result.get('device', 'the backend')}; added {self.result_layer.name()}.")
            for warning in result.get("warnings") or []:
                log(f"{self.layer.name()}: {warning}", WARNING)
            self._finish(message, SUCCESS)

    # -- control -------------------------------------------------------------------------
    def cancel(self) -> None:
        if self._over or self._cancelled:
            return
        self._cancelled = True
        self.status.emit("Cancelling...")
        if self.task is not None:
            self.task.cancel()
        elif self.poller is not None and self.job_id:
            self.poller.cancel()
        elif self.poller is None:
            self._finish("Cancelled; no output was written.", INFO)

    def abandon(self) -> None:
        """Stop following (plugin unload); the backend keeps any job it runs."""
        self._over = True
        if self.poller is not None:
            self.poller.stop()
        if self.task is not None:
            self.task.cancel()

    def _finish(self, message: str, level) -> None:
        if self._over:
            return
        self._over = True
        if self.exported:
            try:
                os.remove(self.exported)
            except OSError:
                pass
        self.finished.emit(message, level)
