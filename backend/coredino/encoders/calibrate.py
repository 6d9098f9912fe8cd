"""BatchNorm statistics recalibrated on clean imagery (before export, or for random-init weights)."""

from __future__ import annotations

from typing import Iterable

import torch
from torch import nn

from .yolo import run_layers


def recalibrate_batchnorm(layers: nn.ModuleList, batches: Iterable[torch.Tensor]) -> int:
    """Replace every BatchNorm's running mean/var by their average over ``batches``.

    Weights are untouched; returns the number of batches seen. The layers end in eval mode.
    """
    norms = [m for m in layers.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative moving average: every batch weighs the same
    layers.train()
    seen = 0
    with torch.no_grad():
        for x in batches:
            run_layers(layers, x)
            seen += 1
    for m, momentum in zip(norms, momenta):
        m.momentum = momentum
    layers.eval()
    return seen
