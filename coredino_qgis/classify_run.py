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

from .backend_process import BackendLauncher
from .contract import ClassifyOptions, ClassifyParams, ClassifyResult
from .job_follower import JobFollower
from .layer_export import ExportError, LayerExportTask, local_raster_path, plan_export
from .log import CRITICAL, INFO, SUCCESS, WARNING, log
from .results import ResultError, add_classified_layer
from .settings import PluginSettings


def export_folder() -> str:
    return os.path.join(tempfile.gettempdir(), "coredino")


class ClassifyRun(QObject):
    status = pyqtSignal(str)
    progress = pyqtSignal(float)
    finished = pyqtSignal(str, object)  # message, Qgis.MessageLevel

    def __init__(self, launcher: BackendLauncher, layer: QgsRasterLayer, output: str, codebook: dict,
                 view_extent: QgsRectangle, view_crs: QgsCoordinateReferenceSystem, max_pixels: int,
                 parent: QObject = None):
        super().__init__(parent)
        self.launcher = launcher
        self.layer = layer
        self.output = output
        self.codebook = codebook or {}
        self.view_extent = view_extent
        self.view_crs = view_crs
        self.max_pixels = max_pixels
        self.task: LayerExportTask | None = None
        self.follower: JobFollower | None = None
        self.exported = ""
        self.result_layer: QgsRasterLayer | None = None
        self.job_id = ""
        self.embeddings = False  # also write <output stem>_embeddings.tif
        self.overwrite = False  # the user agreed to replace an existing output
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
                                  embeddings=self.embeddings, runtime=PluginSettings.load().runtime)
        self.follower = JobFollower(self.launcher, ClassifyParams(path, self.output, options, self.overwrite),
                                    self)
        self.follower.submitted.connect(self._submitted)
        self.follower.progress.connect(self._progress)
        self.follower.finished.connect(self._job_finished)
        self.follower.job_failed.connect(lambda error: self._finish(self.follower.describe(error), CRITICAL))
        self.follower.cancelled.connect(lambda: self._finish("Cancelled; no output was written.", INFO))
        self.follower.failed.connect(lambda message: self._finish(message, CRITICAL))
        self.follower.start()

    def _submitted(self, job_id: str) -> None:
        self.job_id = job_id
        log(f"job {job_id}: classify {self.layer.name()} -> {self.output}")

    def _progress(self, fraction: float, message: str) -> None:
        if self._cancelled:
            return
        self.status.emit(message if not self.job_id or message.startswith("Queued") else f"Running: {message}")
        self.progress.emit(0.1 + 0.9 * fraction if self.exported else fraction)

    def _job_finished(self, result: ClassifyResult) -> None:
        try:
            self.result_layer = add_classified_layer(result.output, self.layer, result.classes)
        except ResultError as exc:
            self._finish(str(exc), CRITICAL)
            return
        for warning in result.warnings:
            log(f"{self.layer.name()}: {warning}", WARNING)
        self._finish(f"Done: {len(result.classes)} classes in {result.seconds:.1f} s on {result.device}; "
                     f"added {self.result_layer.name()}.", SUCCESS)

    # -- control -------------------------------------------------------------------------
    def cancel(self) -> None:
        if self._over or self._cancelled:
            return
        self._cancelled = True
        self.status.emit("Cancelling...")
        if self.task is not None:
            self.task.cancel()
        elif self.follower is not None:
            self.follower.cancel()
        else:
            self._finish("Cancelled; no output was written.", INFO)

    def abandon(self) -> None:
        """Stop following (plugin unload); the backend keeps any job it runs."""
        self._over = True
        if self.follower is not None:
            self.follower.abandon()
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
