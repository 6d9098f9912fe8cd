"""Files that appear complete or not at all."""

from __future__ import annotations

import os
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO, Iterator


def temp_name(path: str | os.PathLike, suffix: str = ".tmp") -> Path:
    """A unique hidden name beside ``path`` for a file that is renamed over ``path`` once complete.

    Unique per call (a uuid), so two writers of one output never share a scratch file.
    """
    path = Path(path)
    return path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}{suffix}")


@contextmanager
def atomic_open(path: str | os.PathLike, mode: int = 0o644) -> Iterator[BinaryIO]:
    """Write ``path`` through a temporary file beside it (created with permissions ``mode``),
    renamed over ``path`` when the block completes and removed if it raises."""
    tmp = temp_name(path)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
