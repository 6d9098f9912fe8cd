"""The HTTP protocol's version and where a backend and its clients keep their files."""

from __future__ import annotations

import os
from pathlib import Path

#: bumped on any incompatible change of docs/protocol.md; plugin and backend must agree
PROTOCOL_VERSION = 1
DEFAULT_PORT = 8765


def cache_dir() -> Path:
    """coredino's cache folder: ``$COREDINO_CACHE`` or ``~/.cache/coredino``."""
    return Path(os.environ.get("COREDINO_CACHE") or Path.home() / ".cache" / "coredino")


def service_dir() -> Path:
    """Where a running backend announces itself (token and ``service.json``)."""
    return cache_dir() / "service"


def service_file() -> Path:
    return service_dir() / "service.json"


def default_token_file() -> Path:
    return service_dir() / "token"
