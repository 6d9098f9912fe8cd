"""The one interface every encoder implements."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
from torch import nn


@dataclass(frozen=True)
class ModelSpec:
    """Which encoder to build: the UI-to-engine contract for models.

    family:  registry key, ``core-dino`` or ``dinov2``.
    variant: core-dino: YOLO11 scale (n, s, m, l, x); dinov2: HF hub id or local model folder.
    weights: core-dino: local path, http(s) URL, ``hf://owner/repo/file`` or ``random`` (seeded
             random init); dinov2: unused (the variant names the weights).
    layer:   core-dino feature layer (16, 19 or 22: strides 8, 16, 32); dinov2: unused.
    """

    family: str = "core-dino"
    variant: str = "n"
    weights: str = "random"
    layer: Optional[int] = 19


class Encoder(nn.Module):
    """Maps RGB tiles to a grid of patch embeddings.

    ``forward(x)``: x is float (B, 3, H, W) in [0, 1] with H and W multiples of ``patch``;
    returns float (B, dim, H // patch, W // patch). Normalisation happens inside.
    """

    family: str
    variant: str
    patch: int
    dim: int
    layer: Optional[int]
    normalisation: str
    weights_sha256: str
    weights_uri: str

    def recipe(self) -> dict:
        """What a codebook must match to be used with this encoder."""
        return {
            "family": self.family,
            "variant": self.variant,
            "layer": self.layer,
            "patch": self.patch,
            "dim": self.dim,
            "normalisation": self.normalisation,
            "weights_sha256": self.weights_sha256,
            "weights_uri": self.weights_uri,
        }

    @property
    def id(self) -> str:
        layer = f"@{self.layer}" if self.layer is not None else ""
        return f"{self.family}:{self.variant}{layer}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - interface
        raise NotImplementedError
