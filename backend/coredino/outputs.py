"""Where a job may write: checked before any work, so a bad ``-o`` costs nothing and destroys nothing.

* an existing folder, or a name with the wrong extension, is refused;
* a file the job reads (its input, the codebook, the embeddings) is never overwritten;
* an existing file is replaced only when it is a coredino output of the same kind (a re-run),
  or when the caller passed ``overwrite`` (``--overwrite``).

What kind of coredino output a file is comes from the tags every writer puts in it.
"""

from __future__ import annotations

import os
import zipfile
import zlib
from pathlib import Path
from typing import Iterable, Optional, Sequence

import numpy as np
from osgeo import gdal

from .errors import UserError

gdal.UseExceptions()

CLASSES, RGB, EMBEDDINGS, SIMILARITY, CLASS_MAP, POLYGONS, CODEBOOK = (
    "class map", "RGB rendering", "embeddings file", "similarity map", "named-class map",
    "GeoPackage of polygons", "codebook")
RASTER_SUFFIXES = (".tif", ".tiff")


def output_kind(path: str | os.PathLike) -> Optional[str]:
    """Which coredino output ``path`` is (one of the kinds above), or None (not one, unreadable)."""
    if str(path).lower().endswith(".npz"):
        return CODEBOOK if _is_codebook(path) else None
    try:
        ds = gdal.OpenEx(str(path), gdal.OF_RASTER | gdal.OF_VECTOR | gdal.OF_READONLY)
    except RuntimeError:
        return None
    if ds is None:
        return None
    tags = ds.GetMetadata() or {}
    if ds.RasterCount == 0:
        return POLYGONS if "COREDINO_VERSION" in tags else None
    if "COREDINO_EMBEDDINGS" in tags:
        return EMBEDDINGS
    if "COREDINO_SIMILARITY" in tags:
        return SIMILARITY
    if "CLASS_NAMES" in tags:
        return CLASS_MAP
    if "CODEBOOK_SHA256" in tags and "COREDINO_VERSION" in tags:
        return CLASSES if ds.RasterCount == 1 else RGB
    return None


def check_output(output: str, kind: str, reads: Iterable[Optional[str]], overwrite: bool = False,
                 suffixes: Sequence[str] = RASTER_SUFFIXES,
                 sidecars: Sequence[tuple[str, Optional[str]]] = ()) -> None:
    """Raise a one-line :class:`UserError` unless ``output`` (a ``kind``) may be written.

    reads:    the files the job reads (never overwritten, even with ``overwrite``).
    sidecars: (path, kind or None for a plain text file) published with the output.
    """
    if not str(output).strip():
        raise UserError("no output given; pass -o FILE")
    path = Path(output)
    if path.is_dir():
        raise UserError(f"{output}: is a folder; give a file name, e.g. {path / ('result' + suffixes[0])}")
    if path.suffix.lower() not in suffixes:
        raise UserError(f"{output}: a {kind} is written as {' or '.join(suffixes)}; name the output "
                        f"{path.with_suffix(suffixes[0]).name}")
    sources = [Path(r) for r in reads if r]
    for target, target_kind in [(path, kind), *((Path(p), k) for p, k in sidecars)]:
        for source in sources:
            if _same_file(target, source):
                what = "" if target == path else f" (written beside {path.name})"
                raise UserError(f"{target}{what} is an input of this job ({source}); choose another output")
        if target.is_dir():
            raise UserError(f"{target}: is a folder, in the way of the {target_kind or 'sidecar'} "
                            f"written beside {path.name}; move it or choose another output")
        if target_kind is None or overwrite or not target.exists():
            continue
        found = output_kind(target)
        if found != target_kind:
            what = f"a coredino {found}" if found else "not a coredino output"
            raise UserError(f"{target} exists and is {what}; pass --overwrite to replace it, or "
                            f"choose another output")


def _is_codebook(path: str | os.PathLike) -> bool:
    from .codebook.codebook import FORMAT
    try:
        with np.load(path, allow_pickle=False) as npz:
            return "format" in npz.files and str(npz["format"]) == FORMAT
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error, AttributeError, TypeError):
        return False


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve() or (a.exists() and b.exists() and os.path.samefile(a, b))
    except OSError:
        return False
