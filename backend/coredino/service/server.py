"""Start the backend: listen, write the token and discovery files, serve until SIGTERM/SIGINT."""

from __future__ import annotations

import errno
import json
import logging
import os
import secrets
import signal
import socket
import sys
from pathlib import Path
from typing import Optional, Sequence

import uvicorn

from coredino_contract.protocol import PROTOCOL_VERSION, default_token_file, service_dir, service_file

from ..atomic import atomic_open
from ..errors import UserError
from .app import create_app


def serve(host: str = "127.0.0.1", port: int = 8765, token_file: Optional[Path] = None,
          codebook_dirs: Sequence[Path] = ()) -> int:
    """Serve protocol version 1 until SIGTERM or SIGINT; return the exit code (0)."""
    folder = service_dir()
    for d in codebook_dirs:
        if not Path(d).is_dir():
            raise UserError(f"--codebooks {d}: not a folder")
    sock = _listen(host, port, service_file(port))  # before writing anything: a refused start changes nothing
    port = sock.getsockname()[1]
    info_file = service_file(port)
    token = secrets.token_urlsafe(32)
    token_file = Path(token_file or default_token_file(port)).absolute()
    client_host = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)
    url = f"http://{f'[{client_host}]' if ':' in client_host else client_host}:{port}"
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    server = uvicorn.Server(uvicorn.Config(
        create_app(token, [Path(d) for d in codebook_dirs], host), host=host, port=port,
        log_level="warning", timeout_graceful_shutdown=5))
    # uvicorn handles the signals while it runs, then re-raises them: ours make that a clean return,
    # and stop a server signalled before uvicorn took over.
    previous = {sig: signal.signal(sig, lambda *_: setattr(server, "should_exit", True))
                for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        try:
            folder.mkdir(parents=True, exist_ok=True)
            folder.chmod(0o700)
            token_file.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            _write_private(token_file, token + "\n")
            _write_private(info_file, json.dumps({"url": url, "pid": os.getpid(), "token_file": str(token_file),
                                                  "protocol": PROTOCOL_VERSION}) + "\n")
        except OSError as exc:
            raise UserError(f"cannot write {exc.filename}: {exc.strerror}; pass --token-file or set "
                            f"COREDINO_CACHE to a writable folder") from None
        print(f"coredino: serving protocol {PROTOCOL_VERSION} on {url}, token in {token_file}; "
              f"Ctrl+C stops", file=sys.stderr, flush=True)
        server.run(sockets=[sock])
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        sock.close()
        _remove_if_ours(info_file)
    print("coredino: backend stopped", file=sys.stderr)
    return 0


def _listen(host: str, port: int, info_file: Path) -> socket.socket:
    try:
        return socket.create_server((host, port), family=socket.AF_INET6 if ":" in host else socket.AF_INET)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            shown = f"~/{info_file.relative_to(Path.home())}" if info_file.is_relative_to(Path.home()) else info_file
            raise UserError(f"port {port} is in use: is a backend already running? (see {shown}) "
                            f"or pass --port") from None
        raise UserError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None


def _write_private(path: Path, text: str) -> None:
    """Write a 0600 file atomically."""
    with atomic_open(path, 0o600) as f:
        f.write(text.encode())


def _remove_if_ours(info_file: Path) -> None:
    """Remove the discovery file unless another backend has replaced it since."""
    try:
        if json.loads(info_file.read_text())["pid"] == os.getpid():
            info_file.unlink()
    except (OSError, ValueError, KeyError):
        pass
