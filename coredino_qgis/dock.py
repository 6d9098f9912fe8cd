"""The coredino dock: layer, codebook, output, Run / Cancel, progress and the backend's status."""

from __future__ import annotations

import os
from pathlib import Path

from qgis.core import QgsMapLayer, QgsMapLayerProxyModel, QgsProject, QgsRasterLayer
from qgis.gui import QgsFileWidget, QgsMapLayerComboBox
from qgis.PyQt.QtCore import QStandardPaths, Qt, pyqtSignal
from qgis.PyQt.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDockWidget,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QSizePolicy,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from .backend_connector import BackendConnector, codebook_choices, describe_device
from .backend_process import BackendLauncher
from .classify_run import ClassifyRun, export_folder
from .diagnostics import copy_diagnostics
from .layer_export import local_raster_path
from .run_progress import RunProgress
from .log import CRITICAL, INFO, SUCCESS, notify
from .settings import PluginSettings
from .setup_dialog import DONE, SetupDialog

try:  # QGIS >= 3.34
    from qgis.core import Qgis
    RASTER_FILTER = Qgis.LayerFilter.RasterLayer
except AttributeError:
    RASTER_FILTER = QgsMapLayerProxyModel.Filter.RasterLayer

IDLE, CONNECTING, RUNNING, CANCELLING = "idle", "connecting", "running", "cancelling"


def output_folder() -> str:
    """``<project home>/coredino`` (the saved project's folder or its preset home), else ``<Documents>/coredino``."""
    home = QgsProject.instance().homePath()
    base = home or QStandardPaths.writableLocation(QStandardPaths.StandardLocation.DocumentsLocation) or export_folder()
    return os.path.join(base, "coredino")


def default_output(layer: QgsRasterLayer) -> str:
    """``<output folder>/<source stem>_classes.tif`` (never beside the source: its folder may be shared)."""
    path = local_raster_path(layer) if layer is not None else None
    if path and os.path.isfile(path):
        stem = Path(path).stem
    else:
        stem = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in (layer.name() if layer else "layer"))
    return os.path.join(output_folder(), f"{stem or 'layer'}_classes.tif")


