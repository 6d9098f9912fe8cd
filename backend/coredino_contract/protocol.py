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
    """Where a running backend announces itself (token and discovery files)."""
    return cache_dir() / "service"


def service_file(port: int = DEFAULT_PORT) -> Path:
    """The discovery file of the backend on ``port`` (one per port: backends on two ports never
    overwrite each other's): ``{"url", "pid", "token_file", "protocol"}``."""
    return service_dir() / f"service-{port}.json"


def default_token_file(port: int = DEFAULT_PORT) -> Path:
    """The token of the backend on ``port`` unless it was started with --token-file."""
    return service_dir() / f"token-{port}"
