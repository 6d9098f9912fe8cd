"""The one interface every encoder implements."""

from __future__ import annotations

from typing import Optional

import torch
from torch import nn

from coredino_contract.params import ModelSpec, model_id

__all__ = ["Encoder", "ModelSpec"]


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
    onnx: bool = True  # exportable to ONNX (runtime auto uses ONNX Runtime on a CPU)

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
        return model_id(self.family, self.variant, self.layer)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - interface
        raise NotImplementedError
