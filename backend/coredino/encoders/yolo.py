"""core-dino: YOLO11 backbone and neck (layers 0-22) distilled from DINO, used as a patch encoder.

Upstream core-dino checkpoints store layers 0-22 under keys ``layers.N.…`` (``model.N.…``
and bare ``N.…`` are accepted too). Loading is strict: any missing, unexpected or mis-shaped
key is a :class:`UserError`, never a silently half-initialised model.
"""

from __future__ import annotations

import functools
import os
import re
from pathlib import Path
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from coredino_contract.params import CORE_DINO_SCALES
from coredino_contract.protocol import cache_dir

from ..errors import UserError
from .base import Encoder, ModelSpec
from .weights import resolve_weights, sha256_file

SCALES = CORE_DINO_SCALES
LAYER_STRIDES = {16: 8, 19: 16, 22: 32}
N_LAYERS = 23  # layers 0-22; layer 23 is the Detect head, not part of core-dino
ALIGN = 32  # the neck concatenates stride 8-32 maps, so inputs must be multiples of 32
_KEY = re.compile(r"^(?:layers|model)\.(?=\d+\.)")


def _check_scale(scale: str) -> None:
    if scale not in SCALES:
        raise UserError(f"unknown YOLO11 scale {scale!r}; use one of {', '.join(SCALES)} "
                        f"(e.g. --model core-dino:x)")


def _build(scale: str) -> tuple[nn.Module, nn.ModuleList]:
    """The ultralytics DetectionModel for ``yolo11{scale}`` and a view of its layers 0-22."""
    _check_scale(scale)
    os.environ.setdefault("YOLO_VERBOSE", "False")
    os.environ.setdefault("YOLO_AUTOINSTALL", "False")
    os.environ.setdefault("YOLO_CONFIG_DIR", str(cache_dir() / "ultralytics"))
    from ultralytics.nn.tasks import DetectionModel

    model = DetectionModel(f"yolo11{scale}.yaml", ch=3, verbose=False)
    return model, nn.ModuleList(list(model.model)[:N_LAYERS])


def build_yolo_backbone(scale: str) -> nn.ModuleList:
    """YOLO11 layers 0-22 for ``scale`` (n/s/m/l/x): unfused, trainable, freshly initialised."""
    return _build(scale)[1]


def run_layers(layers: nn.ModuleList, x: torch.Tensor) -> torch.Tensor:
    """Run ultralytics layers following each module's ``.f`` (from) index; returns the last output."""
    return run_layers_taps(layers, x, (len(layers) - 1,))[len(layers) - 1]


def run_layers_taps(layers: nn.ModuleList, x: torch.Tensor, taps: tuple[int, ...]) -> dict[int, torch.Tensor]:
    """Run ultralytics layers following each module's ``.f`` (from) index; the outputs of ``taps``."""
    needed = {j for m in layers for j in ([m.f] if isinstance(m.f, int) else m.f) if j != -1}
    outputs: list[Optional[torch.Tensor]] = []
    kept: dict[int, torch.Tensor] = {}
    for i, m in enumerate(layers):
        if m.f != -1:
            x = outputs[m.f] if isinstance(m.f, int) else [x if j == -1 else outputs[j] for j in m.f]
        x = m(x)
        outputs.append(x if m.i in needed else None)
        if i in taps:
            kept[i] = x
    return kept


@functools.lru_cache(maxsize=None)
def _scale_shapes(scale: str) -> dict[str, tuple[int, ...]]:
    with torch.random.fork_rng(devices=[]):
        layers = build_yolo_backbone(scale)
    return {k: tuple(v.shape) for k, v in layers.state_dict().items()}


def _guess_scale(state: dict[str, torch.Tensor]) -> Optional[str]:
    """The YOLO11 scale whose layers 0-22 have exactly the checkpoint's keys and shapes."""
    shapes = {k: tuple(v.shape) for k, v in state.items() if int(k.split(".")[0]) < N_LAYERS}
    return next((s for s in SCALES if _scale_shapes(s) == shapes), None)


