"""Patch encoders behind one interface, looked up by family name in a registry."""

from .base import Encoder, ModelSpec
from .registry import build_encoder, FAMILIES

__all__ = ["Encoder", "ModelSpec", "build_encoder", "FAMILIES"]
