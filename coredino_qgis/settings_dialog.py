"""Raster > coredino > Settings: where the backend is and how to start it."""

from __future__ import annotations

from qgis.gui import QgsFileWidget
from qgis.PyQt.QtWidgets import (QComboBox, QDialog, QDialogButtonBox, QFormLayout, QLabel, QLineEdit, QSpinBox,
                                 QVBoxLayout)

from .backend_process import running_service
from .contract.protocol import default_token_file, service_file
from .contract.params import RUNTIMES
from .settings import DEFAULT_URL, PluginSettings


class SettingsDialog(QDialog):
    def __init__(self, parent=None):
        super().__init__(parent)
        self.setWindowTitle("coredino settings")
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
        note = QLabel(found, self)
        note.setWordWrap(True)
        layout.addWidget(note)

        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel, self)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)

    def settings(self) -> PluginSettings:
        return PluginSettings(python=self.python_widget.filePath().strip(), url=self.url_edit.text().strip(),
                              token_file=self.token_widget.filePath().strip(),
                              max_export_pixels=self.max_pixels_spin.value() * 1_000_000,
                              runtime=self.runtime_combo.currentText())

    def accept(self) -> None:
        self.settings().save()
        super().accept()
