"""Finding a running coredino backend, or starting one with QProcess.

A running ``coredino serve`` announces itself in ``<cache>/service/service-<port>.json``
(``<cache>`` is ``$COREDINO_CACHE`` or ``~/.cache/coredino``; one file per port, so two backends
never overwrite each other's) with its URL and token file. When nothing answers
and Settings name the Python of the backend's environment, :class:`BackendLauncher` starts
``<python> -m coredino.cli serve`` (never ``sys.executable``: inside QGIS that is not QGIS's
interpreter), waits asynchronously for ``/v1/health`` and stops the process on :meth:`stop`.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from qgis.PyQt.QtCore import QObject, QProcess, QProcessEnvironment, QTimer, pyqtSignal, pyqtSlot

from .client import Answer, BackendClient, protocol_problem
from .contract.protocol import DEFAULT_PORT, default_token_file, service_file
from .log import CRITICAL, WARNING, log
from .settings import DEFAULT_URL, PluginSettings

START_TIMEOUT_S = 180.0  # importing torch on a busy 2-core machine can take a minute
#: variables QGIS sets for itself that must not leak into the backend's Python
STRIPPED_ENV = ("GDAL_PAM_PROXY_DIR", "PYTHONHOME", "PYTHONPATH")



@dataclass
class Connection:
    """Where the backend is and how to authenticate; ``origin`` says how it was found."""

    url: str
    token_file: str
    origin: str  # "settings", "service.json" or "default"

    def token(self) -> str:
        return read_token(self.token_file)

    def is_local(self) -> bool:
        return (urlparse(self.url).hostname or "") in ("127.0.0.1", "localhost", "::1")

    def port(self) -> int:
        return urlparse(self.url).port or 8765


def read_token(path: str) -> str:
    try:
        return Path(path).expanduser().read_text(encoding="utf-8").strip()
    except OSError:
        return ""


def running_service(port: int | None = None) -> dict:
    """The discovery file of the live backend on ``port``, else ``{}``; without a port, the
    default port's backend, else the most recently started live one."""
    if port is not None:
        return _alive(service_file(port))
    others = sorted(service_file().parent.glob("service-*.json"), key=_mtime, reverse=True)
    for path in dict.fromkeys([service_file()] + others):
        info = _alive(path)
        if info:
            return info
    return {}


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


def _alive(path: Path) -> dict:
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(info, dict):
        return {}
    pid = info.get("pid")
    if isinstance(pid, int) and pid > 0:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return {}
        except (PermissionError, OSError):
            pass  # alive but not ours, or a platform without signal 0 semantics
    return info if info.get("url") else {}


def resolve_connection(settings: PluginSettings) -> Connection:
    if settings.url:
        url = settings.url.rstrip("/")
        port = urlparse(url).port or DEFAULT_PORT
        service = running_service(port)
        same = service.get("url", "").rstrip("/") == url
        token_file = settings.token_file or (service.get("token_file") if same else "") \
            or str(default_token_file(port))
        return Connection(url, token_file, "settings")
    service = running_service()
    if service:
        port = urlparse(service["url"]).port or DEFAULT_PORT
        return Connection(service["url"].rstrip("/"), settings.token_file or service.get("token_file")
                          or str(default_token_file(port)), "service.json")
    return Connection(DEFAULT_URL, settings.token_file or str(default_token_file()), "default")


def client_for(connection: Connection, parent: QObject = None) -> BackendClient:
    return BackendClient(connection.url, connection.token(), connection.token_file, parent)


def backend_command(python: str, connection: Connection) -> tuple[str, list[str]]:
    """Program and arguments that start a backend answering at ``connection``."""
    return python, ["-m", "coredino.cli", "serve", "--host", "127.0.0.1", "--port", str(connection.port()),
                    "--token-file", connection.token_file]


def backend_environment() -> QProcessEnvironment:
    env = QProcessEnvironment.systemEnvironment()
    for name in STRIPPED_ENV:
        env.remove(name)
    return env


