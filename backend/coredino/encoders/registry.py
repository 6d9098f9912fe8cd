"""Encoder families by name, the cached builder, and the CLI's ``family:variant`` strings."""

from __future__ import annotations

import functools

import torch

from ..errors import UserError
from .base import Encoder, ModelSpec
from .dinov2 import DinoV2Encoder
from .yolo import CoreDinoEncoder

FAMILIES: dict[str, type[Encoder]] = {"core-dino": CoreDinoEncoder, "dinov2": DinoV2Encoder}
_EXAMPLES = "core-dino:x, core-dino:n, dinov2:facebook/dinov2-with-registers-base"


def _unknown_family(family: str) -> UserError:
    return UserError(f"unknown model family {family!r}; known: {', '.join(FAMILIES)} "
                     f"(e.g. {_EXAMPLES})")


def parse_model(text: str) -> tuple[str, str]:
    """``core-dino:x`` / ``dinov2:facebook/dinov2-base`` / ``dinov2:/a/folder`` -> (family, variant)."""
    family, _, variant = text.strip().partition(":")
    family, variant = family.strip().lower(), variant.strip()
    if family not in FAMILIES:
        raise _unknown_family(family)
    if not variant:
        raise UserError(f"model {text!r} names no variant; use family:variant, e.g. {_EXAMPLES}")
    return family, variant


@functools.lru_cache(maxsize=4)
def build_encoder(spec: ModelSpec, device: torch.device) -> Encoder:
    """The encoder for ``spec`` on ``device``, in eval mode; built once per (spec, device).

    The instance is shared between callers: use it for inference only, never modify it.
    """
    if spec.family not in FAMILIES:
        raise _unknown_family(spec.family)
    return FAMILIES[spec.family](spec).to(device).eval()
