"""CPU threads and OpenMP's wait policy, set before torch (and its OpenMP runtime) starts.

OpenMP's default is to spin-wait at every barrier. On a shared CPU (a laptop running QGIS, a
browser and the backend; a server running several jobs) spinning threads steal the cores the
working threads need: the default core-dino model, whose many small ops each end in a barrier,
ran 4.7-6x slower so (docs/benchmarks.md, section 6). The engine therefore sleeps instead of
spinning (``OMP_WAIT_POLICY=PASSIVE``) and uses as many threads as the cores it may run on.

Knobs: ``COREDINO_THREADS`` (or ``--threads``) sets the thread count; an ``OMP_WAIT_POLICY`` or
``OMP_NUM_THREADS`` already in the environment is honoured as is. ONNX Runtime gets the same
count and spins only when the policy is ``ACTIVE``.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from typing import Optional

from .errors import UserError


@dataclass(frozen=True)
class ThreadPolicy:
    threads: int
    wait_policy: str  # PASSIVE or ACTIVE (OpenMP's names)

    @property
    def spin(self) -> bool:
        return self.wait_policy == "ACTIVE"


def usable_cores() -> int:
    """Cores this process may run on: its CPU affinity, bounded by a cgroup CPU quota."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        cores = os.cpu_count() or 1
    try:
        quota, period = open("/sys/fs/cgroup/cpu.max").read().split()
        if quota != "max":
            cores = min(cores, max(1, int(int(quota) // int(period))))
    except (OSError, ValueError):
        pass
    return max(1, cores)


def configure_threads(threads: Optional[int] = None) -> ThreadPolicy:
    """Set the thread count and the wait policy for this process; call it before importing torch.

    ``threads``: None means ``COREDINO_THREADS``, else ``OMP_NUM_THREADS``, else
    :func:`usable_cores`. If torch is already imported, its thread count is still set, but
    OpenMP has read its wait policy at start-up and keeps it.
    """
    if threads is None:
        text = os.environ.get("COREDINO_THREADS") or os.environ.get("OMP_NUM_THREADS") or ""
        try:
            threads = int(text) if text else usable_cores()
        except ValueError:
            raise UserError(f"COREDINO_THREADS/OMP_NUM_THREADS={text!r} is not a number; set it "
                            f"to a thread count such as 2, or unset it") from None
    if threads < 1:
        raise UserError(f"--threads must be at least 1, got {threads}")
    os.environ["OMP_NUM_THREADS"] = str(threads)
    os.environ["MKL_NUM_THREADS"] = str(threads)
    wait = os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE").upper()
    if "torch" in sys.modules:
        import torch
        torch.set_num_threads(threads)
    return ThreadPolicy(threads, "ACTIVE" if wait == "ACTIVE" else "PASSIVE")


def current_policy() -> ThreadPolicy:
    """The policy in force (what :func:`configure_threads` set, or the environment's)."""
    text = os.environ.get("OMP_NUM_THREADS", "")
    threads = int(text) if text.isdigit() and int(text) > 0 else usable_cores()
    wait = os.environ.get("OMP_WAIT_POLICY", "").upper()
    return ThreadPolicy(threads, "ACTIVE" if wait in ("ACTIVE", "") else "PASSIVE")
