"""Named classes: which cluster ids make up each class, checked and kept in a small JSON file.

The one implementation of the classes file, used by ``coredino reclassify`` and the QGIS dock.

``<name>.classes.json``::

    {"format": "coredino-classes/1", "codebook_sha256": "...",
     "classes": {"buildings": [12, 407, 5120], "trees": [3, 88]}}

Cluster ids only mean something with the codebook that made them, hence its hash in the file.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

from .errors import UserError
from .files import atomic_open

FORMAT = "coredino-classes/1"
UNCLASSIFIED = "unclassified"
MAX_CLASSES = 254  # Byte values 1..254 (0 unclassified, 255 nodata)
# ColorBrewer Set1 + Dark2: distinct on imagery, repeated beyond 16 classes
PALETTE = ["#e41a1c", "#377eb8", "#4daf4a", "#984ea3", "#ff7f00", "#ffff33", "#a65628", "#f781bf",
           "#1b9e77", "#d95f02", "#7570b3", "#e7298a", "#66a61e", "#e6ab02", "#a6761d", "#666666"]


def class_color(index: int) -> tuple[int, int, int]:
    """RGB of the class with value ``index + 1``."""
    text = PALETTE[index % len(PALETTE)]
    return int(text[1:3], 16), int(text[3:5], 16), int(text[5:7], 16)


def class_name(name: object, where: str = "classes") -> str:
    """``name`` stripped, or a one-line :class:`UserError` when it cannot name a class."""
    clean = str(name).strip() if isinstance(name, str) else ""
    if not clean or clean.lower() == UNCLASSIFIED or len(clean) > 100:
        raise UserError(f"{where}: class name {name!r} is not allowed (non-empty, at most 100 "
                        f"characters, not '{UNCLASSIFIED}')")
    return clean


def validate(classes: object, k: int, where: str = "classes") -> dict[str, list[int]]:
    """Class name -> sorted unique cluster ids, or a one-line :class:`UserError`."""
    if not isinstance(classes, dict) or not classes:
        raise UserError(f"{where}: give at least one class as {{\"name\": [cluster ids]}}")
    if len(classes) > MAX_CLASSES:
        raise UserError(f"{where}: {len(classes)} classes; at most {MAX_CLASSES} fit a class map")
    owner: dict[int, str] = {}
    out: dict[str, list[int]] = {}
    for name, ids in classes.items():
        clean = class_name(name, where)
        if clean in out:
            raise UserError(f"{where}: class {clean!r} is given twice")
        if not isinstance(ids, (list, tuple)) or not all(isinstance(i, int) and not isinstance(i, bool)
                                                         for i in ids):
            raise UserError(f"{where}: class {clean!r} must list cluster ids (integers)")
        bad = [i for i in ids if not 0 <= i < k]
        if bad:
            raise UserError(f"{where}: class {clean!r} has cluster id {bad[0]}, outside 0..{k - 1} "
                            f"(the codebook has {k} clusters)")
        for i in ids:
            if owner.get(i, clean) != clean:
                raise UserError(f"{where}: cluster {i} is in both {owner[i]!r} and {clean!r}; a "
                                f"cluster belongs to one class")
            owner[i] = clean
        out[clean] = sorted(set(ids))
    return out


def save_classes(path: str, classes: dict[str, list[int]], codebook_sha256: Optional[str]) -> str:
    """Write ``path`` (atomically); returns it."""
    lines = [f"  {json.dumps(str(name))}: {json.dumps(sorted(set(int(i) for i in ids)))}"
             for name, ids in classes.items()]
    text = (f'{{"format": {json.dumps(FORMAT)}, "codebook_sha256": {json.dumps(codebook_sha256)},\n'
            f' "classes": {{\n' + ",\n".join(lines) + "\n }}\n")
    json.loads(text)  # one class per line, still plain JSON
    with atomic_open(path) as f:
        f.write(text.encode("utf-8"))
    return str(path)


def load_classes(path: str) -> tuple[dict, Optional[str]]:
    """(class name -> cluster ids as written, codebook_sha256) of a classes file."""
    if not Path(path).is_file():
        raise UserError(f"{path}: no such file")
    try:
        body = json.loads(Path(path).read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: not a classes file (not JSON: {exc})") from None
    if not isinstance(body, dict) or not isinstance(body.get("classes"), dict):
        raise UserError(f"{path}: not a classes file (expected {{\"classes\": {{\"name\": [ids]}}, "
                        f"\"codebook_sha256\": ...}})")
    return body["classes"], body.get("codebook_sha256")
