"""Files that appear complete or not at all, and one writer at a time per output.

The naming rules live in :mod:`coredino_contract.files`: every temporary file is named
``.<final name>.<hex><suffix>`` beside its final path (unique: two writers never share one), so
:func:`output_lock` can recognise and remove the ones a killed writer left behind. The same lock
serialises the exports into the ONNX cache (:mod:`coredino.encoders.onnx_export`), waiting
instead of refusing.
"""

from __future__ import annotations

import os
import re
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterable, Iterator, Optional

from coredino_contract.files import atomic_open, temp_name

from .errors import UserError

try:
    import fcntl
except ImportError:  # Windows: no advisory locks; unique temporary names still apply
    fcntl = None


__all__ = ["OutputBusy", "atomic_open", "output_lock", "stale_temporaries", "temp_name"]
WAIT_POLL = 0.25  # seconds between two tries of a waiting output_lock


class OutputBusy(UserError):
    """Another process is writing the same output."""


def stale_temporaries(path: str | os.PathLike) -> list[Path]:
    """Temporary files of ``path`` (named by :func:`temp_name`) present in its folder."""
    path = Path(path)
    pattern = re.compile(rf"\.{re.escape(path.name)}\.[0-9a-f]{{8,32}}(\..*)?")
    try:
        return [p for p in path.parent.iterdir() if pattern.fullmatch(p.name)]
    except OSError:
        return []


@contextmanager
def output_lock(path: str | os.PathLike, companions: Iterable[str | os.PathLike] = (),
                wait: Optional[Callable[[str], None]] = None) -> Iterator[Path]:
    """Hold an advisory lock on writing ``path`` (``flock`` on ``.<name>.lock`` beside it).

    Raises :class:`OutputBusy` at once when another process holds it; with ``wait``, waits for
    it instead, calling ``wait(holder pid)`` every :data:`WAIT_POLL` seconds meanwhile (to tell
    the user, or to raise, e.g. :class:`~coredino.errors.Cancelled`, and give up). A holder that
    dies, even killed, releases the lock with its process. Once held, temporaries of ``path`` and
    of its ``companions`` (sidecars written with it) can only be leftovers of a killed writer:
    they are removed. The lock file is removed on release. Without ``fcntl`` (Windows) nothing
    is locked, created or removed.
    """
    path = Path(path)
    lock = path.with_name(f".{path.name}.lock")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = _acquire(lock, path, wait)
    except OSError as exc:
        raise UserError(f"{path}: cannot write there ({exc.strerror or exc}); choose another "
                        f"output folder") from None
    if fd is None:
        yield path
        return
    try:
        for target in [path, *map(Path, companions)]:
            for stale in stale_temporaries(target):
                stale.unlink(missing_ok=True)
        yield path
    finally:
        lock.unlink(missing_ok=True)  # while held: nobody locks a file that is about to vanish
        os.close(fd)


def _acquire(lock: Path, path: Path, wait: Optional[Callable[[str], None]]) -> Optional[int]:
    """The descriptor of ``lock``, locked; None without ``fcntl`` (Windows cannot delete a file
    that is open, so no lock file is made there)."""
    while fcntl is not None:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode(errors="replace").strip() or "?"
            os.close(fd)
            if wait is None:
                raise OutputBusy(f"{path}: another coredino process (pid {holder}) is writing it; "
                                 f"wait for it to finish or choose another output") from None
            wait(holder)
            time.sleep(WAIT_POLL)
            continue
        try:  # the previous holder may have removed the file between our open and flock
            same = os.fstat(fd).st_ino == os.stat(lock).st_ino
        except FileNotFoundError:
            same = False
        if same:
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())
            return fd
        os.close(fd)
    return None
