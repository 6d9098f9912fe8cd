"""Per-step schedules (pure functions of the step, so a resumed run continues them exactly)."""

from __future__ import annotations

import math


def cosine(step: int, total: int, start: float, end: float, warmup: int = 0,
           warmup_start: float = 0.0) -> float:
    """Linear warm-up from ``warmup_start`` to ``start`` over ``warmup`` steps, then cosine to ``end``."""
    if step < warmup:
        return warmup_start + (start - warmup_start) * step / max(1, warmup)
    span = max(1, total - warmup - 1)
    t = min(1.0, (step - warmup) / span)
    return end + 0.5 * (start - end) * (1 + math.cos(math.pi * t))


def linear_then_constant(step: int, warmup: int, start: float, end: float) -> float:
    """Linear from ``start`` to ``end`` over ``warmup`` steps, then ``end`` (teacher temperature)."""
    if warmup <= 0 or step >= warmup:
        return end
    return start + (end - start) * step / warmup
