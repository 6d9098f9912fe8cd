"""Helpers shared by the plugin tests (kept out of conftest.py so test modules can import them)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def spin_until(predicate, timeout: float = 60.0, step: float = 0.02) -> bool:
    """Run the Qt event loop until ``predicate()`` is true or ``timeout`` seconds pass."""
    from qgis.core import QgsApplication

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        QgsApplication.processEvents()
        if predicate():
            return True
        time.sleep(step)
    QgsApplication.processEvents()
    return bool(predicate())


def http_json(url: str, token: str = "", body: dict | None = None, timeout: float = 5.0) -> dict:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method="POST" if data is not None else "GET")
    req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(req, timeout=timeout) as answer:
        return json.loads(answer.read())


@dataclass
class Backend:
    url: str
    port: int
    token_file: Path
    cache: Path
    codebooks: Path
    process: subprocess.Popen
    log: Path

    @property
    def token(self) -> str:
        return self.token_file.read_text().strip()

    def get(self, path: str) -> dict:
        return http_json(self.url + path, self.token)

    def post(self, path: str, body: dict | None = None) -> dict:
        return http_json(self.url + path, self.token, body if body is not None else {})


def backend_env(cache: Path) -> dict:
    env = dict(os.environ, COREDINO_CACHE=str(cache), HF_HUB_OFFLINE="1", YOLO_OFFLINE="1", YOLO_VERBOSE="False")
    env.pop("GDAL_PAM_PROXY_DIR", None)
    return env


def wait_for_health(url: str, process: subprocess.Popen | None = None, timeout: float = 180.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"the backend exited with {process.returncode}")
        try:
            if http_json(url + "/v1/health", timeout=2).get("ok"):
                return
        except (OSError, urllib.error.URLError, ValueError):
            pass
        time.sleep(0.25)
    raise RuntimeError(f"no backend health at {url} after {timeout:.0f} s")


class FakeBackend:
    """A scripted stand-in for `coredino serve` (protocol mismatches, busy queues, crashes).

    ``routes`` maps "METHOD /path" to (status, JSON body); unknown paths answer 404.
    """

    def __init__(self, routes: dict):
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        self.routes = routes
        self.requests: list[str] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self, method: str) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                key = f"{method} {self.path}"
                fake.requests.append(key)
                status, body = fake.routes.get(key, (404, {"detail": "not found"}))
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):  # noqa: N802
                self._answer("GET")

            def do_POST(self):  # noqa: N802
                self._answer("POST")

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        """Stop listening: later requests get 'connection refused', like a killed backend."""
        self.server.shutdown()
        self.server.server_close()


def capabilities(protocol: int = 1, running=None, queued: int = 0) -> dict:
    return {"protocol": protocol, "version": "0.1.0", "device": "cuda", "gpu": "NVIDIA H100",
            "gpu_memory_gb": 79.6, "torch": "2.15.0", "model_families": ["core-dino", "dinov2"],
            "codebooks": [{"name": "coredino-n-default.codebook.npz", "path": "/x/coredino-n-default.codebook.npz",
                           "k": 6000, "metric": "cosine", "model": "core-dino:n@19", "gsd": 0.25, "patch": 16,
                           "tile": 24, "border": 3, "default": True}],
            "queue": {"running": running, "queued": queued}}


def job(state: str, progress: float = 0.0, message: str = "", job_id: str = "j1") -> dict:
    return {"id": job_id, "kind": "classify", "state": state, "progress": progress, "message": message,
            "created": "2026-11-23T10:00:00+00:00", "started": None, "finished": None, "result": None,
            "error": None}
