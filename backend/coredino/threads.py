"""CPU threads and OpenMP's wait policy, set before torch (and its OpenMP runtime) starts.

OpenMP's default is to spin-wait at every barrier. On a shared CPU (a laptop running QGIS, a
browser and the backend; a server running several jobs) spinning threads steal the cores the
working threads need: the default core-dino model, whose many small ops each end in a barrier,
ran 4.7-6x slower so (docs/benchmarks.md, section 6). The engine therefore sleeps instead of
spinning (``OMP_WAIT_POLICY=PASSIVE``) and uses as many threads as the cores it may run on.

Even sleeping, a fork-join inside every op (ONNX Runtime's intra-op pool, OpenMP in faiss and
its BLAS) waits at each op for its slowest thread, and any other busy thread (the engine's own
reader and writer, a browser) delays one of them: ONNX Runtime ran the default model 1.5-1.7x
slower beside one 30 %-busy thread (docs/benchmarks.md, section 6). The engine's two hot loops
(the ONNX encoder and the exact faiss search) therefore split each batch among
:func:`split_map`'s workers instead, one per thread, each running its share single-threaded:
one join per batch instead of one per op.

Knobs: ``COREDINO_THREADS`` (or ``--threads``) sets the thread count; an ``OMP_WAIT_POLICY`` or
``OMP_NUM_THREADS`` already in the environment is honoured as is.
"""

from __future__ import annotations

import os
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable, Optional, Sequence, TypeVar

from .errors import UserError


@dataclass(frozen=True)
class ThreadPolicy:
    threads: int
    wait_policy: str  # PASSIVE or ACTIVE (OpenMP's names)


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


T = TypeVar("T")
R = TypeVar("R")
_POOLS: dict[int, ThreadPoolExecutor] = {}
if hasattr(os, "register_at_fork"):  # a forked child has none of the parent's workers
    os.register_at_fork(after_in_child=_POOLS.clear)


def split_rows(n: int, parts: int, least: int = 1) -> list[slice]:
    """Up to ``parts`` contiguous, near-equal slices of ``range(n)``, each of at least ``least``
    rows (fewer slices when ``n`` is small; one when ``n < 2 * least``)."""
    count = max(1, min(parts, n // max(1, least)))
    bounds = [round(i * n / count) for i in range(count + 1)]
    return [slice(a, b) for a, b in zip(bounds, bounds[1:])]


def split_map(fn: Callable[[T], R], items: Sequence[T]) -> list[R]:
    """``[fn(item) for item in items]``, run by the process's compute workers (one per thread of
    the policy, each item on one worker) when the policy has several threads, else right here.

    ``fn`` must run single-threaded (an ONNX Runtime session with one intra-op thread; faiss
    after ``faiss.omp_set_num_threads(1)``, which holds for the calling worker only) and must not
    call ``split_map`` itself (a worker waiting for the pool's other workers can deadlock it).
    """
    threads = current_policy().threads
    if threads == 1:
        return [fn(item) for item in items]
    pool = _POOLS.get(threads)
    if pool is None:
        pool = _POOLS.setdefault(threads, ThreadPoolExecutor(threads, "coredino-compute"))
    return list(pool.map(fn, items))
