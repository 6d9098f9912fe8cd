"""Where rasters live: local folders and GDAL's virtual file systems for object stores.

Inputs are read through GDAL, so any path it opens works (``/vsicurl/https://...``,
``/vsis3/bucket/key``, ``/vsigs/``, ``/vsiaz/``; credentials and endpoints as GDAL's
configuration options or ``AWS_*``/``GOOGLE_*``/``AZURE_*`` environment variables). Outputs on an
object store cannot be renamed into place, so they are written completely on the local disk and
then uploaded in one PUT (or one multipart upload): an object appears whole or not at all, which
is the object store's version of the temporary-then-rename guarantee.
"""

from __future__ import annotations

import glob
import os
import posixpath
import re
from pathlib import Path

from osgeo import gdal

from .errors import UserError

gdal.UseExceptions()

_CHUNK = 16 * 2**20  # bytes per upload write (GDAL turns big objects into a multipart upload)


def is_remote(path: str | os.PathLike) -> bool:
    """A GDAL virtual file system path (``/vsis3/...``, ``/vsicurl/...``), not a local file."""
    return str(path).startswith("/vsi")


def exists(path: str | os.PathLike) -> bool:
    if not is_remote(path):
        return os.path.exists(path)
    try:
        return gdal.VSIStatL(str(path)) is not None
    except RuntimeError:
        return False


def join(folder: str, *parts: str) -> str:
    """``folder/part/...`` for local folders and object-store prefixes alike."""
    return posixpath.join(str(folder), *parts) if is_remote(folder) else str(Path(folder, *parts))


def forget(prefix: str) -> None:
    """Drop GDAL's cached listings and sizes below an object-store ``prefix`` (other processes
    wrote there since this one looked)."""
    if is_remote(prefix):
        gdal.VSICurlPartialClearCache(prefix)


def list_files(root: str, pattern: str) -> list[tuple[str, str]]:
    """(path, path relative to ``root``) of the files below ``root`` matching the glob ``pattern``
    (``**`` spans folders), sorted; ``root`` is a local folder or an object-store prefix."""
    if not is_remote(root):
        if not os.path.isdir(root):
            raise UserError(f"{root}: not a folder")
        found = sorted(p for p in glob.glob(os.path.join(glob.escape(root), pattern), recursive=True)
                       if os.path.isfile(p))
        return [(p, Path(p).relative_to(root).as_posix()) for p in found]
    try:
        names = gdal.ReadDirRecursive(root.rstrip("/"))
    except RuntimeError:
        names = None
    if names is None:
        raise UserError(f"{root}: cannot list it; check the bucket/prefix and the credentials "
                        f"(AWS_*, GOOGLE_*, AZURE_* or GDAL config options)")
    match = _glob_regex(pattern)
    rel = sorted(n for n in names if not n.endswith("/") and match.fullmatch(n))
    return [(posixpath.join(root.rstrip("/"), n), n) for n in rel]


def upload(local: str | os.PathLike, remote: str) -> None:
    """Copy a finished local file to ``remote`` (an object appears once it is complete)."""
    with open(local, "rb") as f:
        _write(remote, iter(lambda: f.read(_CHUNK), b""))


def _write(remote: str, chunks) -> None:
    """Stream ``chunks`` into the object ``remote``; a one-line UserError when that fails."""
    failed = f"{remote}: cannot write there; check the bucket, its endpoint and the credentials"
    try:
        out = gdal.VSIFOpenL(remote, "wb")
    except RuntimeError as exc:
        raise UserError(f"{failed} ({str(exc).splitlines()[0]})") from None
    if out is None:
        raise UserError(failed)
    written = True
    try:
        for chunk in chunks:
            written = written and gdal.VSIFWriteL(chunk, 1, len(chunk), out) == len(chunk)
    finally:
        try:
            closed = gdal.VSIFCloseL(out) == 0
        except RuntimeError:
            closed = False
    if not (written and closed):
        raise UserError(failed)


def publish(temporary: str | os.PathLike, final: str | os.PathLike) -> None:
    """Move a complete temporary file to ``final``: a rename locally, an upload to object stores."""
    if is_remote(final):
        upload(temporary, str(final))
        os.unlink(temporary)
    else:
        os.replace(temporary, final)


def remove(path: str | os.PathLike) -> None:
    """Delete a file if it is there (local or remote)."""
    if is_remote(path):
        try:
            gdal.Unlink(str(path))
        except RuntimeError:
            pass  # not there
    else:
        Path(path).unlink(missing_ok=True)


def read_bytes(path: str) -> bytes:
    """A whole small file (a STAC document, a summary) from a local path, URL or /vsi path."""
    if path.startswith(("http://", "https://")):
        path = "/vsicurl/" + path
    if not is_remote(path):
        return Path(path).read_bytes()
    stat = gdal.VSIStatL(path) if exists(path) else None
    handle = gdal.VSIFOpenL(path, "rb") if stat is not None else None
    if handle is None:
        raise UserError(f"{path}: cannot read it; check the address and the credentials")
    try:
        return bytes(gdal.VSIFReadL(1, stat.size, handle))
    finally:
        gdal.VSIFCloseL(handle)


def write_bytes(path: str, data: bytes) -> None:
    """Write a small file atomically (temporary then rename locally; one PUT remotely)."""
    if is_remote(path):
        _write(path, [data])
        return
    from .atomic import atomic_open
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with atomic_open(path) as f:
        f.write(data)


def _glob_regex(pattern: str) -> re.Pattern:
    """A glob as a regex on relative posix paths: ``**/`` any folders, ``*``/``?`` within one
    name, and (like :mod:`glob`) no match of names starting with a dot."""
    out, i = [], 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out.append(r"(?:[^/.][^/]*/)*")
            i += 3
        elif pattern[i] == "*":
            out.append(r"(?:[^/.][^/]*)?" if i == 0 or pattern[i - 1] == "/" else r"[^/]*")
            i += 1
        elif pattern[i] == "?":
            out.append(r"[^/]")
            i += 1
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    return re.compile("".join(out))
