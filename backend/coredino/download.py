"""HTTP downloads: resumable (``.part`` file + Range), checksum-verified, with a progress bar.

``COREDINO_OFFLINE=1`` forbids the network: :class:`Offline` is raised before any connection, so
callers can say which file to put where instead (a failed connection says the same).
"""

from __future__ import annotations

import hashlib
import http.client
import os
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Optional

from tqdm import tqdm

from .errors import UserError
from .progress import Progress

_CHUNK = 1 << 20


class Offline(UserError):
    """The network is switched off and the file is not here."""


class DownloadFailed(UserError):
    """The download did not complete; ``reason`` says why in a few words."""

    def __init__(self, url: str, reason: str, fix: str) -> None:
        super().__init__(f"cannot download {url} ({reason}); {fix}")
        self.reason = reason


def offline() -> bool:
    return os.environ.get("COREDINO_OFFLINE", "").lower() in ("1", "true", "yes", "on")


def download(url: str, target: Path, sha256: Optional[str] = None,
             progress: Optional[Progress] = None) -> str:
    """Download ``url`` to ``target`` (resuming ``target.part``); returns the file's sha256.

    With ``sha256``, a file whose digest differs is deleted and refused. Raises :class:`Offline`
    when the network is off, :class:`UserError` on any other failure (the ``.part`` is kept so a
    later call resumes).
    """
    if offline():
        raise Offline(f"{url}: not downloaded, the network is off (COREDINO_OFFLINE is set)")
    target.parent.mkdir(parents=True, exist_ok=True)
    part = target.with_name(target.name + ".part")
    done = part.stat().st_size if part.is_file() else 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={done}-"} if done else {})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            if done and response.status != 206:  # the server ignored the range: start again
                done = 0
            length = response.headers.get("Content-Length")
            total = done + int(length) if length else None
            with open(part, "ab" if done else "wb") as out, \
                    tqdm(total=total, initial=done, unit="B", unit_scale=True, desc=target.name,
                         file=sys.stderr, disable=not sys.stderr.isatty()) as bar:
                for chunk in iter(lambda: response.read(_CHUNK), b""):
                    out.write(chunk)
                    bar.update(len(chunk))
                    if progress is not None and total:
                        progress.update(out.tell() / total, f"downloading {target.name}")
                size = out.tell()
            if total is not None and size != total:
                raise OSError(f"incomplete download: {size} of {total} bytes")
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and done:  # nothing left to fetch: the .part is complete
            pass
        else:
            raise DownloadFailed(url, f"HTTP {exc.code}", "download it by hand") from None
    except (urllib.error.URLError, http.client.HTTPException, OSError) as exc:
        reason = str(getattr(exc, "reason", None) or exc)
        raise DownloadFailed(url, reason, "run the command again to resume, or download it by "
                                          "hand") from None
    digest = sha256_file(part)
    if sha256 and digest != sha256:
        part.unlink()
        raise DownloadFailed(url, f"sha256 {digest[:16]}... instead of {sha256[:16]}...",
                             "the file was deleted: try again or check the source")
    os.replace(part, target)
    return digest


def sha256_file(path: str | os.PathLike) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()
