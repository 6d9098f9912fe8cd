"""A run's progress as the user sees it: percentage and remaining time on the dock's bar, and a
task in QGIS's task manager (bottom right of the status bar) that follows it."""

from __future__ import annotations

import time

from qgis.core import QgsApplication, QgsProxyProgressTask
from qgis.PyQt.QtCore import QCoreApplication
from qgis.PyQt.QtWidgets import QProgressBar


def tr(text: str) -> str:
    return QCoreApplication.translate("coredino", text)


def remaining_text(seconds: float) -> str:
    """``about 40 s left``, ``about 3 min left``."""
    if seconds < 60:
        return tr("about {} s left").format(max(1, int(round(seconds / 5.0)) * 5 if seconds > 10 else int(seconds)))
    return tr("about {} min left").format(int(round(seconds / 60.0)))


class RunProgress:
    """Follows one run: :meth:`update` with fractions in [0, 1], :meth:`finish` once."""

    def __init__(self, title: str, bar: QProgressBar):
        self.bar = bar
        self.task = QgsProxyProgressTask(title)
        QgsApplication.taskManager().addTask(self.task)
        self._origin: tuple[float, float] | None = None  # (time, fraction) of the first progress seen
        bar.setTextVisible(True)
        bar.setFormat("%p%")

    def estimate(self, fraction: float, now: float | None = None) -> float | None:
        """Seconds left, from the pace since the first progress (model loading excluded); None: too early."""
        now = time.monotonic() if now is None else now
        if self._origin is None:
            if fraction > 0:
                self._origin = (now, fraction)
            return None
        start, first = self._origin
        done = fraction - first
        if done < 0.02 or now - start < 2.0:
            return None
        return (now - start) * (1.0 - fraction) / done

    def update(self, fraction: float) -> None:
        fraction = min(1.0, max(0.0, fraction))
        self.bar.setValue(int(round(self.bar.maximum() * fraction)))
        left = self.estimate(fraction)
        self.bar.setFormat("%p%" if left is None else f"%p% · {remaining_text(left)}")
        self.task.setProxyProgress(100.0 * fraction)

    def finish(self, ok: bool) -> None:
        self.bar.setFormat("%p%")
        self.bar.setTextVisible(False)
        self.task.finalize(ok)
