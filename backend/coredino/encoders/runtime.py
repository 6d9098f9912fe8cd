"""Which runtime runs an encoder (torch eager or ONNX Runtime) and in which precision.

``prepare_encoder`` turns a torch encoder into the one a job runs: itself (torch, fp32), a bf16
autocast wrapper (torch, bf16) or an :class:`OnnxEncoder` (ONNX Runtime's CPU provider, fp32 or
dynamically quantised int8). The ONNX file is exported once and cached (:mod:`.onnx_export`);
before a new file is cached its features are compared with torch's on real tiles (the demo
raster): lowest per-patch cosine >= 0.9999 and >= 99.9 % identical codebook ids for fp32.
Processes preparing the same export at once export it once: the others wait for it.
Reduced precision is never the default: its id agreement with fp32 on the same tiles is
returned as a note for the user.

Why not OpenVINO: not installed here (about 75 MB more next to ONNX Runtime's 78 MB); measured
on this CPU it ran fp32 about as fast as ONNX Runtime (1.8-2.8x torch vs 2.0-2.5x), and its
speed beyond that comes from its default bf16 hint, which changes about 6 % of the ids.
"""

from __future__ import annotations

import importlib.util
import logging
import math
import time
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import torch

from ..errors import Cancelled, UserError
from ..params import ClassifyOptions
from ..progress import Progress
from ..threads import current_policy, split_map, split_rows
from .base import Encoder
from .onnx_export import (ExportKey, cached_entry, cosine_and_ids, export_key, export_lock,
                          export_onnx, publish, real_tiles)

MIN_COSINE = 0.9999
MIN_SAME_IDS = 0.999
log = logging.getLogger(__name__)
AssignIds = Callable[[torch.Tensor], torch.Tensor]


def onnx_available() -> bool:
    return importlib.util.find_spec("onnxruntime") is not None


def installed_runtimes() -> list[str]:
    """The runtimes a job may ask for here (besides ``auto``)."""
    return ["torch"] + (["onnx"] if onnx_available() else [])


def resolve_runtime(runtime: str, precision: str, device: torch.device, compile: bool = False) -> str:
    """``torch`` or ``onnx``: what ``auto`` means here, after checking the request is possible."""
    ClassifyOptions(runtime=runtime, precision=precision, compile=compile).validate()
    if device.type != "cpu":
        if runtime == "onnx" or precision == "int8":
            raise UserError(f"the ONNX runtime and int8 run on the CPU; on {device.type} use "
                            f"--runtime torch (or auto) with --precision fp32 or bf16")
        return "torch"
    if precision == "bf16" or (runtime == "auto" and compile):
        return "torch"
    if runtime == "torch":
        return "torch"
    if not onnx_available():
        if runtime == "onnx" or precision == "int8":
            raise UserError("onnxruntime is not installed in the backend's Python; install it "
                            "(pip install onnxruntime) or pass --runtime torch")
        return "torch"
    return "onnx"


def describe_runtime(encoder: Encoder) -> str:
    """E.g. ``onnxruntime 1.32.0 fp32, 2 threads (passive)`` or ``torch 2.15.0 fp32, ...``."""
    policy = current_policy()
    threads = f"{policy.threads} threads ({policy.wait_policy.lower()})"
    if isinstance(encoder, OnnxEncoder):
        import onnxruntime
        return f"onnxruntime {onnxruntime.__version__} {encoder.precision}, {threads}"
    device = next(encoder.parameters()).device
    precision = "bf16" if isinstance(encoder, Bf16Encoder) else \
        "bf16 autocast" if device.type == "cuda" else "fp32"
    return f"torch {torch.__version__} {precision}" + (f", {threads}" if device.type == "cpu" else "")


class _Wrapper(Encoder):
    """An encoder that runs ``inner``'s network another way; same recipe, parameters and device."""

    def __init__(self, inner: Encoder) -> None:
        super().__init__()
        self.inner = inner  # a submodule: parameters() still tells the device
        for name in ("family", "variant", "patch", "dim", "layer", "normalisation",
                     "weights_sha256", "weights_uri"):
            setattr(self, name, getattr(inner, name))


