"""Write classified cells as a Cloud-Optimized GeoTIFF, atomically.

Cells stream through :class:`~coredino.cog.AtomicCOG`; on success the COG gets the codebook's
colour table and MODE overviews, and a QML sidecar styles it in QGIS with only the classes present.
Nothing is left at the output path when a job fails or is cancelled.
"""

from __future__ import annotations

from typing import Callable, Optional

import numpy as np
from osgeo import gdal

from coredino_contract.naming import style_path

from .cog import AtomicCOG
from .raster import Grid
from .styling import cluster_qml

BLOCK = 128  # class maps are 1/64-1/1024 the size of their source: small blocks, overviews sooner


def nodata_for(k: int) -> int:
    """Byte ids (nodata 255) up to 255 classes, UInt16 ids (nodata 65535) above."""
    return 255 if k <= 255 else 65535


class ClassWriter:
    """Collects cluster ids for a grid and publishes them as ``path`` on :meth:`finish`.

    Use as a context manager: leaving it without ``finish`` (an error, a cancel) removes every
    temporary file.
    """

    def __init__(self, path: str, grid: Grid, colors: np.ndarray, tags: dict[str, str],
                 legend: Optional[Callable[[dict[int, int]], str]] = None):
        """legend: the .qml text for the ids present (id -> cells); default: clusters, largest first."""
        self.legend = legend
        self.k = len(colors)
        if self.k > 65535:
            raise ValueError("at most 65535 classes fit a UInt16 COG")
        self.nodata = nodata_for(self.k)
        self.colors = colors
        self.tags = tags
        self.counts = np.zeros(self.k, np.int64)
        dtype = gdal.GDT_Byte if self.nodata == 255 else gdal.GDT_UInt16
        self._cog = AtomicCOG(path, grid, dtype, self.nodata, block=BLOCK, resampling="MODE")

    def __enter__(self) -> "ClassWriter":
        return self

    def __exit__(self, *exc) -> None:
        self._cog.__exit__(*exc)

    def write(self, x: int, y: int, ids: np.ndarray) -> None:
        """Write a block of ids (nodata where invalid) with its top-left cell at (x, y)."""
        valid = ids[ids != self.nodata]
        self.counts += np.bincount(valid, minlength=self.k)
        self._cog.write(x, y, ids.astype(np.uint16))

    def finish(self, rgb_path: Optional[str] = None) -> dict:
        """Publish the COG (and optional RGBA COG); return its class counts by id."""
        present = {int(i): int(n) for i, n in enumerate(self.counts) if n}
        qml = self._cog.sidecar(style_path(str(self._cog.path)))
        text = cluster_qml(present, self.colors) if self.legend is None else self.legend(present)
        qml.write_text(text, encoding="utf-8")
        self._cog.publish(self.tags, colors=self.colors, rgba=rgb_path)
        return present
