"""Per-location projection heads: a dense DINO head (1x1-conv MLP -> weight-normed prototypes)
or the identity (the L2-normalised backbone features are the logits)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class DenseDINOHead(nn.Module):
    """(B, C, H, W) features -> (B, K, H, W) prototype scores, the same MLP at every location.

    in -> hidden -> hidden -> bottleneck (1x1 convs, GELU), L2-normalised, then cosine scores
    against K prototypes whose rows are normalised in the forward pass (weight normalisation
    with the gain fixed to 1, DINO's ``norm_last_layer``).
    """

    def __init__(self, in_dim: int, out_dim: int = 4096, hidden_dim: int = 1024,
                 bottleneck_dim: int = 256) -> None:
        super().__init__()
        self.mlp = nn.Sequential(
            nn.Conv2d(in_dim, hidden_dim, 1), nn.GELU(),
            nn.Conv2d(hidden_dim, hidden_dim, 1), nn.GELU(),
            nn.Conv2d(hidden_dim, bottleneck_dim, 1),
        )
        for m in self.mlp:
            if isinstance(m, nn.Conv2d):
                nn.init.trunc_normal_(m.weight, std=0.02)
                nn.init.zeros_(m.bias)
        self.prototypes = nn.Parameter(torch.empty(out_dim, bottleneck_dim))
        nn.init.trunc_normal_(self.prototypes, std=0.02)
        self.out_dim = out_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = F.normalize(self.mlp(x), dim=1)
        w = F.normalize(self.prototypes, dim=1)
        return torch.einsum("bchw,kc->bkhw", z, w.to(z.dtype))


class IdentityHead(nn.Module):
    """The backbone features themselves, L2-normalised per location: K = feature channels."""

    def __init__(self, in_dim: int) -> None:
        super().__init__()
        self.out_dim = in_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(x, dim=1)


def build_head(kind: str, in_dim: int, out_dim: int, hidden_dim: int, bottleneck_dim: int) -> nn.Module:
    if kind == "identity":
        return IdentityHead(in_dim)
    return DenseDINOHead(in_dim, out_dim, hidden_dim, bottleneck_dim)
