"""HTTP client of the coredino backend (docs/protocol.md, version 1).

Two flavours over the same request building and error wording:

* :class:`BackendClient`: asynchronous, for the GUI thread. Requests go through
  QgsNetworkAccessManager; the answer is handed to a callback as an :class:`Answer`.
* :class:`BlockingBackendClient`: synchronous (QgsBlockingNetworkRequest), for Processing
  algorithms, which already run outside the GUI thread.

Every failure becomes one sentence a user can act on (:func:`describe_failure`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Callable, Optional

from qgis.core import QgsBlockingNetworkRequest, QgsNetworkAccessManager
from qgis.PyQt.QtCore import QObject, QTimer, QUrl
from qgis.PyQt.QtNetwork import QNetworkReply, QNetworkRequest

from .contract.protocol import PROTOCOL_VERSION as PROTOCOL

DEFAULT_TIMEOUT_S = 15.0

_NE = QNetworkReply.NetworkError
_NOT_LISTENING = {getattr(_NE, name) for name in (  # NetworkSessionFailedError is gone in Qt6
    "ConnectionRefusedError", "HostNotFoundError", "RemoteHostClosedError", "NetworkSessionFailedError",
    "UnknownNetworkError") if hasattr(_NE, name)}


def enum_text(value) -> str:
    """An enum value for a message: its name under Qt6 / QGIS 4, its number under PyQt5."""
    name = getattr(value, "name", None)
    return name if isinstance(name, str) else str(int(value))


@dataclass
class Answer:
    """The outcome of one request: ``data`` (decoded JSON) when ``ok``, else ``error``."""

    ok: bool
    status: int = 0
    data: Optional[dict] = None
    error: str = ""
    unreachable: bool = False  # nothing answered at the address (vs. an HTTP error)


def describe_failure(url: str, status: int, network_error, body: bytes, token_file: str = "",
                     timed_out: bool = False) -> Answer:
    """Turn a failed exchange into an :class:`Answer` holding one plain sentence."""
    if timed_out:
        return Answer(False, status, error=f"The coredino backend at {url} did not answer in time; "
                                          "it may be overloaded or stuck: check it, or restart it.")
    if not status:
        if network_error in _NOT_LISTENING or network_error is None:
            return Answer(False, 0, unreachable=True, error=(
                f"No coredino backend at {url}: start one with `coredino serve` or set the Python "
                "to start it in Settings (Raster > coredino > Settings)."))
        return Answer(False, 0, unreachable=True, error=f"Cannot reach the coredino backend at {url} "
                                                        f"(network error {enum_text(network_error)}).")
    detail = _detail(body)
    if status == 401:
        where = f" in {token_file}" if token_file else ""
        return Answer(False, status, error=(
            f"The backend refused the token{where}: the backend at {url} writes a new token at "
            "every start; point Settings > Token file at the file given to `coredino serve "
            "--token-file` (default ~/.cache/coredino/service/token-<port>), or restart the backend."))
    if status == 404:
        return Answer(False, status, error=f"The backend at {url} does not know this: {detail or 'not found'} "
                                           "(was it restarted? then run again).")
    if status == 422:
        return Answer(False, status, error=f"The backend rejected the job: {detail}")
    return Answer(False, status, error=f"The backend at {url} answered HTTP {status}: {detail or 'no detail'}")


def _detail(body: bytes) -> str:
    try:
        detail = json.loads(bytes(body).decode("utf-8")).get("detail", "")
    except (ValueError, AttributeError, UnicodeDecodeError):
        return bytes(body or b"")[:200].decode("utf-8", "replace").strip()
    if isinstance(detail, list):  # FastAPI validation errors: [{"loc": [...], "msg": ...}]
        return "; ".join(f"{'.'.join(str(p) for p in d.get('loc', [])[1:])}: {d.get('msg', '')}"
                         if isinstance(d, dict) else str(d) for d in detail)
    return str(detail)


def decode(url: str, status: int, body: bytes) -> Answer:
    try:
        data = json.loads(bytes(body).decode("utf-8")) if body else {}
    except (ValueError, UnicodeDecodeError):
        return Answer(False, status, error=f"The server at {url} is not a coredino backend "
                                           "(its answer is not JSON); check the URL in Settings.")
    return Answer(True, status, data=data)


def protocol_problem(url: str, capabilities_or_health: dict) -> str:
    """A message when the backend speaks another protocol version, else ``""``."""
    protocol = capabilities_or_health.get("protocol")
    if protocol == PROTOCOL:
        return ""
    newer = "backend" if isinstance(protocol, int) and protocol > PROTOCOL else "plugin"
    return (f"The backend at {url} speaks protocol {protocol} but this plugin speaks protocol "
            f"{PROTOCOL}: update the {newer} (plugin: Plugins > Manage and Install Plugins; backend: "
            "`make install` in the coredino project) so both match.")


def _request(url: str, path: str, token: str, timeout_s: float) -> QNetworkRequest:
    req = QNetworkRequest(QUrl(url.rstrip("/") + path))
    req.setHeader(QNetworkRequest.KnownHeaders.ContentTypeHeader, "application/json")
    req.setRawHeader(b"Accept", b"application/json")
    if token:
        req.setRawHeader(b"Authorization", b"Bearer " + token.encode("ascii", "replace"))
    req.setAttribute(QNetworkRequest.Attribute.CacheLoadControlAttribute,
                     QNetworkRequest.CacheLoadControl.AlwaysNetwork)
    req.setAttribute(QNetworkRequest.Attribute.CacheSaveControlAttribute, False)
    if hasattr(req, "setTransferTimeout"):
        req.setTransferTimeout(int(timeout_s * 1000))
    return req


def _status(value) -> int:
    try:
        return int(value or 0)
    except (TypeError, ValueError):
        return 0


class BackendClient(QObject):
    """Asynchronous client for the GUI thread: ``get``/``post`` call ``callback(Answer)`` later."""

    def __init__(self, url: str, token: str = "", token_file: str = "", parent: QObject = None):
        super().__init__(parent)
        self.url = url.rstrip("/")
        self.token = token
        self.token_file = token_file
        self._pending = set()

    def get(self, path: str, callback: Callable[[Answer], None], timeout_s: float = DEFAULT_TIMEOUT_S):
        self._send("GET", path, None, callback, timeout_s)

    def post(self, path: str, body: Optional[dict], callback: Callable[[Answer], None],
             timeout_s: float = DEFAULT_TIMEOUT_S):
        self._send("POST", path, body, callback, timeout_s)

    def abort_all(self) -> None:
        """Abort requests in flight; their callbacks are not called."""
        for reply, _ in list(self._pending):
            reply.setProperty("coredino_dropped", True)
            reply.abort()

    def _send(self, method, path, body, callback, timeout_s):
        req = _request(self.url, path, self.token, timeout_s)
        nam = QgsNetworkAccessManager.instance()
        if method == "GET":
            reply = nam.get(req)
        else:
            reply = nam.post(req, json.dumps(body or {}).encode("utf-8"))
        timer = QTimer(reply)
        timer.setSingleShot(True)
        timer.timeout.connect(lambda: (reply.setProperty("coredino_timed_out", True), reply.abort()))
        timer.start(int(timeout_s * 1000))
        entry = (reply, timer)
        self._pending.add(entry)
        reply.finished.connect(lambda: self._finished(entry, callback))

    def _finished(self, entry, callback):
        reply, timer = entry
        self._pending.discard(entry)
        timer.stop()
        dropped = bool(reply.property("coredino_dropped"))
        timed_out = bool(reply.property("coredino_timed_out"))
        status = _status(reply.attribute(QNetworkRequest.Attribute.HttpStatusCodeAttribute))
        body = bytes(reply.readAll())
        error = reply.error()
        reply.deleteLater()
        if dropped:
            return
        if status and 200 <= status < 300:
            answer = decode(self.url, status, body)
        else:
            transfer_timeout = getattr(_NE, "OperationCanceledError", None)
            answer = describe_failure(self.url, status, error, body, self.token_file,
                                      timed_out=timed_out or (not status and error == transfer_timeout))
        callback(answer)


class BlockingBackendClient:
    """Synchronous client for code that already runs off the GUI thread (Processing)."""

    def __init__(self, url: str, token: str = "", token_file: str = ""):
        self.url = url.rstrip("/")
        self.token = token
        self.token_file = token_file

    def get(self, path: str, timeout_s: float = DEFAULT_TIMEOUT_S) -> Answer:
        return self._send("GET", path, None, timeout_s)

    def post(self, path: str, body: Optional[dict] = None, timeout_s: float = DEFAULT_TIMEOUT_S) -> Answer:
        return self._send("POST", path, body, timeout_s)

    def _send(self, method, path, body, timeout_s) -> Answer:
        req = _request(self.url, path, self.token, timeout_s)
        blocking = QgsBlockingNetworkRequest()
        if method == "GET":
            code = blocking.get(req, True)
        else:
            code = blocking.post(req, json.dumps(body or {}).encode("utf-8"), True)
        reply = blocking.reply()
        status = _status(reply.attribute(QNetworkRequest.Attribute.HttpStatusCodeAttribute))
        body_bytes = bytes(reply.content())
        if code == QgsBlockingNetworkRequest.ErrorCode.NoError and 200 <= status < 300:
            return decode(self.url, status, body_bytes)
        timed_out = code == QgsBlockingNetworkRequest.ErrorCode.TimeoutError or (
            not status and reply.error() == getattr(_NE, "OperationCanceledError", None))
        return describe_failure(self.url, status, reply.error() if not status else None, body_bytes,
                                self.token_file, timed_out=timed_out)
