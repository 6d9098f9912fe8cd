"""``coredino batch --ray``: the batch on Ray actors, each holding one encoder and the codebook.

The driver (this process) lists the batch and skips completed outputs exactly as the in-process
batch does (:func:`coredino.engine.batch_jobs`, :func:`coredino.engine.is_done`), starts or joins
Ray and starts the actors (one per GPU, or CPU actors whose thread counts share the CPUs).
Actors plan the files (tile rows and tiles), the driver splits rasters much larger than an
actor's share into row bands (:mod:`coredino.scale.bands`), then hands out work items from a
queue: an actor gets its next item when it returns one. Each item is one call of the engine's
:func:`coredino.engine.classify` (whole file, or ``rows=`` for a band); a raster's bands are
assembled into its COG when the last one is in.

Faults. A worker process that dies mid-item (killed, out of memory, node lost) surfaces as
``RayActorError``: Ray restarts the actor, the driver removes the temporaries the item left and
puts it back at the front of the queue for the next free actor (at most ``MAX_ATTEMPTS`` tries),
and the summary lists it under ``retried``. Outputs only appear complete (renamed or uploaded by
the engine's writer), and a retry rewrites the same path, so nothing is corrupt or duplicated. A
killed driver takes its actors with it; rerunning skips what is complete, band parts included.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable, Optional

import ray

from coredino_contract.results import BatchResult

from ..cog import discard
from ..engine import batch_jobs, classify, encoder_for, is_done, load_codebook, open_tiled
from ..errors import UserError
from ..params import BatchParams, ClassifyOptions, ClassifyParams
from ..progress import Progress
from ..storage import forget, join, write_bytes
from .bands import Band, assemble, part_path, remove_parts, rows_per_band, split

MAX_ATTEMPTS = 3  # tries of one work item before its file is reported as failed
ITEMS_PER_ACTOR = 4  # auto split: aim at this many work items per actor for the largest rasters
SUMMARY = "coredino-batch-summary.json"
_TICK = 0.5  # seconds between progress reports


@dataclass
class WorkItem:
    """One call of an actor method: plan a file, or classify a file or one band of it."""

    key: str
    method: str  # "plan" or "run"
    input: str
    output: str = ""  # the file's output, or the band's part
    rows: Optional[tuple[int, int]] = None
    tiles: int = 0
    km2: float = 0.0
    attempts: int = 0


@dataclass
class _File:
    """A raster being classified: its output and the items still to come back."""

    output: str
    tiles: int
    km2: float
    bands: list[Band] = field(default_factory=list)  # in row order; empty: in one piece
    waiting: set[str] = field(default_factory=set)
    error: Optional[str] = None

    @property
    def parts(self) -> list[str]:
        return [part_path(self.output, band) for band in self.bands]


class ClassifyWorker:
    """A Ray actor: one encoder and the codebook, classifying work items."""

    def __init__(self, options: ClassifyOptions, threads: int, tally: Any) -> None:
        import torch
        torch.set_num_threads(threads)
        self.options, self.tally = options, tally
        self.codebook = load_codebook(options.codebook)
        self.encoder = encoder_for(self.codebook, options)

    def pid(self) -> int:
        return os.getpid()

    def plan(self, item: WorkItem) -> dict:
        """Tile rows, tiles and area (km², of the output grid) of a file, or its error."""
        try:
            raster, grid = open_tiled(item.input, self.codebook, self.encoder.patch, self.options)
        except UserError as exc:
            return {"ok": False, "error": str(exc)}
        cell = raster.grid.gsd * self.encoder.patch
        raster.close()
        return {"ok": True, "rows": len(grid.rows), "blend": grid.blend, "tiles": len(grid),
                "km2": grid.cells_x * grid.cells_y * cell * cell / 1e6}

    def run(self, item: WorkItem) -> dict:
        """Classify the item; report tiles done to the tally while it runs."""
        last = [0.0]

        def report(fraction: float, message: str) -> None:
            now = time.monotonic()
            if now - last[0] >= _TICK:
                last[0] = now
                self.tally.put.remote(item.key, min(1.0, fraction / 0.95) * item.tiles)

        options = self.options if item.rows is None else dataclasses.replace(self.options, rgb=False)
        try:
            result = classify(ClassifyParams(item.input, item.output, options), Progress(report),
                              self.codebook, self.encoder, item.rows)
        except UserError as exc:
            return {"ok": False, "error": str(exc)}
        self.tally.put.remote(item.key, item.tiles)
        return {"ok": True, "tiles": result.tiles, "seconds": result.seconds,
                "warnings": result.warnings, "pid": os.getpid()}


class Tally:
    """A Ray actor holding the tiles done of every running item (the progress bar's source)."""

    def __init__(self) -> None:
        self.done: dict[str, float] = {}

    def put(self, key: str, tiles: float) -> None:
        self.done[key] = tiles

    def read(self) -> dict[str, float]:
        return dict(self.done)


def ray_batch(params: BatchParams, progress: Progress) -> BatchResult:
    """Run ``params`` (``executor="ray"``) on Ray; see the module's description."""
    start = time.perf_counter()
    jobs = batch_jobs(params)
    codebook = load_codebook(params.options.codebook)
    result = BatchResult()
    todo = []
    for path, output in jobs:
        if not params.overwrite and is_done(output, codebook, params.options):
            result.skipped.append(path)
        else:
            todo.append((path, output))
    run = _Run(params, result, progress, codebook.colors, start)
    if todo:
        started_here = _connect(params.ray_address)
        try:
            run.start_actors()
            run.plan(todo)
            run.classify()
        finally:
            run.stop_actors()
            if started_here:
                ray.shutdown()
    run.seconds = time.perf_counter() - start
    forget(params.output_dir)  # the actors wrote there: this process's GDAL must look again
    result.summary = join(params.output_dir, SUMMARY)
    write_bytes(result.summary, json.dumps(run.summary(), indent=2).encode())
    progress.update(1.0, f"{len(result.done)} done, {len(result.skipped)} skipped, "
                         f"{len(result.failed)} failed, {len(result.retried)} retried")
    return result


def _connect(address: Optional[str]) -> bool:
    """Join ``address`` or start a local runtime unless this process already has one; True when
    this call started it (and so must shut it down)."""
    if ray.is_initialized():
        return False
    if address:
        ray.init(address=address)
    else:  # actors' output would break the progress bar; their errors come back in the replies
        ray.init(address="local", include_dashboard=False, log_to_driver=False)
    return True


class _Run:
    """The driver's state of one Ray batch."""

    def __init__(self, params: BatchParams, result: BatchResult, progress: Progress, colors,
                 started: float) -> None:
        self.params, self.result, self.progress, self.colors = params, result, progress, colors
        self.actors: list[Any] = []
        self.tally: Any = None
        self.layout: dict[str, Any] = {}
        self.files: dict[str, _File] = {}
        self.retries: list[dict] = []
        self.finished: dict[str, float] = {}  # tiles of the items that came back (or were done)
        self.completed = 0  # files classified or failed
        self.items = 0
        self.assembly_seconds = 0.0
        self.busy_seconds = 0.0  # inside classify, summed over the actors
        self.seconds = 0.0
        self.started = started
        self.startup_seconds: Optional[float] = None  # until the first actor answered
        self.work_started: Optional[float] = None  # when classification began (after planning)

    # actors -----------------------------------------------------------------------------------

    def start_actors(self) -> None:
        resources = ray.cluster_resources()
        cpus, gpus = int(resources.get("CPU", 1)), int(resources.get("GPU", 0))
        device = self.params.options.device
        use_gpu = gpus > 0 and (device == "auto" or device.startswith("cuda"))
        n = self.params.workers or (gpus if use_gpu else max(1, cpus // 4))
        threads = max(1, cpus // n)
        self.tally = ray.remote(num_cpus=0)(Tally).remote()
        # a GPU actor sees only the GPU Ray gave it; CPU actors share the CPUs (fractions: any count fits)
        options = dataclasses.replace(self.params.options, device="cuda" if use_gpu else
                                      ("cpu" if device == "auto" else device))
        worker = ray.remote(ClassifyWorker).options(
            num_cpus=1 if use_gpu else cpus / n, num_gpus=min(1.0, gpus / n) if use_gpu else 0,
            max_restarts=-1, max_task_retries=0)
        self.actors = [worker.remote(options, threads, self.tally) for _ in range(n)]
        self.layout = {"actors": n, "threads_per_actor": threads,
                       "gpus_per_actor": min(1.0, gpus / n) if use_gpu else 0,
                       "cluster_cpus": cpus, "cluster_gpus": gpus,
                       "address": self.params.ray_address or "local"}

    def stop_actors(self) -> None:
        for actor in self.actors + ([self.tally] if self.tally is not None else []):
            ray.kill(actor)
        self.actors, self.tally = [], None

    # phases -----------------------------------------------------------------------------------

    def plan(self, todo: list[tuple[str, str]]) -> None:
        """Ask the actors for each file's grid; split the big rasters into bands."""
        plans: dict[str, dict] = {}
        items = [WorkItem(path, "plan", path, output) for path, output in todo]
        self._pull(items, lambda item, reply: plans.__setitem__(item.input, reply))
        good = [(p, o) for p, o in todo if plans[p]["ok"]]
        for path, _ in todo:
            if not plans[path]["ok"]:
                self.result.failed[path] = plans[path]["error"]
        total = sum(plans[p]["tiles"] for p, _ in good)
        target = total / (len(self.actors) * ITEMS_PER_ACTOR)
        embeddings = self.params.options.embeddings
        for path, output in good:
            plan = plans[path]
            f = self.files[path] = _File(output, plan["tiles"], plan["km2"])
            per_band = self.params.band_rows
            if per_band is None:  # auto: only cut tiles, and when another actor could take a share
                per_band = rows_per_band(plan["rows"], plan["tiles"], target) \
                    if len(self.actors) > 1 and plan["tiles"] > 2 * target and not plan["blend"] else 0
            if per_band and not embeddings and per_band < plan["rows"]:
                f.bands = split(plan["rows"], per_band)

    def classify(self) -> None:
        self.work_started = time.perf_counter()
        items, codebook = [], load_codebook(self.params.options.codebook)
        for path, f in self.files.items():
            if not f.bands:
                items.append(WorkItem(path, "run", path, f.output, None, f.tiles, f.km2))
                f.waiting.add(path)
                continue
            for band, part in zip(f.bands, f.parts):
                share = (band.stop - band.first) / band.rows
                key = f"{path}#rows {band.first}-{band.stop}"
                if not self.params.overwrite and is_done(part, codebook, _no_extras(self.params.options)):
                    self.finished[key] = f.tiles * share  # made by an interrupted earlier run
                    continue
                items.append(WorkItem(key, "run", path, part, (band.first, band.stop),
                                      round(f.tiles * share), f.km2 * share))
                f.waiting.add(key)
        for path, f in list(self.files.items()):
            if f.bands and not f.waiting:  # every part made by an earlier run
                self.completed += 1
                self._assemble(path, f)
        self._pull(items, self._finished)

    # the queue --------------------------------------------------------------------------------

    def _pull(self, items: list[WorkItem], done: Callable[[WorkItem, dict], None]) -> None:
        """Hand ``items`` to idle actors until all came back; retry the ones whose actor died.

        An actor whose process died is restarted by Ray; it gets work again once it answers a
        ping (calls sent while it restarts would fail), and its item goes to the next free actor.
        """
        queue, idle = deque(items), list(self.actors)
        running: dict[Any, tuple[WorkItem, Any]] = {}
        pings: dict[Any, Any] = {}  # ping -> actor being restarted
        try:
            self._serve(queue, idle, running, pings, done)
        except BaseException:  # cancelled or broken: stop the actors, then clear what they left
            self.stop_actors()
            for item, _ in running.values():
                discard(item.output)
            raise

    def _serve(self, queue: deque, idle: list, running: dict, pings: dict,
               done: Callable[[WorkItem, dict], None]) -> None:
        while queue or running:
            while queue and idle:
                item, actor = queue.popleft(), idle.pop(0)
                item.attempts += 1
                running[getattr(actor, item.method).remote(item)] = (item, actor)
                self.items += item.method == "run"
            if not running and not pings:
                raise UserError("every Ray actor died and none came back; see the Ray logs")
            ready, _ = ray.wait(list(running) + list(pings), num_returns=1, timeout=_TICK)
            if ready and self.startup_seconds is None:
                self.startup_seconds = time.perf_counter() - self.started
            for ref in ready:
                if ref in pings:
                    actor = pings.pop(ref)
                    try:
                        ray.get(ref)
                        idle.append(actor)
                    except ray.exceptions.RayActorError:
                        time.sleep(_TICK)  # still restarting
                        pings[actor.pid.remote()] = actor
                    continue
                item, actor = running.pop(ref)
                try:
                    reply = ray.get(ref)
                    idle.append(actor)
                except (ray.exceptions.RayActorError, ray.exceptions.RayTaskError) as exc:
                    if isinstance(exc, ray.exceptions.RayActorError):
                        pings[actor.pid.remote()] = actor
                    else:
                        idle.append(actor)
                    reply = self._retry(item, exc, queue)
                    if reply is None:
                        continue
                done(item, reply)
            self._report()

    def _retry(self, item: WorkItem, exc: Exception, queue: deque) -> Optional[dict]:
        """Queue a failed item again (first in line); its failure reply once it has no tries left."""
        reason = _first_line(exc)
        discard(item.output)
        self.retries.append({"item": item.key, "attempt": item.attempts, "reason": reason})
        self.result.retried[item.key] = reason
        if item.attempts >= MAX_ATTEMPTS:
            return {"ok": False, "error": f"{item.input}: failed {item.attempts} times ({reason})"}
        if self.tally is not None:
            self.tally.put.remote(item.key, 0.0)
        queue.appendleft(item)
        return None

    def _finished(self, item: WorkItem, reply: dict) -> None:
        f = self.files[item.input]
        f.waiting.discard(item.key)
        self.finished[item.key] = item.tiles
        self.busy_seconds += reply.get("seconds", 0.0)
        if not reply["ok"]:
            f.error = f.error or reply["error"]
        if f.waiting:
            return
        self.completed += 1
        if f.error:
            self.result.failed[item.input] = f.error
        elif f.bands:
            self._assemble(item.input, f)
        else:
            self.result.done.append(item.input)

    def _assemble(self, path: str, f: _File) -> None:
        start = time.perf_counter()
        rgb = os.path.splitext(f.output)[0] + "_rgb.tif" if self.params.options.rgb else None
        try:
            assemble(f.parts, f.output, self.colors, rgb)
        except UserError as exc:
            self.result.failed[path] = str(exc)
            return
        finally:
            self.assembly_seconds += time.perf_counter() - start
        remove_parts(f.output, f.parts)
        self.result.done.append(path)

    def _report(self) -> None:
        """One progress line: files, tiles, km²/s and the time left."""
        running = ray.get(self.tally.read.remote()) if self.tally is not None else {}
        total = sum(f.tiles for f in self.files.values())
        if not total:
            self.progress.update(0.0, "planning")
            return
        tiles = min(total, sum(self.finished.values()) +
                    sum(n for key, n in running.items() if key not in self.finished))
        km2 = sum(f.km2 for f in self.files.values()) * tiles / total
        seconds = max(1e-6, time.perf_counter() - (self.work_started or self.started))
        rate = tiles / seconds
        eta = (total - tiles) / rate if rate > 0 else float("nan")
        self.progress.update(tiles / total, f"files {self.completed}/{len(self.files)}, tiles {tiles:.0f}/"
                                            f"{total}, {km2 / seconds:.4f} km²/s, ETA {_clock(eta)}")

    def summary(self) -> dict:
        km2 = sum(f.km2 for f in self.files.values())
        return {
            "executor": "ray", **self.layout,
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "input": self.params.input_dir, "output": self.params.output_dir,
            "done": self.result.done, "skipped": self.result.skipped, "failed": self.result.failed,
            "retried": self.retries, "work_items": self.items,
            "bands": {p: len(f.bands) for p, f in self.files.items() if f.bands},
            "tiles": sum(f.tiles for f in self.files.values()), "km2": round(km2, 6),
            "seconds": round(self.seconds, 3),
            "startup_seconds": round(self.startup_seconds or 0.0, 3),
            "actor_busy_seconds": round(self.busy_seconds, 3), "assembly_seconds": round(self.assembly_seconds, 3),
            "km2_per_second": round(km2 / self.seconds, 6) if self.seconds else None,
        }


def _no_extras(options: ClassifyOptions) -> ClassifyOptions:
    return dataclasses.replace(options, rgb=False, embeddings=False)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"[:300]


def _clock(seconds: float) -> str:
    if seconds != seconds or seconds == float("inf"):
        return "?"
    m, s = divmod(int(seconds), 60)
    h, m = divmod(m, 60)
    return f"{h}:{m:02d}:{s:02d}"

