"""A uniform random sample of feature rows from a stream of unknown length, in bounded memory."""

from __future__ import annotations

import numpy as np


class Reservoir:
    """Algorithm R, vectorised per batch: after any number of rows, each is kept with equal chance.

    Rows are stored as float32, ``capacity * dim * 4`` bytes. float16 would halve that while
    streaming, but faiss needs float32, so fitting would then hold both copies (1.5x the float32
    peak) and large activations could overflow float16's 65504 limit.
    """

    def __init__(self, capacity: int, dim: int, seed: int) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be at least 1, got {capacity}")
        self.capacity = capacity
        self.dim = dim
        self.seen = 0
        self._rows = np.empty((capacity, dim), dtype=np.float32)
        self._rng = np.random.default_rng(seed)

    def add(self, batch: np.ndarray) -> None:
        """Offer the rows of ``batch`` (m, dim) to the sample."""
        if batch.ndim != 2 or batch.shape[1] != self.dim:
            raise ValueError(f"batch must be (m, {self.dim}), got {batch.shape}")
        m = batch.shape[0]
        fill = max(0, min(m, self.capacity - self.seen))  # rows that go into free slots
        self._rows[self.seen:self.seen + fill] = batch[:fill]
        if fill < m:
            # Row number t (0-based over the stream) replaces slot j ~ U[0, t] when j < capacity.
            t = np.arange(self.seen + fill, self.seen + m)
            slots = self._rng.integers(0, t + 1)
            hit = np.flatnonzero(slots < self.capacity)
            # When a slot is hit twice in one batch the later row wins, as in the sequential form.
            last_slots, first_rev = np.unique(slots[hit][::-1], return_index=True)
            self._rows[last_slots] = batch[fill + hit[::-1][first_rev]]
        self.seen += m

    def sample(self) -> np.ndarray:
        """The kept rows, ``min(seen, capacity)`` x dim float32 (a view: copy before adding more)."""
        return self._rows[:min(self.seen, self.capacity)]
