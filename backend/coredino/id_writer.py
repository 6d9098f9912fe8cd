"""Cluster ids written to the class map on one background thread, overlapping the encoder.

The classify loop hands each batch's ids to :meth:`IdWriter.put` (on a GPU still in flight: the
copy to the host was issued with ``non_blocking`` and ``arrived`` is the CUDA event recorded
after it) and goes on to launch the next batch. One writer thread waits for the event, scatters
the ids into rows of tiles (nodata outside the valid cells) and writes each row with one GDAL
call. The queue holds at most ``depth`` batches: a writer that falls behind makes ``put`` wait
(back-pressure: memory stays bounded). An error in the writer is raised in the calling thread
by the next ``put`` or by :meth:`close`, never swallowed; leaving the ``with`` block early (an
error, a cancel, SIGTERM) stops the thread before the :class:`ClassWriter` around it removes its
temporary files, so nothing half-written is published.
"""

from __future__ import annotations

import queue
import threading
from typing import Optional

import numpy as np
import torch

from .writer import ClassWriter

_STOP = object()  # the last item: flush the last row and end


class IdWriter:
    """Writes batches of ids into ``writer``; ``depth`` 0 writes in the caller's thread instead."""

    def __init__(self, writer: ClassWriter, width: int, first_row: int = 0, depth: int = 2) -> None:
        self.rows = _RowWriter(writer, width, first_row)
        self._error: Optional[BaseException] = None
        self._abort = False
        self._queue: queue.Queue = queue.Queue(max(depth, 1))
        self._thread: Optional[threading.Thread] = None
        if depth:
            self._thread = threading.Thread(target=self._run, name="coredino-id-writer", daemon=True)
            self._thread.start()

    def __enter__(self) -> "IdWriter":
        return self

    def __exit__(self, *exc) -> None:
        if self._thread is None or not self._thread.is_alive():
            return
        self._abort = True  # the writer skips what is queued and does not flush
        while True:
            try:
                self._queue.get_nowait()
            except queue.Empty:
                break
        self._queue.put(_STOP)  # only this thread puts: after the drain there is room
        self._thread.join()

    def put(self, tiles: list, keep: np.ndarray, ids: torch.Tensor,
            arrived: Optional["torch.cuda.Event"]) -> None:
        """Queue a batch: ``ids`` (m,) of the cells ``keep`` (n, h, w) marks in the tiles."""
        if self._thread is None:
            _write_ids(self.rows, tiles, keep, ids, arrived)
            return
        self._raise()
        self._queue.put((tiles, keep, ids, arrived))

    def close(self) -> None:
        """Write what is queued and the last row, end the thread; raise the writer's error if any."""
        if self._thread is None:
            self.rows.flush()
            return
        self._queue.put(_STOP)
        self._thread.join()
        self._raise()

    def _raise(self) -> None:
        if self._error is not None:
            raise self._error

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if self._error is not None or self._abort:  # keep taking items: put never blocks forever
                if item is _STOP:
                    return
                continue
            try:
                if item is _STOP:
                    self.rows.flush()
                    return
                _write_ids(self.rows, *item)
            except BaseException as exc:  # raised again in the caller's thread
                self._error = exc


def _write_ids(rows: "_RowWriter", tiles: list, keep: np.ndarray, ids: torch.Tensor,
               arrived: Optional["torch.cuda.Event"]) -> None:
    """Put a batch's ids (nodata outside ``keep``) in the row buffer once they have arrived."""
    if arrived is not None:
        arrived.synchronize()
    grid_ids = np.full(keep.shape, rows.writer.nodata, np.uint16)
    grid_ids[keep] = ids.numpy()
    for tile, tile_ids in zip(tiles, grid_ids):
        ox, oy = tile.offset
        rows.put(tile, tile_ids[oy:oy + tile.out_h, ox:ox + tile.out_w])


class _RowWriter:
    """Collects the ids of one row of tiles and writes the row in one call (few, large writes)."""

    def __init__(self, writer: ClassWriter, width: int, first_row: int = 0) -> None:
        self.writer, self.width, self.first_row = writer, width, first_row
        self.y: Optional[int] = None
        self.row: Optional[np.ndarray] = None

    def put(self, tile, ids: np.ndarray) -> None:
        if tile.out_y != self.y:
            self.flush()
            self.y = tile.out_y
            self.row = np.full((tile.out_h, self.width), self.writer.nodata, np.uint16)
        self.row[:, tile.out_x:tile.out_x + tile.out_w] = ids

    def flush(self) -> None:
        if self.row is not None:
            self.writer.write(0, self.y - self.first_row, self.row)
        self.y, self.row = None, None