class Bf16Encoder(_Wrapper):
    """torch with bfloat16 autocast on the CPU; float32 features out."""

    precision = "bf16"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            return self.inner(x).float()


class OnnxEncoder(_Wrapper):
    """An exported encoder run by ONNX Runtime's CPU provider (fixed tile side, any batch)."""

    def __init__(self, inner: Encoder, path: Path, side: int, precision: str) -> None:
        super().__init__(inner)
        self.path, self.side, self.precision = path, side, precision
        self.session = _session(str(path))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Features of a batch, split among the compute workers (at least 2 tiles each: a lone
        tile takes other kernels, whose last bits differ)."""
        if tuple(x.shape[1:]) != (3, self.side, self.side):
            raise ValueError(f"this ONNX export takes (n, 3, {self.side}, {self.side}), got {tuple(x.shape)}")
        pixels = x.detach().float().contiguous().numpy()
        parts = split_rows(len(pixels), current_policy().threads, least=2)
        run = lambda part: self.session.run(None, {"pixels": pixels[part]})[0]  # noqa: E731
        return torch.from_numpy(np.concatenate(split_map(run, parts)))


def _session(path: str):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1  # the threads split the batch instead (threads.split_map)
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    return ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])


def prepare_encoder(encoder: Encoder, runtime: str, precision: str, side: int,
                    assign_ids: Optional[AssignIds], check_raster: Path, compile: bool = False,
                    progress: Optional[Progress] = None) -> tuple[Encoder, list[str]]:
    """The encoder a job runs, and notes for the user (reduced precision's id agreement).

    runtime/precision: as the user asked (``auto`` resolved here); side: the tile side in pixels;
    assign_ids: the job's codebook search (ids of (n, dim) features) for the id checks;
    progress: told while waiting for another process's export of the same model.
    """
    if isinstance(encoder, _Wrapper):
        encoder = encoder.inner
    device = next(encoder.parameters()).device
    chosen = resolve_runtime(runtime, precision, device, compile)
    if (chosen == "torch" and precision == "fp32") or device.type != "cpu":
        return encoder, []  # a GPU runs bf16 autocast whatever the precision asked (device.autocast)
    if chosen == "onnx" and not encoder.onnx:
        if runtime == "auto" and precision == "fp32":
            return encoder, []
        raise UserError(f"{encoder.family} encoders run on torch only; pass --runtime torch "
                        f"--precision fp32 (or bf16)")
    key = (id(encoder), side, chosen, precision, current_policy())
    if key not in _PREPARED:  # one export check and session per process (service, batch)
        _PREPARED[key] = _prepare(encoder, chosen, runtime, precision, side, assign_ids, check_raster,
                                  progress)
    return _PREPARED[key]


_PREPARED: dict[tuple, tuple[Encoder, list[str]]] = {}


def _prepare(encoder: Encoder, chosen: str, runtime: str, precision: str, side: int,
             assign_ids: Optional[AssignIds], check_raster: Path,
             progress: Optional[Progress]) -> tuple[Encoder, list[str]]:
    if chosen == "torch":
        fast: Encoder = Bf16Encoder(encoder)
    else:
        try:
            fast = _onnx_encoder(encoder, side, "fp32", assign_ids, check_raster, progress)
        except (UserError, Cancelled):
            raise
        except Exception as exc:  # the exporter's or the check's failure
            if runtime == "onnx" or precision == "int8":
                raise UserError(f"cannot run {encoder.id} with ONNX Runtime: its export failed or "
                                f"differs from torch ({exc}); pass --runtime torch") from None
            log.warning("ONNX export of %s failed or differs from torch (%s): running torch", encoder.id, exc)
            return encoder, [f"ONNX Runtime skipped: the export of {encoder.id} failed or differs "
                             f"from torch ({exc}); running torch"]
        if precision == "int8":
            fast = _onnx_encoder(encoder, side, "int8", assign_ids, check_raster, progress, fast.path)
    if precision == "fp32":
        return fast, []
    same = _agreement(encoder, fast, side, assign_ids, check_raster)
    return fast, [f"precision {precision}: {100 * same:.2f} % of the ids identical to fp32 on the "
                  f"check tiles; pass --precision fp32 for exact results"]


class _CheckFailed(Exception):
    pass


def _onnx_encoder(encoder: Encoder, side: int, precision: str, assign_ids: Optional[AssignIds],
                  check_raster: Path, progress: Optional[Progress],
                  fp32_path: Optional[Path] = None) -> OnnxEncoder:
    """The cached export for this key; exported, checked and cached when missing, stale or corrupt.

    A cached fp32 file is checked again on one tile at every load (never trusted). Only the
    holder of the key's :func:`~.onnx_export.export_lock` exports: a process that finds no usable
    entry takes the lock (waiting while another process exports) and looks again before it
    exports, so it loads what the other one published, or exports itself if nothing was.
    """
    key = export_key(encoder, side, precision)
    fast, _ = _cached(encoder, key, check_raster)
    if fast is not None:
        return fast
    with export_lock(key, progress):
        fast, problem = _cached(encoder, key, check_raster)  # published while we waited?
        if fast is not None:
            return fast
        if problem:
            log.warning("ONNX cache %s %s: rebuilding it", key.path.name, problem)
        return _export(encoder, key, assign_ids, check_raster, fp32_path)


def _cached(encoder: Encoder, key: ExportKey, check_raster: Path) -> tuple[Optional[OnnxEncoder], str]:
    """The usable cache entry of ``key``, or None and what is wrong with it ('' when absent)."""
    if cached_entry(key) is None:
        return None, "is stale or corrupt" if key.path.exists() else ""
    try:
        fast = OnnxEncoder(encoder, key.path, key.side, key.precision)
        if key.precision != "fp32" or _check(encoder, fast, real_tiles(check_raster, key.side, 1), None)["passed"]:
            return fast, ""
        return None, "does not match torch"
    except Exception as exc:  # ONNX Runtime refuses the file
        return None, f"does not load ({exc})"


def _export(encoder: Encoder, key: ExportKey, assign_ids: Optional[AssignIds], check_raster: Path,
            fp32_path: Optional[Path]) -> OnnxEncoder:
    """Export ``key``, check fp32 against torch on the check tiles, and publish it if it passed."""
    start = time.perf_counter()
    tmp = export_onnx(encoder, key, fp32_path)
    try:
        fast = OnnxEncoder(encoder, tmp, key.side, key.precision)
        figures = {"export_seconds": round(time.perf_counter() - start, 2)}
        if key.precision == "fp32":
            tiles = real_tiles(check_raster, key.side)
            figures.update(_check(encoder, fast, tiles, assign_ids))
            if not figures["passed"]:
                raise _CheckFailed(f"lowest patch cosine {figures['cosine_min']:.6f}, "
                                   f"{100 * figures['ids_identical']:.2f} % identical ids")
        publish(key, tmp, figures)
        fast.path = key.path
        log.info("exported %s to %s in %.1f s", encoder.id, key.path, figures["export_seconds"])
        return fast
    finally:
        tmp.unlink(missing_ok=True)


def _check(encoder: Encoder, fast: Encoder, tiles: torch.Tensor,
           assign_ids: Optional[AssignIds]) -> dict:
    """How ``fast`` compares with torch on ``tiles``: lowest cosine, identical ids, passed."""
    with torch.inference_mode():
        cosine, same = cosine_and_ids(encoder(tiles), fast(tiles), assign_ids)
    passed = cosine >= MIN_COSINE and (math.isnan(same) or same >= MIN_SAME_IDS)
    return {"passed": passed, "cosine_min": cosine, "ids_identical": same, "check_tiles": len(tiles)}


def _agreement(encoder: Encoder, fast: Encoder, side: int, assign_ids: Optional[AssignIds],
               check_raster: Path) -> float:
    """Fraction of identical ids between ``fast`` and fp32 torch on the check tiles."""
    if assign_ids is None:
        return float("nan")
    tiles = real_tiles(check_raster, side)
    with torch.inference_mode():
        return cosine_and_ids(encoder(tiles), fast(tiles), assign_ids)[1]
