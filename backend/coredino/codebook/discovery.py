"""Which codebooks a backend offers: the bundled one plus ``*.codebook.npz`` in given folders."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Optional

from coredino_contract.params import model_id

from ..catalogue import license_for
from ..errors import UserError
from . import Codebook

log = logging.getLogger(__name__)


class CodebookCatalogue:
    """The default codebook plus ``*.codebook.npz`` in ``dirs``, rescanned on each call.

    Descriptions are cached per file version; a file that does not load is skipped with one log line.
    """

    def __init__(self, dirs: list[Path], default: Path) -> None:
        self.dirs = [Path(d) for d in dirs]
        self.default = Path(default).resolve()
        self._cache: dict[tuple[Path, int, int], Optional[dict]] = {}

    def scan(self) -> list[dict]:
        """One description per loadable codebook: name, path, k, metric, model, gsd, patch, tile,
        border, default, license."""
        paths = [self.default] + sorted(p.resolve() for d in self.dirs for p in d.glob("*.codebook.npz"))
        infos = []
        for path in dict.fromkeys(paths):  # unique, in order
            try:
                stat = path.stat()
            except OSError as exc:
                log.warning("codebook %s skipped: %s", path, exc.strerror)
                continue
            key = (path, stat.st_mtime_ns, stat.st_size)
            if key not in self._cache:
                self._cache[key] = _describe(path, path == self.default)
            if self._cache[key] is not None:
                infos.append(self._cache[key])
        return infos


def _describe(path: Path, default: bool) -> Optional[dict]:
    try:
        codebook = Codebook.load(path)
    except UserError as exc:
        log.warning("codebook skipped: %s", exc)
        return None
    summary, recipe = codebook.summary(), codebook.recipe
    return {"name": path.name, "path": str(path), "k": summary["k"], "metric": summary["metric"],
            "model": model_id(recipe["family"], recipe["variant"], recipe.get("layer")),
            "gsd": summary["gsd"], "patch": summary["patch"], "tile": summary["tile"],
            "border": summary["border"], "default": default,
            "license": license_for(recipe)}