def _read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle, zip and weights_only errors all mean "not usable"
        reason = ("it holds pickled objects, not only tensors" if "Weights only" in str(exc)
                  else type(exc).__name__)
        raise UserError(f"{path.name}: not a readable PyTorch state dict ({reason}); pass a "
                        f"core-dino checkpoint such as the upstream student.pt, or re-save it "
                        f"with torch.save(model.state_dict(), path)") from exc
    for key in ("state_dict", "model"):
        if isinstance(ckpt, dict) and isinstance(ckpt.get(key), dict):
            ckpt = ckpt[key]
            break
    if not isinstance(ckpt, dict) or not all(isinstance(v, torch.Tensor) for v in ckpt.values()):
        raise UserError(f"{path.name}: holds no state dict of tensors; pass a core-dino checkpoint "
                        f"such as the upstream student.pt")
    return {_KEY.sub("", k): v for k, v in ckpt.items()}


def load_coredino_state_dict(layers: nn.ModuleList, path: str | os.PathLike) -> None:
    """Load a core-dino checkpoint into YOLO11 layers 0-22 strictly (UserError on any mismatch)."""
    path = Path(path)
    state = _read_state_dict(path)
    expected = layers.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    wrong = [f"{k} {list(state[k].shape)} vs {list(v.shape)}"
             for k, v in expected.items() if k in state and state[k].shape != v.shape]
    if missing or unexpected or wrong:
        def few(items: list[str]) -> str:
            named = [f"layers.{k}" if k[:1].isdigit() else k for k in items[:3]]
            return ", ".join(named) + (", ..." if len(items) > 3 else "")

        problems = "; ".join(f"{len(items)} {what} ({few(items)})" for what, items in
                             (("missing", missing), ("unexpected", unexpected),
                              ("with wrong shape", wrong)) if items)
        numbered = {k: v for k, v in state.items() if k.split(".")[0].isdigit()}
        scale = _guess_scale(numbered) if wrong else None
        fix = (f"it is a yolo11{scale} checkpoint: pass --model core-dino:{scale}" if scale else
               "pass the --model core-dino:<scale> it was trained with (upstream core-dino is x) "
               "and a complete layers 0-22 checkpoint")
        raise UserError(f"{path.name}: does not fit YOLO11 layers 0-22: {problems}; {fix}")
    layers.load_state_dict(state, strict=True)


class CoreDinoEncoder(Encoder):
    """YOLO11 layers 0..``spec.layer`` with Conv+BN fused; inputs in [0, 1], no mean/std."""

    family = "core-dino"
    normalisation = "0-1"

    def __init__(self, spec: ModelSpec) -> None:
        super().__init__()
        _check_scale(spec.variant)
        if spec.layer not in LAYER_STRIDES:
            raise UserError(f"core-dino layer {spec.layer!r} is not a feature layer; use 16, 19 "
                            f"or 22 (strides 8, 16, 32)")
        if spec.weights == "random":
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(0)
                model, layers = _build(spec.variant)
            self.weights_sha256, self.weights_uri = "random-seed0", "random"
        else:
            path = resolve_weights(spec.weights)
            model, layers = _build(spec.variant)
            load_coredino_state_dict(layers, path)
            self.weights_sha256 = sha256_file(path)
            self.weights_uri = spec.weights if "://" in spec.weights else str(path.resolve())
        model.eval().requires_grad_(False)
        model.fuse(verbose=False)  # folds BN into convs in place; `layers` shares the modules
        self.layers = nn.ModuleList(layers[: spec.layer + 1])
        self.variant, self.layer, self.patch = spec.variant, spec.layer, LAYER_STRIDES[spec.layer]
        with torch.no_grad():
            self.dim = int(run_layers(self.layers, torch.zeros(1, 3, ALIGN, ALIGN)).shape[1])
        self.eval()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) in [0, 1] -> (B, dim, H // patch, W // patch).

        Sizes that are multiples of ``patch`` but not of 32 are padded (replicate) to 32 and the
        output cropped; tilers should prefer multiples of 32.
        """
        h, w = x.shape[-2:]
        pad_h, pad_w = -h % ALIGN, -w % ALIGN
        if pad_h or pad_w:
            x = F.pad(x, (0, pad_w, 0, pad_h), mode="replicate")
        return run_layers(self.layers, x)[..., : h // self.patch, : w // self.patch]
