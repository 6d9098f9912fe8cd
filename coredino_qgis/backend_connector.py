"""Reaching a backend from the GUI thread: health -> (start one) -> capabilities -> protocol check.

All steps are asynchronous; the outcome is ``connected(capabilities)`` (with :attr:`client`
ready to use) or ``failed(message)`` with a sentence for the user.
"""

from __future__ import annotations

from qgis.PyQt.QtCore import QMetaObject, QObject, Qt, QThread, pyqtSignal

from .backend_process import BackendLauncher, Connection, client_for, resolve_connection
from .client import Answer, BackendClient, protocol_problem
from .settings import PluginSettings


def describe_device(capabilities: dict) -> str:
    """``Backend: cuda (NVIDIA H100, 80 GB)`` or ``Backend: cpu``."""
    device = capabilities.get("device") or "unknown device"
    gpu = capabilities.get("gpu")
    if gpu:
        memory = capabilities.get("gpu_memory_gb")
        extra = f"{gpu}, {memory:.0f} GB" if isinstance(memory, (int, float)) else str(gpu)
        return f"Backend: {device} ({extra})"
    return f"Backend: {device}"


def describe_codebook(codebook: dict) -> str:
    """One line for the codebook picker: name, k, GSD, model."""
    name = str(codebook.get("name", "?")).replace(".codebook.npz", "")
    gsd = codebook.get("gsd")
    gsd_text = f"{gsd:g} m" if isinstance(gsd, (int, float)) else "? m"
    return f"{name} (k {codebook.get('k', '?')}, {gsd_text}, {codebook.get('model', '?')})"


def codebook_choices(caps: dict) -> list[tuple[str, dict, str]]:
    """(text, data, tooltip) for the codebook picker: the backend's codebook files, then the catalogue
    entries with a published codebook (passed to the backend by name; fetched on first use)."""
    choices = [(describe_codebook(c), c, f"{describe_codebook(c)}\n{c.get('path', '')}\n"
                f"Licence: {c.get('license', '?')}") for c in caps.get("codebooks") or []]
    for entry in caps.get("catalogue") or []:
        if entry.get("codebook") != "import":
            continue
        state = "ready" if entry.get("ready") else "downloaded on first use"
        text = f"{entry['name']} (catalogue, {entry.get('gsd', '?'):g} m, {state})"
        data = {"name": entry["name"], "path": entry["name"], "gsd": entry.get("gsd"),
                "license": entry.get("license"), "default": False}
        choices.append((text, data, f"{entry.get('title', '')}\n{entry.get('recipe', '')}\n"
                                    f"Licence: {entry.get('license', '?')}"))
    return choices


class BackendConnector(QObject):
    status = pyqtSignal(str)
    connected = pyqtSignal(dict)
    failed = pyqtSignal(str)

    def __init__(self, launcher: BackendLauncher, parent: QObject = None):
        super().__init__(parent)
        self.launcher = launcher
        self.connection: Connection | None = None
        self.client: BackendClient | None = None
        self.capabilities: dict = {}
        self._active = False
        self._launch_tried = False
        launcher.ready.connect(self._launched)
        launcher.failed.connect(self._launch_failed)

    def is_busy(self) -> bool:
        return self._active

    def connect_backend(self) -> None:
        if self._active:
            return
        self._active = True
        self._launch_tried = False
        self._probe()

    def abandon(self) -> None:
        self._active = False
        if self.client is not None:
            self.client.abort_all()

    def _probe(self) -> None:
        settings = PluginSettings.load()
        self.connection = resolve_connection(settings)
        if self.client is not None:
            self.client.abort_all()
            self.client.deleteLater()
        self.client = client_for(self.connection, self)
        self.status.emit(f"Connecting to the backend at {self.connection.url}...")
        self.client.get("/v1/health", self._health, timeout_s=5.0)

    def _health(self, answer: Answer) -> None:
        if not self._active:
            return
        if not answer.ok:
            settings = PluginSettings.load()
            if answer.unreachable and not self._launch_tried and (settings.python or self.launcher.is_running()):
                self._launch_tried = True
                self.status.emit(f"Starting the backend ({settings.python or 'already starting'})... "
                                 "this can take a minute")
                self._start_backend()
                return
            self._fail(answer.error)
            return
        problem = protocol_problem(self.connection.url, answer.data or {})
        if problem:
            self._fail(problem)
            return
        self.client.get("/v1/capabilities", self._capabilities)

    def _start_backend(self) -> None:
        """Ask the launcher (a GUI-thread object) to start the backend; queued from other threads."""
        if QThread.currentThread() == self.launcher.thread():
            self.launcher.start_from_settings()
        else:
            QMetaObject.invokeMethod(self.launcher, "start_from_settings", Qt.ConnectionType.QueuedConnection)

    def _capabilities(self, answer: Answer) -> None:
        if not self._active:
            return
        if not answer.ok:
            self._fail(answer.error)
            return
        caps = answer.data or {}
        problem = protocol_problem(self.connection.url, caps)
        if problem:
            self._fail(problem)
            return
        self.capabilities = caps
        self._active = False
        self.connected.emit(caps)

    def _launched(self, _url: str) -> None:
        if self._active:
            self._probe()  # re-resolve: the token file now holds the new token

    def _launch_failed(self, message: str) -> None:
        if self._active:
            self._fail(message)

    def _fail(self, message: str) -> None:
        self._active = False
        self.failed.emit(message)
