"""Encoder families by name and the cached builder (model strings are parsed by the contract)."""

from __future__ import annotations

import functools

import torch

from .base import Encoder, ModelSpec
from .dinov2 import DinoV2Encoder
from .processor import ProcessorDinoV2Encoder
from .yolo import CoreDinoEncoder

FAMILIES: dict[str, type[Encoder]] = {"core-dino": CoreDinoEncoder, "dinov2": DinoV2Encoder,
                                      "dinov2-processor": ProcessorDinoV2Encoder}


@functools.lru_cache(maxsize=4)
def build_encoder(spec: ModelSpec, device: torch.device) -> Encoder:
    """The encoder for ``spec`` on ``device``, in eval mode; built once per (spec, device).

    The instance is shared between callers: use it for inference only, never modify it.
    """
    spec.validate()
    return FAMILIES[spec.family](spec).to(device).eval()
