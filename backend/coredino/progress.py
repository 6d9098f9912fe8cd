"""Progress reporting and cancellation shared by every engine entry point."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Callable, Optional

from .errors import Cancelled

ProgressCallback = Callable[[float, str], None]


@dataclass
class Progress:
    """Reports a fraction in [0, 1] with a message and honours cancellation.

    The CLI passes a callback that drives a progress bar; the service passes one that
    updates the job record and sets ``cancel`` when a client asks to stop.
    """

    callback: Optional[ProgressCallback] = None
    cancel: threading.Event = field(default_factory=threading.Event)

    def update(self, fraction: float, message: str = "") -> None:
        """Report progress; raises :class:`Cancelled` if cancellation was requested."""
        if self.cancel.is_set():
            raise Cancelled("cancelled")
        if self.callback is not None:
            self.callback(min(max(fraction, 0.0), 1.0), message)

    def scaled(self, start: float, stop: float) -> "Progress":
        """A view reporting into the sub-range [start, stop] of this progress."""
        def forward(fraction: float, message: str) -> None:
            self.update(start + (stop - start) * fraction, message)
        return Progress(callback=forward, cancel=self.cancel)
