"""Cells per cluster of a class-map layer, counted off the GUI thread from QGIS's own provider.

Plain Python over provider blocks (``array`` + ``Counter``, both C loops): a class map has one
cell per 16 source pixels per side, so even a large scene is a few million cells. Blocks of
rows keep memory bounded. Results are cached per file version.
"""

from __future__ import annotations

import os
from array import array
from collections import Counter
from dataclasses import dataclass, field

from qgis.core import Qgis, QgsRasterLayer, QgsRectangle, QgsTask
from qgis.PyQt.QtCore import pyqtSignal

ROWS = 512  # rows per provider block
_TYPECODES = {Qgis.DataType.Byte: "B", Qgis.DataType.UInt16: "H"}
_cache: dict = {}


@dataclass
class ClusterStats:
    counts: dict = field(default_factory=dict)  # value -> cells (nodata excluded)
    cell_area: float = 0.0  # square map units (m² for coredino grids)

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def share(self, value: int) -> float:
        return self.counts.get(int(value), 0) / max(1, self.total)

    def area(self, value: int) -> float:
        return self.counts.get(int(value), 0) * self.cell_area


def _key(layer: QgsRasterLayer):
    try:
        stat = os.stat(layer.source())
        return layer.source(), stat.st_mtime_ns, stat.st_size
    except OSError:
        return None


def cached(layer: QgsRasterLayer):
    key = _key(layer)
    return _cache.get(key) if key else None


class ClusterStatsTask(QgsTask):
    """Counts the cells of each value of band 1; ``done(stats or None, error)`` in the GUI thread."""

    done = pyqtSignal(object, str)

    def __init__(self, layer: QgsRasterLayer):
        super().__init__(f"coredino: cluster areas of {layer.name()}", QgsTask.Flag.CanCancel)
        self.provider = layer.dataProvider().clone()  # a provider serves one thread
        self.key = _key(layer)
        self.extent = QgsRectangle(layer.extent())
        self.width, self.height = layer.width(), layer.height()
        self.cell_area = layer.rasterUnitsPerPixelX() * layer.rasterUnitsPerPixelY()
        self.nodata = self.provider.sourceNoDataValue(1) if self.provider.sourceHasNoDataValue(1) else None
        self.stats: ClusterStats | None = None
        self.error = ""

    def run(self) -> bool:
        typecode = _TYPECODES.get(self.provider.dataType(1))
        if typecode is None:
            self.error = "not a class map (expected Byte or UInt16 values)"
            return False
        counts: Counter = Counter()
        step = self.extent.height() / self.height
        for row in range(0, self.height, ROWS):
            if self.isCanceled():
                return False
            rows = min(ROWS, self.height - row)
            top = self.extent.yMaximum() - row * step
            window = QgsRectangle(self.extent.xMinimum(), top - rows * step, self.extent.xMaximum(), top)
            block = self.provider.block(1, window, self.width, rows)
            values = array(typecode)
            values.frombytes(bytes(block.data()))
            counts.update(values)
            self.setProgress(100.0 * (row + rows) / self.height)
        if self.nodata is not None:
            counts.pop(int(self.nodata), None)
        self.stats = ClusterStats(dict(counts), self.cell_area)
        return True

    def finished(self, ok: bool) -> None:  # GUI thread
        self.provider = None
        if ok and self.stats is not None:
            if self.key:
                _cache[self.key] = self.stats
            self.done.emit(self.stats, "")
        else:
            self.done.emit(None, self.error or "cancelled")
