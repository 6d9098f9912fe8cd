"""Raster > coredino > Settings: where the backend is and how to start it."""

from __future__ import annotations

from qgis.gui import QgsFileWidget
from qgis.PyQt.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
)

from .backend_connector import BackendConnector, describe_device
from .backend_process import BackendLauncher, running_service
from .diagnostics import copy_diagnostics
from .setup_dialog import SetupDialog
from .contract.protocol import default_token_file, service_file
from .contract.params import RUNTIMES
from .settings import DEFAULT_URL, PluginSettings


class SettingsDialog(QDialog):
    def __init__(self, launcher: BackendLauncher | None = None, parent=None):
        super().__init__(parent)
        self.setWindowTitle(self.tr("coredino settings"))
        self.setMinimumWidth(620)  # room for the placeholders (paths of the token file, the URL)
        self.launcher = launcher
        self.connector: BackendConnector | None = None
        settings = PluginSettings.load()
        layout = QVBoxLayout(self)
        form = QFormLayout()

        self.python_widget = QgsFileWidget(self)
        self.python_widget.setStorageMode(QgsFileWidget.StorageMode.GetFile)
        self.python_widget.setFilePath(settings.python)
        self.python_widget.setToolTip("The python of the environment where coredino is installed, e.g. "
                                      "<project>/.venv/bin/python. The plugin starts `python -m coredino.cli "
                                      "serve` with it when no backend answers. Leave empty to start the "
                                      "backend yourself.")
        form.addRow("Backend Python", self.python_widget)

        self.url_edit = QLineEdit(settings.url, self)
        self.url_edit.setPlaceholderText(f"automatic: the running backend, else {DEFAULT_URL}")
        self.url_edit.setToolTip("Address of `coredino serve`; a remote GPU machine works through an SSH "
                                 "tunnel (ssh -L 8765:127.0.0.1:8765 gpu-host).")
        form.addRow("Backend URL", self.url_edit)

        self.token_widget = QgsFileWidget(self)
        self.token_widget.setStorageMode(QgsFileWidget.StorageMode.GetFile)
        self.token_widget.setFilePath(settings.token_file)
        self.token_widget.lineEdit().setPlaceholderText(f"automatic: {default_token_file()}")
        form.addRow("Token file", self.token_widget)

        self.max_pixels_spin = QSpinBox(self)
        self.max_pixels_spin.setRange(1, 2000)
        self.max_pixels_spin.setSuffix(" million pixels")
        self.max_pixels_spin.setValue(max(1, settings.max_export_pixels // 1_000_000))
        self.max_pixels_spin.setToolTip("Largest export of a layer that is not a local file (XYZ, WMS...), "
                                        "at the codebook's ground sample distance.")
        form.addRow("Export limit", self.max_pixels_spin)

        self.runtime_combo = QComboBox(self)
        self.runtime_combo.addItems(RUNTIMES)
        self.runtime_combo.setCurrentText(settings.runtime if settings.runtime in RUNTIMES else "auto")
        self.runtime_combo.setToolTip("How the backend runs the encoder: auto (ONNX Runtime on a CPU, the "
                                      "same classes as torch, faster; torch on a GPU), torch or onnx.")
        form.addRow("Encoder runtime", self.runtime_combo)
        layout.addLayout(form)

        service = running_service()
        found = (f"Running backend found: {service.get('url')} (pid {service.get('pid')})." if service
                 else f"No running backend announced in {service_file()}.")
        self.note = QLabel(found, self)
        self.note.setWordWrap(True)
        layout.addWidget(self.note)

        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel, self)
        self.test_button = QPushButton(self.tr("Test connection"), self)
        self.test_button.setToolTip(self.tr("Save these settings and connect (starting the backend with the "
                                            "Python above when none answers)"))
        self.test_button.clicked.connect(self.test_connection)
        self.setup_button = QPushButton(self.tr("Set up the backend…"), self)
        self.setup_button.clicked.connect(lambda: SetupDialog(self.launcher, self).exec())
        self.diagnostics_button = QPushButton(self.tr("Copy diagnostics"), self)
        self.diagnostics_button.clicked.connect(
            lambda: copy_diagnostics(self.launcher, self.connector.capabilities if self.connector else None))
        for button in (self.test_button, self.setup_button, self.diagnostics_button):
            buttons.addButton(button, QDialogButtonBox.ButtonRole.ActionRole)
        self.test_button.setEnabled(launcher is not None)
        self.setup_button.setEnabled(launcher is not None)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)

    def settings(self) -> PluginSettings:
        return PluginSettings(python=self.python_widget.filePath().strip(), url=self.url_edit.text().strip(),
                              token_file=self.token_widget.filePath().strip(),
                              max_export_pixels=self.max_pixels_spin.value() * 1_000_000,
                              runtime=self.runtime_combo.currentText())

    def test_connection(self) -> None:
        """Save, then connect as the dock does; the outcome replaces the note under the form."""
        self.settings().save()
        if self.connector is None:
            self.connector = BackendConnector(self.launcher, self)
            self.connector.status.connect(self.note.setText)
            self.connector.connected.connect(lambda caps: self.note.setText(self.tr("Connected: {} · coredino {}").format(
                describe_device(caps), caps.get("version", "?"))))
            self.connector.failed.connect(self.note.setText)
        self.connector.connect_backend()

    def accept(self) -> None:
        self.settings().save()
        super().accept()