class BackendLauncher(QObject):
    """Starts a backend process once and reports ``ready`` (URL) or ``failed`` (a sentence).

    Lives in the GUI thread; :meth:`start_from_settings` may be invoked from another thread with
    a queued connection (Processing). Only a process this object started is ever stopped.
    """

    ready = pyqtSignal(str)
    failed = pyqtSignal(str)

    def __init__(self, parent: QObject = None):
        super().__init__(parent)
        self.process: QProcess | None = None
        self.connection: Connection | None = None
        self._output: list[str] = []
        self._deadline = QTimer(self)
        self._deadline.setSingleShot(True)
        self._deadline.timeout.connect(self._timed_out)
        self._poll = QTimer(self)
        self._poll.setInterval(500)
        self._poll.timeout.connect(self._probe)
        self._client: BackendClient | None = None
        self._probing = False
        self._ready = False
        self.last_error = ""  # plain attributes, readable from Processing threads
        self.failed.connect(self._remember_failure)

    def _remember_failure(self, message: str) -> None:
        self.last_error = message

    # -- state ---------------------------------------------------------------------------
    def is_running(self) -> bool:
        return self.process is not None and self.process.state() != QProcess.ProcessState.NotRunning

    def is_starting(self) -> bool:
        return self.is_running() and not self._ready

    def is_ready(self) -> bool:
        return self._ready

    def output_tail(self, lines: int = 8) -> str:
        return "\n".join(self._output[-lines:])

    # -- start ---------------------------------------------------------------------------
    @pyqtSlot()
    def start_from_settings(self) -> None:
        settings = PluginSettings.load()
        self.start(settings.python, resolve_connection(settings))

    def start(self, python: str, connection: Connection) -> None:
        if self.is_running():
            if self._ready:
                self.ready.emit(self.connection.url)
            return  # already starting: ready/failed will follow
        if not python:
            self.failed.emit(f"No coredino backend at {connection.url}: start one with `coredino serve` or "
                             "set the Python to start it in Settings (Raster > coredino > Settings).")
            return
        if not connection.is_local():
            self.failed.emit(f"No coredino backend answers at {connection.url}, and the plugin only starts "
                             "backends on this computer: start it on that machine, or clear the URL in Settings.")
            return
        if not Path(python).is_file():
            self.failed.emit(f"The Python set in Settings ({python}) does not exist: choose the python of the "
                             "environment where coredino is installed (e.g. <project>/.venv/bin/python).")
            return
        if self.process is not None:  # an earlier backend of ours that has exited
            self.process.deleteLater()
        self.connection = connection
        self._output = []
        self._ready = False
        self.last_error = ""
        program, args = backend_command(python, connection)
        process = QProcess(self)
        process.setProcessEnvironment(backend_environment())
        process.setProcessChannelMode(QProcess.ProcessChannelMode.MergedChannels)
        process.readyReadStandardOutput.connect(self._read_output)
        process.finished.connect(self._process_finished)
        process.errorOccurred.connect(self._process_error)
        self.process = process
        log(f"starting the backend: {program} {' '.join(args)}")
        process.start(program, args)
        self._client = BackendClient(connection.url, "", connection.token_file, self)
        self._deadline.start(int(START_TIMEOUT_S * 1000))
        self._poll.start()

    def _read_output(self) -> None:
        if self.process is None:
            return
        text = bytes(self.process.readAllStandardOutput()).decode("utf-8", "replace")
        for line in text.splitlines():
            if line.strip():
                self._output.append(line.rstrip())
                log(f"backend: {line.rstrip()}")
        del self._output[:-50]

    def _probe(self) -> None:
        if self._probing or self._client is None:
            return
        self._probing = True
        self._client.get("/v1/health", self._health, timeout_s=5.0)

    def _health(self, answer: Answer) -> None:
        self._probing = False
        if self._ready or not self.is_running() or not answer.ok:
            return
        self._poll.stop()
        self._deadline.stop()
        problem = protocol_problem(self.connection.url, answer.data or {})
        if problem:
            self.failed.emit(problem)
            self.stop()
            return
        self._ready = True
        log(f"the backend started at {self.connection.url}")
        self.ready.emit(self.connection.url)

    def _timed_out(self) -> None:
        self._poll.stop()
        if self._ready:
            return
        tail = self.output_tail()
        self.stop()
        self.failed.emit(f"The backend started by the plugin did not answer within {START_TIMEOUT_S:.0f} s"
                         + (f"; its last output:\n{tail}" if tail else "."))

    def _process_error(self, error) -> None:
        if error == QProcess.ProcessError.FailedToStart and self.process is not None:
            program = self.process.program()
            self._stop_timers()
            self.failed.emit(f"Could not start the backend with {program}: check the Python in Settings.")

    def _process_finished(self, code: int, _status=None) -> None:
        self._read_output()
        was_ready = self._ready
        self._stop_timers()
        self._ready = False
        tail = self.output_tail()
        if was_ready:
            log(f"the backend started by the plugin exited (code {code})", WARNING)
            return
        if "No module named 'coredino'" in tail or "No module named coredino" in tail:
            message = (f"The Python set in Settings ({self.process.program()}) has no coredino installed: "
                       "choose the python of the coredino environment (e.g. <project>/.venv/bin/python).")
        else:
            message = f"The backend exited while starting (code {code})" + (f":\n{tail}" if tail else ".")
        log(message, CRITICAL)
        self.failed.emit(message)

    def _stop_timers(self) -> None:
        self._poll.stop()
        self._deadline.stop()
        self._probing = False
        if self._client is not None:
            self._client.abort_all()

    # -- stop ----------------------------------------------------------------------------
    def stop(self) -> None:
        """Stop the process this launcher started (if any); waits at most a few seconds."""
        self._stop_timers()
        process, self.process = self.process, None
        self._ready = False
        if process is None:
            return
        try:
            process.finished.disconnect(self._process_finished)
            process.errorOccurred.disconnect(self._process_error)
        except (TypeError, RuntimeError):
            pass
        if process.state() != QProcess.ProcessState.NotRunning:
            log("stopping the backend started by the plugin")
            process.terminate()
            if not process.waitForFinished(5000):
                process.kill()
                process.waitForFinished(2000)
        process.deleteLater()
