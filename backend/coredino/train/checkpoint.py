"""Training checkpoints (resumable) and the exported core-dino backbone (engine format)."""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..atomic import atomic_open, stale_temporaries
from ..errors import UserError

FORMAT = "coredino-train/1"
CHECKPOINT = "checkpoint.pt"


def _atomic_save(obj: Any, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_open(path) as f:
        torch.save(obj, f)


def rng_state() -> dict:
    """Every generator's state as tensors and plain types (loadable with ``weights_only=True``)."""
    name, keys, pos, has_gauss, cached = np.random.get_state()
    state = {"torch": torch.get_rng_state(),
             "numpy": {"name": str(name), "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                       "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
             "python": random.getstate()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state((n["name"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"],
                         n["cached_gaussian"]))
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(state: dict, out_dir: str | os.PathLike) -> Path:
    """Write ``checkpoint.pt`` atomically (a kill mid-write leaves the previous one intact)."""
    path = Path(out_dir) / CHECKPOINT
    _atomic_save({"format": FORMAT, **state, "rng": rng_state()}, path)
    return path


def load_checkpoint(out_dir: str | os.PathLike) -> dict | None:
    """The checkpoint in ``out_dir``, or None when there is none."""
    path = Path(out_dir) / CHECKPOINT
    if not path.is_file():
        return None
    try:  # tensors and plain types only: a crafted file cannot run code
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - pickle, zip and weights_only errors: not usable
        raise UserError(f"{path}: not a coredino training checkpoint or corrupt ({type(exc).__name__}; "
                        f"only tensors and plain values are loaded); delete it to start over") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise UserError(f"{path}: not a coredino training checkpoint; delete it or use another -o")
    return ckpt


def remove_stale_temporaries(out_dir: str | os.PathLike) -> list[Path]:
    """Remove the temporary checkpoint files a killed run left (call while no other run writes here)."""
    stale = stale_temporaries(Path(out_dir) / CHECKPOINT)
    for path in stale:
        path.unlink(missing_ok=True)
    return stale


def export_backbone(layers: nn.ModuleList, path: str | os.PathLike) -> Path:
    """Save YOLO11 layers 0-22 under the upstream core-dino keys ``layers.N.…`` (CPU tensors)."""
    path = Path(path)
    state = {f"layers.{k}": v.detach().cpu().clone() for k, v in layers.state_dict().items()}
    _atomic_save(state, path)
    return path
