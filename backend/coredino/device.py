"""Device selection and mixed precision."""

from __future__ import annotations

import contextlib
from typing import Optional

import torch

from .errors import UserError


def pick_device(requested: str = "auto") -> torch.device:
    """``auto`` picks cuda > mps > cpu; an explicit name is honoured if that device exists."""
    if requested != "auto":
        try:
            device = torch.device(requested)
        except RuntimeError:
            raise UserError(f"unknown device {requested!r}; use auto, cpu, cuda, cuda:N or mps") from None
        if device.type == "cuda" and (not torch.cuda.is_available()
                                      or (device.index or 0) >= torch.cuda.device_count()):
            raise UserError(f"device {requested!r} is not available here "
                            f"({torch.cuda.device_count()} CUDA GPUs); use --device auto or cpu")
        if device.type == "mps" and not torch.backends.mps.is_available():
            raise UserError("device 'mps' is not available here; use --device auto or cpu")
        return device
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def default_batch_size(device: torch.device, requested: Optional[int] = None) -> int:
    """Tiles per forward pass: as requested, else 8 on the CPU (more only adds latency there)
    and 64 on a GPU (which needs large batches to be busy)."""
    if requested is not None:
        if requested < 1:
            raise UserError(f"--batch-size must be at least 1, got {requested}")
        return requested
    return 8 if device.type == "cpu" else 64


def autocast(device: torch.device):
    """bf16 autocast on CUDA (fp16 where bf16 is unsupported); full precision elsewhere."""
    if device.type == "cuda":
        dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.autocast("cuda", dtype=dtype)
    return contextlib.nullcontext()


def describe(device: torch.device) -> dict:
    """Name and memory of the device, for `coredino info` and the service's capabilities."""
    info = {"device": str(device), "torch": torch.__version__, "threads": torch.get_num_threads()}
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        info.update(gpu=props.name, gpu_memory_gb=round(props.total_memory / 2**30, 1))
    return info
