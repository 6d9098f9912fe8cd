"""Set up the backend from inside QGIS: a managed environment, installed from PyPI or a folder of
wheels, verified, then started; Settings remember its Python. Steps run in a QProcess (cancellable)
with the log shown live."""

from __future__ import annotations

import time
from pathlib import Path

from qgis.gui import QgsFileWidget
from qgis.PyQt.QtCore import QProcess, pyqtSignal
from qgis.PyQt.QtWidgets import (
    QCheckBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QLabel,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QRadioButton,
    QVBoxLayout,
)

from .backend_env import SetupPlan, Step, env_root, find_base_python, nvidia_gpu, quoted, torch_index
from .backend_process import BackendLauncher, backend_environment
from .settings import PluginSettings

IDLE, RUNNING, DONE, FAILED, CANCELLED = "idle", "running", "done", "failed", "cancelled"


class SetupDialog(QDialog):
    """Signals ``step_finished(index, title)`` after each step and ``setup_finished(state)`` at the end."""

    step_finished = pyqtSignal(int, str)
    setup_finished = pyqtSignal(str)

    def __init__(self, launcher: BackendLauncher | None = None, parent=None):
        super().__init__(parent)
        self.setWindowTitle(self.tr("Set up the coredino backend"))
        self.setMinimumWidth(640)
        self.launcher = launcher
        self.state = IDLE
        self.plan: SetupPlan | None = None
        self.steps: list[Step] = []
        self.index = -1
        self.process: QProcess | None = None
        self.started_at = 0.0
        self.timings: list[tuple[str, float]] = []
        self.gpu = nvidia_gpu()
        self._build()

    # -- layout --------------------------------------------------------------------------
    def _build(self) -> None:
        layout = QVBoxLayout(self)
        intro = QLabel(self.tr("coredino runs its model in a separate Python environment (the backend). This "
                               "creates one for you, installs coredino into it, checks it with a small "
                               "classification and starts it."), self)
        intro.setWordWrap(True)
        layout.addWidget(intro)
        form = QFormLayout()
        self.from_pypi = QRadioButton(self.tr("From the internet (PyPI)"), self)
        self.from_folder = QRadioButton(self.tr("From a folder of wheels (offline)"), self)
        self.from_pypi.setChecked(True)
        self.from_folder.setToolTip(self.tr("A folder made by `make offline-bundle` (dist/offline-<platform>/): "
                                            "installs with `pip --no-index`, without the network."))
        form.addRow(self.tr("Install"), self.from_pypi)
        form.addRow("", self.from_folder)
        self.bundle_widget = QgsFileWidget(self)
        self.bundle_widget.setStorageMode(QgsFileWidget.StorageMode.GetDirectory)
        self.bundle_widget.fileChanged.connect(lambda path: self.from_folder.setChecked(bool(path)))
        form.addRow(self.tr("Wheels folder"), self.bundle_widget)
        self.venv_widget = QgsFileWidget(self)
        self.venv_widget.setStorageMode(QgsFileWidget.StorageMode.GetDirectory)
        self.venv_widget.setFilePath(str(env_root() / "venv"))
        self.venv_widget.setToolTip(self.tr("The environment's folder, in your user data folder (not QGIS's "
                                            "plugin folder, so it survives plugin updates)."))
        form.addRow(self.tr("Environment"), self.venv_widget)
        self.python_widget = QgsFileWidget(self)
        self.python_widget.setStorageMode(QgsFileWidget.StorageMode.GetFile)
        base = find_base_python()
        self.python_widget.setFilePath(str(base) if base else "")
        self.python_widget.setToolTip(self.tr("The Python that creates the environment; it must import GDAL "
                                              "(Linux: /usr/bin/python3 with python3-gdal; Windows and "
                                              "macOS: QGIS's own Python)."))
        form.addRow(self.tr("Base Python"), self.python_widget)
        gpu_text = (self.tr("NVIDIA GPU found ({}): the CUDA build of torch").format(self.gpu) if self.gpu
                    else self.tr("No NVIDIA GPU found: the CPU build of torch (Apple GPUs: the macOS build "
                                 "uses them)"))
        self.gpu_label = QLabel(gpu_text, self)
        self.gpu_label.setWordWrap(True)
        form.addRow(self.tr("Model runs on"), self.gpu_label)
        self.no_deps_check = QCheckBox(self.tr("Only coredino (its dependencies are already in the base Python)"),
                                       self)
        self.no_deps_check.setToolTip(self.tr("pip --no-deps: for a base Python that already has torch, "
                                              "torchvision, ultralytics, transformers, faiss and FastAPI."))
        form.addRow("", self.no_deps_check)
        layout.addLayout(form)
        self.progress_bar = QProgressBar(self)
        self.status_label = QLabel(self.tr("Ready to install."), self)
        self.status_label.setWordWrap(True)
        self.log_view = QPlainTextEdit(self)
        self.log_view.setReadOnly(True)
        self.log_view.setMinimumHeight(220)
        self.log_view.setMaximumBlockCount(5000)
        layout.addWidget(self.progress_bar)
        layout.addWidget(self.status_label)
        layout.addWidget(self.log_view, 1)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close, self)
        self.install_button = QPushButton(self.tr("Install"), self)
        self.cancel_button = QPushButton(self.tr("Cancel"), self)
        self.buttons.addButton(self.install_button, QDialogButtonBox.ButtonRole.ActionRole)
        self.buttons.addButton(self.cancel_button, QDialogButtonBox.ButtonRole.ActionRole)
        self.install_button.clicked.connect(self.start)
        self.cancel_button.clicked.connect(self.cancel)
        self.buttons.rejected.connect(self.reject)
        layout.addWidget(self.buttons)
        self._update_buttons()

    def _update_buttons(self) -> None:
        running = self.state == RUNNING
        self.install_button.setEnabled(not running)
        self.cancel_button.setEnabled(running)
        self.buttons.button(QDialogButtonBox.StandardButton.Close).setEnabled(not running)

    # -- run -----------------------------------------------------------------------------
    def make_plan(self) -> SetupPlan:
        bundle = self.bundle_widget.filePath().strip() if self.from_folder.isChecked() else ""
        return SetupPlan(Path(self.python_widget.filePath().strip()), Path(self.venv_widget.filePath().strip()),
                         Path(bundle) if bundle else None, torch_index(self.gpu),
                         with_dependencies=not self.no_deps_check.isChecked())

    def start(self) -> None:
        if self.state == RUNNING:
            return
        plan = self.make_plan()
        problem = self._problem(plan)
        if problem:
            self._end(FAILED, problem)
            return
        self.plan, self.steps, self.index, self.timings = plan, plan.steps(), -1, []
        plan.work.mkdir(parents=True, exist_ok=True)
        self.progress_bar.setRange(0, len(self.steps))
        self.progress_bar.setValue(0)
        self.log_view.clear()
        self.state = RUNNING
        self._update_buttons()
        self._next()

    def _problem(self, plan: SetupPlan) -> str:
        if not plan.base_python.is_file():
            return self.tr("No Python at {}: choose the Python that creates the environment.").format(plan.base_python)
        if plan.bundle is not None and not any(plan.bundle.glob("coredino-*.whl")):
            return self.tr("{} holds no coredino wheel: choose the folder `make offline-bundle` wrote.").format(
                plan.bundle)
        return ""

    def _next(self) -> None:
        self.index += 1
        if self.index >= len(self.steps):
            self._installed()
            return
        step = self.steps[self.index]
        self.status_label.setText(self.tr("Step {} of {}: {}...").format(self.index + 1, len(self.steps), step.title))
        self.log_view.appendPlainText(f"$ {quoted(step.program, step.args)}")
        process = QProcess(self)
        process.setProcessEnvironment(backend_environment())
        process.setProcessChannelMode(QProcess.ProcessChannelMode.MergedChannels)
        process.setWorkingDirectory(str(self.plan.work))
        process.readyReadStandardOutput.connect(self._read)
        process.finished.connect(self._step_done)
        process.errorOccurred.connect(self._process_error)
        self.process = process
        self.started_at = time.monotonic()
        process.start(step.program, step.args)

    def _read(self) -> None:
        if self.process is not None:
            text = bytes(self.process.readAllStandardOutput()).decode("utf-8", "replace").rstrip()
            if text:
                self.log_view.appendPlainText(text)

    def _process_error(self, error) -> None:
        if error == QProcess.ProcessError.FailedToStart and self.state == RUNNING:
            self._end(FAILED, self.tr("Could not run {}.").format(self.steps[self.index].program))

    def _step_done(self, code: int, _status=None) -> None:
        self._read()
        if self.state != RUNNING:
            return
        step = self.steps[self.index]
        seconds = time.monotonic() - self.started_at
        self.timings.append((step.title, seconds))
        self.log_view.appendPlainText(f"({seconds:.1f} s, exit code {code})")
        if code != 0:
            self._end(FAILED, self.tr("{} failed (exit code {}): see the log below.").format(step.title, code))
            return
        self.progress_bar.setValue(self.index + 1)
        self.step_finished.emit(self.index, step.title)
        self._next()

    def _installed(self) -> None:
        settings = PluginSettings.load()
        settings.python = str(self.plan.python)
        settings.save()
        total = sum(seconds for _, seconds in self.timings)
        self._end(DONE, self.tr("Installed and verified in {:.0f} s; Settings now use {}.").format(
            total, self.plan.python))
        if self.launcher is not None:
            self.status_label.setText(self.status_label.text() + " " + self.tr("Starting the backend..."))
            self.launcher.start_from_settings()

    def cancel(self) -> None:
        if self.state != RUNNING:
            return
        process, self.process = self.process, None
        self._end(CANCELLED, self.tr("Cancelled during: {}. Install again to resume (pip keeps what it "
                                     "already installed).").format(self.steps[self.index].title))
        if process is not None and process.state() != QProcess.ProcessState.NotRunning:
            process.kill()
            process.waitForFinished(5000)

    def _end(self, state: str, message: str) -> None:
        self.state = state
        self.status_label.setText(message)
        self.log_view.appendPlainText(message)
        self._update_buttons()
        self.setup_finished.emit(state)

    def reject(self) -> None:
        if self.state != RUNNING:
            super().reject()