class CoredinoDock(QDockWidget):
    """Signals ``run_finished(message, level)`` when a run ends (for tests and scripting)."""

    run_finished = pyqtSignal(str, object)

    def __init__(self, iface, launcher: BackendLauncher, parent=None):
        super().__init__("coredino", parent)
        self.setObjectName("CoredinoDock")
        self.iface = iface
        self.state = IDLE
        self.current_run: ClassifyRun | None = None
        self.result_layer: QgsRasterLayer | None = None
        self._auto_output = ""
        self._replace = False  # the user agreed to replace the existing output
        self._run_after_connect = False
        self.last_error = ""
        self.setup_dialog: SetupDialog | None = None
        self.run_progress: RunProgress | None = None
        self.connector = BackendConnector(launcher, self)
        self.connector.status.connect(self.set_status)
        self.connector.connected.connect(self._connected)
        self.connector.failed.connect(self._connect_failed)
        self._build()
        self.layer_combo.layerChanged.connect(self._layer_changed)
        QgsProject.instance().homePathChanged.connect(self._project_home_changed)  # bound: gone with the dock
        self.use_active_layer()

    # -- layout --------------------------------------------------------------------------
    def _build(self) -> None:
        self.setFeatures(QDockWidget.DockWidgetFeature.DockWidgetClosable
                         | QDockWidget.DockWidgetFeature.DockWidgetMovable
                         | QDockWidget.DockWidgetFeature.DockWidgetFloatable)
        body = QWidget(self)
        outer = QVBoxLayout(body)
        form = QFormLayout()
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)

        self.layer_combo = QgsMapLayerComboBox(body)
        self.layer_combo.setFilters(RASTER_FILTER)
        self.layer_combo.setToolTip("The raster to classify. Local files are sent by path; other layers "
                                    "(XYZ, WMS...) are exported for the current map view at the codebook's GSD.")
        form.addRow("Layer", self.layer_combo)

        row = QHBoxLayout()
        self.codebook_combo = QComboBox(body)
        self.codebook_combo.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.codebook_combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.codebook_combo.setMinimumContentsLength(14)  # the dock stays narrow; the popup shows full lines
        self.codebook_combo.setToolTip("Codebooks the backend knows: name, number of clusters, ground "
                                       "sample distance, and the model it was fitted with.")
        self.refresh_button = QToolButton(body)
        self.refresh_button.setText("↻")
        self.refresh_button.setToolTip("Reconnect to the backend and reload its codebooks")
        self.refresh_button.clicked.connect(self.refresh_backend)
        row.addWidget(self.codebook_combo)
        row.addWidget(self.refresh_button)
        form.addRow("Codebook", row)
        self.license_label = QLabel(body)
        self.license_label.setWordWrap(True)
        self.codebook_combo.currentIndexChanged.connect(self._show_license)
        form.addRow("", self.license_label)

        self.output_widget = QgsFileWidget(body)
        self.output_widget.setStorageMode(QgsFileWidget.StorageMode.SaveFile)
        self.output_widget.setFilter("GeoTIFF (*.tif *.tiff)")
        self.output_widget.setDialogTitle("Classified output (Cloud-Optimized GeoTIFF)")
        form.addRow("Output", self.output_widget)
        self.embeddings_check = QCheckBox("Keep embeddings (for Find similar)", body)
        self.embeddings_check.setChecked(True)
        self.embeddings_check.setToolTip("Also write <output>_embeddings.tif: the patch embeddings on the same "
                                         "grid, so the explore dock finds similar places without re-running "
                                         "the model (about 64 bytes per cell).")
        form.addRow("", self.embeddings_check)
        outer.addLayout(form)

        buttons = QHBoxLayout()
        self.run_button = QPushButton("Run", body)
        self.run_button.clicked.connect(self.run_clicked)
        self.cancel_button = QPushButton("Cancel", body)
        self.cancel_button.clicked.connect(self.cancel_clicked)
        buttons.addWidget(self.run_button)
        buttons.addWidget(self.cancel_button)
        outer.addLayout(buttons)

        self.progress_bar = QProgressBar(body)
        self.progress_bar.setRange(0, 1000)
        self.progress_bar.setTextVisible(False)  # percentage and time left while a run goes
        outer.addWidget(self.progress_bar)

        self.device_label = QLabel("Backend: not connected", body)
        self.status_label = QLabel("", body)
        for label in (self.device_label, self.status_label):
            label.setWordWrap(True)
            label.setAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop)
            label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            outer.addWidget(label)
        backend_row = QHBoxLayout()
        self.setup_button = QPushButton(self.tr("Set up the backend…"), body)
        self.setup_button.setToolTip(self.tr("Create a Python environment for coredino's model, install it "
                                             "(from the internet or a folder of wheels) and start it"))
        self.setup_button.clicked.connect(self.show_setup)
        self.setup_button.hide()  # shown when no backend is found
        self.diagnostics_button = QPushButton(self.tr("Copy diagnostics"), body)
        self.diagnostics_button.setToolTip(self.tr("Copy versions, backend, device, its log and the last error "
                                                   "to the clipboard, for a bug report"))
        self.diagnostics_button.clicked.connect(self.copy_diagnostics)
        backend_row.addWidget(self.setup_button)
        backend_row.addWidget(self.diagnostics_button)
        backend_row.addStretch(1)
        outer.addLayout(backend_row)
        outer.addStretch(1)
        self.setWidget(body)
        self._update_buttons()

    # -- helpers -------------------------------------------------------------------------
    def set_status(self, text: str) -> None:
        self.status_label.setText(text)

    def _set_state(self, state: str) -> None:
        self.state = state
        self._update_buttons()

    def _update_buttons(self) -> None:
        self.run_button.setEnabled(self.state == IDLE)
        self.cancel_button.setEnabled(self.state in (CONNECTING, RUNNING))
        self.refresh_button.setEnabled(self.state == IDLE)
        if self.state == IDLE:
            self.progress_bar.setValue(0)

    def use_active_layer(self) -> None:
        active = self.iface.activeLayer() if self.iface is not None else None
        if isinstance(active, QgsRasterLayer):
            self.layer_combo.setLayer(active)
        self._layer_changed(self.layer_combo.currentLayer())

    def _layer_changed(self, layer: QgsMapLayer) -> None:
        current = self.output_widget.filePath()
        if current and current != self._auto_output:
            return  # the user chose an output: keep it
        self._auto_output = default_output(layer) if isinstance(layer, QgsRasterLayer) else ""
        self.output_widget.setFilePath(self._auto_output)

    def _show_license(self, *_) -> None:
        license = self.selected_codebook().get("license")
        self.license_label.setText(f"Model licence: {license}" if license else "")

    def _project_home_changed(self) -> None:
        self._layer_changed(self.layer_combo.currentLayer())

    def selected_codebook(self) -> dict:
        data = self.codebook_combo.currentData()
        return data if isinstance(data, dict) else {}

    # -- backend -------------------------------------------------------------------------
    def refresh_backend(self) -> None:
        """Connect (starting a backend if Settings allow) and fill the codebook picker."""
        if self.state != IDLE:
            return
        self._set_state(CONNECTING)
        self.connector.connect_backend()

    def _connected(self, caps: dict) -> None:
        self.setup_button.hide()
        self.last_error = ""  # a connection problem is over once connected
        self.device_label.setText(describe_device(caps) + f" · coredino {caps.get('version', '?')}")
        previous = self.selected_codebook().get("path")
        self.codebook_combo.clear()
        for text, codebook, tooltip in codebook_choices(caps):
            self.codebook_combo.addItem(text, codebook)
            self.codebook_combo.setItemData(self.codebook_combo.count() - 1, tooltip, Qt.ItemDataRole.ToolTipRole)
            if codebook.get("path") == previous or (previous is None and codebook.get("default")):
                self.codebook_combo.setCurrentIndex(self.codebook_combo.count() - 1)
        self._show_license()
        queue = caps.get("queue") or {}
        busy = " The backend is busy with another job; a new one waits for it." if queue.get("running") else ""
        self.set_status(f"Connected to {self.connector.connection.url}.{busy}")
        if self._run_after_connect:
            self._run_after_connect = False
            self._start_run()
        else:
            self._set_state(IDLE)

    def _connect_failed(self, message: str) -> None:
        was_run, self._run_after_connect = self._run_after_connect, False
        self.device_label.setText("Backend: not connected")
        self.setup_button.setVisible(not self.connector.launcher.is_running())
        self._set_state(IDLE)
        self.last_error = message
        if was_run:  # a banner answers an action; a check on opening the dock only sets the dock's state
            self._report(message, CRITICAL)
            self.run_finished.emit(message, CRITICAL)
        else:
            self.set_status(message)

    # -- run -----------------------------------------------------------------------------
    def run_clicked(self) -> None:
        if self.state != IDLE:
            return
        layer = self.layer_combo.currentLayer()
        if not isinstance(layer, QgsRasterLayer) or not layer.isValid():
            self._report("Choose a raster layer to classify.", CRITICAL)
            return
        if not self.output_widget.filePath():
            self._report("Choose where to write the classified raster (Output).", CRITICAL)
            return
        self._replace = os.path.isfile(self.output_widget.filePath())
        if self._replace and not self.confirm_replace(self.output_widget.filePath()):
            self.set_status("Not run: the output exists; choose another Output or agree to replace it.")
            return
        self.result_layer = None
        self._run_after_connect = True
        self._set_state(CONNECTING)
        self.connector.connect_backend()  # re-checks health, token and capabilities at every run

    def _start_run(self) -> None:
        codebook = self.selected_codebook()
        if not codebook:
            self._finish("The backend lists no codebook: start it with `--codebooks DIR` or reinstall "
                         "coredino (the default codebook is missing).", CRITICAL)
            return
        canvas = self.iface.mapCanvas() if self.iface is not None else None
        extent = canvas.extent() if canvas is not None else None
        crs = canvas.mapSettings().destinationCrs() if canvas is not None else None
        layer = self.layer_combo.currentLayer()
        if extent is None or extent.isEmpty():
            extent, crs = layer.extent(), layer.crs()
        self.current_run = ClassifyRun(self.connector.launcher, layer, self.output_widget.filePath(), codebook,
                                       extent, crs, PluginSettings.load().max_export_pixels, self)
        self.current_run.embeddings = self.embeddings_check.isChecked()
        self.current_run.overwrite = self._replace
        self.current_run.status.connect(self.set_status)
        self.run_progress = RunProgress(self.tr("coredino: classifying {}").format(layer.name()), self.progress_bar)
        self.current_run.progress.connect(self.run_progress.update)
        self.current_run.finished.connect(self._finish)
        self._set_state(RUNNING)
        self.current_run.start()

    def confirm_replace(self, path: str) -> bool:
        """Ask before replacing an existing file (the backend never replaces an input)."""
        answer = QMessageBox.question(
            self, "coredino", f"{path} already exists.\n\nReplace it with the new classification?",
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No, QMessageBox.StandardButton.No)
        return answer == QMessageBox.StandardButton.Yes

    def cancel_clicked(self) -> None:
        if self.state == CONNECTING:
            self._run_after_connect = False
            self.connector.abandon()
            self._finish("Cancelled.", INFO)
        elif self.state == RUNNING and self.current_run is not None:
            self._set_state(CANCELLING)
            self.current_run.cancel()

    def _finish(self, message: str, level) -> None:
        if self.run_progress is not None:
            self.run_progress.finish(level == SUCCESS)
            self.run_progress = None
        if self.current_run is not None:
            self.result_layer = self.current_run.result_layer
            self.current_run.deleteLater()
        self.current_run = None
        self._set_state(IDLE)
        self._report(message, level)
        self.run_finished.emit(message, level)

    def show_setup(self) -> None:
        """The set-up dialog; once it has installed and started the backend, the dock connects."""
        if self.setup_dialog is None:
            self.setup_dialog = SetupDialog(self.connector.launcher, self)
            self.setup_dialog.setup_finished.connect(self._setup_finished)
        self.setup_dialog.show()
        self.setup_dialog.raise_()

    def _setup_finished(self, state: str) -> None:
        if state == DONE:
            self.set_status(self.tr("Backend installed; starting it..."))
            self.refresh_backend()

    def copy_diagnostics(self) -> str:
        text = copy_diagnostics(self.connector.launcher, self.connector.capabilities, self.last_error)
        self.set_status(self.tr("Diagnostics copied to the clipboard."))
        return text

    def _report(self, message: str, level) -> None:
        if level == CRITICAL:
            self.last_error = message
        self.set_status(message)
        notify(self.iface, message, level)

    def shutdown(self) -> None:
        """Plugin unload: stop following any job and any connection attempt."""
        try:
            QgsProject.instance().homePathChanged.disconnect(self._project_home_changed)
        except (TypeError, RuntimeError):
            pass
        if self.run_progress is not None:
            self.run_progress.finish(False)
            self.run_progress = None
        if self.current_run is not None:
            self.current_run.abandon()
            self.current_run = None
        self.connector.abandon()
