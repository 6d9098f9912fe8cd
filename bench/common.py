"""Shared pieces of the benchmarks: offline models, codebooks, timers and memory meters."""

from __future__ import annotations

import os
import platform
import resource
import threading
import time
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import Iterator

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("YOLO_OFFLINE", "1")
os.environ.setdefault("YOLO_VERBOSE", "False")

import numpy as np  # noqa: E402
import psutil  # noqa: E402
import torch  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
OUT = Path(os.environ.get("COREDINO_BENCH_OUT", ROOT / "out" / "bench"))
DEMO = ROOT / "resources" / "montevideo_0p25m_demo.tif"
SCENES = Path(os.environ.get("COREDINO_SCENES",  # the development data set beside a checkout
                             Path(__file__).resolve().parents[2] / "shared" / "data" / "scenes"))


def dinov2_folder(folder: Path = OUT / "dinov2-b14-reg-random") -> str:
    """ViT-B/14 with 4 registers (the facebook/dinov2-with-registers-base sizes), seeded random
    weights, saved with ``save_pretrained``: the reference model's compute without the hub."""
    if not (folder / "config.json").is_file():
        from transformers import Dinov2WithRegistersConfig, Dinov2WithRegistersModel

        torch.manual_seed(0)
        config = Dinov2WithRegistersConfig(patch_size=14, image_size=518, num_register_tokens=4)
        Dinov2WithRegistersModel(config).save_pretrained(folder)
    return str(folder)


def random_codebook(encoder, path: Path, k: int = 6000, seed: int = 0, tile: int = 16,
                    border: int = 3, gsd: float = 0.25):
    """A cosine codebook of ``k`` seeded random unit centroids whose recipe matches ``encoder``."""
    from coredino.codebook import Codebook, build_recipe

    rng = np.random.default_rng(seed)
    centroids = rng.standard_normal((k, encoder.dim)).astype(np.float32)
    centroids /= np.linalg.norm(centroids, axis=1, keepdims=True)
    colors = rng.integers(0, 256, (k, 3), dtype=np.uint8)
    recipe = build_recipe(encoder.recipe(), tile=tile, border=border, gsd=gsd, k=k, seed=seed,
                          n_features=0, sources=["random"])
    codebook = Codebook(centroids, colors, "cosine", recipe)
    path.parent.mkdir(parents=True, exist_ok=True)
    codebook.save(path)
    return codebook


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class Stopwatch:
    """Accumulated seconds of a wrapped callable (synchronised on CUDA so the time is real)."""

    def __init__(self, device: torch.device) -> None:
        self.device, self.seconds, self.calls = device, 0.0, 0

    def wrap(self, fn):
        def timed(*args, **kwargs):
            sync(self.device)
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                sync(self.device)
                self.seconds += time.perf_counter() - start
                self.calls += 1
        return timed

    @contextmanager
    def timing(self) -> Iterator[None]:
        sync(self.device)
        start = time.perf_counter()
        try:
            yield
        finally:
            sync(self.device)
            self.seconds += time.perf_counter() - start
            self.calls += 1


class PeakRss:
    """Peak resident memory of this process while the block runs (sampled every 20 ms)."""

    def __init__(self) -> None:
        self.peak = 0
        self._stop = threading.Event()
        self._proc = psutil.Process()

    def __enter__(self) -> "PeakRss":
        self.peak = self._proc.memory_info().rss
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, self._proc.memory_info().rss)

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._proc.memory_info().rss)

    @property
    def mb(self) -> float:
        return self.peak / 2**20


def max_rss_mb() -> float:
    """The process's lifetime peak RSS (getrusage), in MiB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def hardware(device: torch.device) -> str:
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)}, torch {torch.__version__}"
    load = os.getloadavg()[0]
    return (f"{platform.processor() or platform.machine()} CPU, {os.cpu_count()} cores (load avg "
            f"{load:.1f} at start: shared), torch {torch.__version__}, {torch.get_num_threads()} "
            f"threads, {date.today().isoformat()}")


def interleave(variants: dict, rounds: int) -> tuple[dict, dict, list[float]]:
    """Call each variant once per round, in turn (A B C, then C B A, ...): load drifting on a
    shared machine hits all alike. Returns seconds per variant, each variant's last result and
    the 1-minute load average before every call."""
    times: dict = {name: [] for name in variants}
    results: dict = {}
    loads: list[float] = []
    names = list(variants)
    for r in range(rounds):
        for name in (names if r % 2 == 0 else names[::-1]):
            loads.append(os.getloadavg()[0])
            start = time.perf_counter()
            results[name] = variants[name]()
            times[name].append(time.perf_counter() - start)
    return times, results, loads


def table(rows: list[list[str]], header: list[str]) -> str:
    """A Markdown table."""
    widths = [max(len(str(r[i])) for r in rows + [header]) for i in range(len(header))]
    line = lambda r: "| " + " | ".join(str(c).ljust(w) for c, w in zip(r, widths)) + " |"  # noqa: E731
    return "\n".join([line(header), "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
                     + [line(r) for r in rows])
