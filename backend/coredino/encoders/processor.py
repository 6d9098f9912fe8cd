"""DINOv2 seen through the Hugging Face image processor, as the geocentroids notebook runs it.

The processor resizes a 224 px tile's shortest edge to 256 (bicubic) and centre-crops 224, so the
model sees the tile's central 196 px at 8/7 magnification: each of the 16 x 16 patches covers
12.25 source pixels, and the first one starts 14 px inside the tile. Those footprints do not fall
on a grid of whole pixels, so this encoder reports its features on 7 px cells (32 x 32 per tile;
7 px tiles the notebook's 140 px stride and 224 px tile exactly): every cell carries the patch
whose true footprint holds the cell's centre (at most 3.5 px, 0.875 m at 0.25 m, from the exact
boundary). Cells of the outer 14 px, which no patch sees, take the nearest patch.

Like the notebook: ``last_hidden_state`` patch tokens (CLS and registers dropped), cast to float16,
computed in float32 also on a GPU (no bfloat16 autocast: it would change ids).
On the CPU the resize runs on uint8 like PIL (``AutoImageProcessor``'s slow path, the notebook's):
identical to PIL but for about 1 value in 30000 off by one.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .base import ModelSpec
from .dinov2 import DinoV2Encoder

TILE_PX = 224  # the tile the notebook feeds the processor
RESIZE_PX = 256  # the processor's shortest_edge
CROP_PX = 224  # the processor's crop_size
CELL_PX = 7  # output cell: divides the tile (224) and the notebook's stride (140)


def _patch_of_cells(patches: int) -> torch.Tensor:
    """Index of the patch holding each cell's centre, for the cells of one tile side."""
    scale = TILE_PX / RESIZE_PX  # source px per processed px
    first = (RESIZE_PX - CROP_PX) / 2 * scale  # 14 px cropped away on each side
    size = CROP_PX / patches * scale  # 12.25 px per patch
    centres = torch.arange(TILE_PX // CELL_PX) * CELL_PX + CELL_PX / 2
    return ((centres - first) / size).floor().long().clamp(0, patches - 1)


class ProcessorDinoV2Encoder(DinoV2Encoder):
    """(B, 3, 224, 224) in [0, 1] -> (B, dim, 32, 32): the notebook's features at true positions."""

    family = "dinov2-processor"
    normalisation = "imagenet-processor-256-crop-224"
    onnx = False  # the uint8 antialiased bicubic resize (PIL's arithmetic) has no exact ONNX form

    def __init__(self, spec: ModelSpec) -> None:
        super().__init__(spec)
        patches = CROP_PX // self.patch
        self.register_buffer("cells", _patch_of_cells(patches), persistent=False)
        self.patches, self.patch = patches, CELL_PX

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if tuple(x.shape[-2:]) != (TILE_PX, TILE_PX):
            raise ValueError(f"{self.family} takes {TILE_PX} px tiles, got {tuple(x.shape[-2:])}")
        values = (x.float() * 255).round_().clamp_(0, 255)
        if values.device.type == "cpu":  # uint8 in, uint8 out: PIL's arithmetic
            values = F.interpolate(values.to(torch.uint8), size=(RESIZE_PX, RESIZE_PX),
                                   mode="bicubic", antialias=True).float()
        else:
            values = F.interpolate(values, size=(RESIZE_PX, RESIZE_PX), mode="bicubic",
                                   antialias=True).round_().clamp_(0, 255)
        top = (RESIZE_PX - CROP_PX) // 2
        crop = values[..., top:top + CROP_PX, top:top + CROP_PX] / 255.0
        with torch.autocast(device_type=x.device.type, enabled=False):  # float32 like the notebook
            tokens = self.model(pixel_values=(crop - self.mean) / self.std).last_hidden_state
        tokens = tokens[:, self.skip:].half().float()  # the notebook's float16 features
        grid = tokens.transpose(1, 2).reshape(x.shape[0], self.dim, self.patches, self.patches)
        return grid[:, :, self.cells][:, :, :, self.cells]
