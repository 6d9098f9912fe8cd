"""Teacher and student views of the same ground.

Teacher: the clean crop at the base GSD. Student: the same ground at a coarser random GSD,
either fed small (mode a, its feature map is upsampled to the teacher grid) or resized back
to the teacher size before the model (mode b, down-then-up), with colour jitter, blur, noise,
JPEG, block masking and a random flip / 90 degree rotation (the dihedral group D4) that is
undone on the student's feature map so every position compares the same ground.
DINO-MC local crops: extra smaller student views of sub-windows of the teacher crop.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass, field
from typing import Optional

import numpy as np
import torch
import torch.nn.functional as F
import torchvision.transforms.functional as TF
from PIL import Image

from .config import TrainConfig
from .masking import block_mask

MIN_VALID_CELL = 0.5  # a teacher-grid cell counts in the loss when half its pixels are valid


# --------------------------------------------------------------------------- geometry (D4)

def d4(x: torch.Tensor, k: int, flip: bool) -> torch.Tensor:
    """Flip left-right (if ``flip``) then rotate by ``k`` quarter turns over the last two dims."""
    if flip:
        x = x.flip(-1)
    return torch.rot90(x, k, dims=(-2, -1)) if k % 4 else x


def d4_inverse(x: torch.Tensor, k: int, flip: bool) -> torch.Tensor:
    """Undo :func:`d4` (on an image or on the feature map of the transformed image)."""
    if k % 4:
        x = torch.rot90(x, -k, dims=(-2, -1))
    return x.flip(-1) if flip else x


def align(feats: torch.Tensor, transforms: list[tuple[int, bool]], size: int) -> torch.Tensor:
    """Student feature map back in the teacher's frame: inverse D4 per sample, then bilinear
    resize to the teacher grid ``size`` x ``size`` (mode a maps are smaller)."""
    feats = torch.stack([d4_inverse(f, k, flip) for f, (k, flip) in zip(feats, transforms)])
    if feats.shape[-1] != size or feats.shape[-2] != size:
        feats = F.interpolate(feats, size=(size, size), mode="bilinear", align_corners=False)
    return feats


# --------------------------------------------------------------------------- degradations

def resize(x: torch.Tensor, size: int) -> torch.Tensor:
    """Bilinear resize of (B, 3, H, W) to ``size`` (antialiased when shrinking, like a coarser sensor)."""
    if x.shape[-1] == size and x.shape[-2] == size:
        return x
    shrink = size < x.shape[-1]
    return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False,
                         antialias=shrink).clamp_(0, 1)


def small_size(side: int, base_gsd: float, gsd: float) -> int:
    """Mode (a) input side: ``side`` pixels at ``base_gsd`` seen at ``gsd``, a multiple of 32."""
    return max(32, int(round(side * base_gsd / gsd / 32)) * 32)


def sample_gsd(rng: np.random.Generator, base: float, top: float) -> float:
    """A GSD in [base, top], log-uniform (as many doublings of coarse as of fine GSDs)."""
    return float(math.exp(rng.uniform(math.log(base), math.log(top)))) if top > base else base


def jpeg(x: torch.Tensor, quality: int) -> torch.Tensor:
    """JPEG round trip of one (3, H, W) image in [0, 1] (Pillow; torchvision's codec is deprecated)."""
    u8 = (x * 255).round().clamp(0, 255).to(torch.uint8).permute(1, 2, 0).contiguous().numpy()
    buf = io.BytesIO()
    Image.fromarray(u8).save(buf, format="JPEG", quality=quality)
    buf.seek(0)
    out = np.asarray(Image.open(buf).convert("RGB"), dtype=np.float32) / 255.0
    return torch.from_numpy(out.copy()).permute(2, 0, 1).contiguous()


def photometric(x: torch.Tensor, rng: np.random.Generator, cfg: TrainConfig) -> torch.Tensor:
    """Colour jitter, Gaussian blur, noise and JPEG on one (3, H, W) image, each at its probability."""
    if rng.random() < cfg.jitter_prob:
        s = cfg.jitter_strength  # factors in [1 - s, 1 + s], hue shift within +-s/8 of a turn
        x = TF.adjust_brightness(x, float(rng.uniform(1 - s, 1 + s)))
        x = TF.adjust_contrast(x, float(rng.uniform(1 - s, 1 + s)))
        x = TF.adjust_saturation(x, float(rng.uniform(1 - s, 1 + s)))
        x = TF.adjust_hue(x, float(rng.uniform(-s / 8, s / 8)))
    if rng.random() < cfg.blur_prob:
        sigma = float(rng.uniform(0.3, 1.5))
        kernel = 2 * math.ceil(2 * sigma) + 1
        if kernel <= min(x.shape[-2:]):
            x = TF.gaussian_blur(x, [kernel, kernel], [sigma, sigma])
    if rng.random() < cfg.noise_prob:
        gen = torch.Generator().manual_seed(int(rng.integers(0, 2**62)))
        x = x + float(rng.uniform(0.005, 0.04)) * torch.randn(x.shape, generator=gen)
    x = x.clamp(0, 1)
    if rng.random() < cfg.jpeg_prob:
        x = jpeg(x, int(rng.integers(30, 91)))
    return x


# --------------------------------------------------------------------------- views

@dataclass
class StudentView:
    """One batch of student inputs and how to compare them with the teacher."""

    image: torch.Tensor  # (B, 3, s, s), already geometrically transformed
    transforms: list[tuple[int, bool]]  # D4 (k, flip) per sample, undone on the feature map
    cells: tuple[int, int, int]  # (cell x0, cell y0, side) of the teacher grid it covers...
    offsets: Optional[list[tuple[int, int]]] = None  # ...or per-sample (x0, y0) cells (local crops)
    mask: Optional[torch.Tensor] = None  # (B, side, side) True = masked (global view only)
    gsd: list[float] = field(default_factory=list)
    mode: str = "b"


@dataclass
class Views:
    teacher: torch.Tensor  # (B, 3, crop, crop) clean
    cell_valid: torch.Tensor  # (B, h, w) teacher cells with enough valid pixels
    students: list[StudentView]

    def to(self, device: torch.device) -> "Views":
        self.teacher = self.teacher.to(device, non_blocking=True)
        self.cell_valid = self.cell_valid.to(device, non_blocking=True)
        for v in self.students:
            v.image = v.image.to(device, non_blocking=True)
            if v.mask is not None:
                v.mask = v.mask.to(device, non_blocking=True)
        return self


def _transform(rng: np.random.Generator, cfg: TrainConfig) -> tuple[int, bool]:
    return (int(rng.integers(0, 4)), bool(rng.integers(0, 2))) if cfg.geometric else (0, False)


def _student(images: torch.Tensor, rng: np.random.Generator, cfg: TrainConfig,
             masks: Optional[torch.Tensor]) -> tuple[torch.Tensor, list, list, str]:
    """Degrade, distort, mask and transform a batch of same-size crops for the student."""
    side = images.shape[-1]
    mode = "b" if rng.random() < cfg.down_up_prob else "a"
    if mode == "a":  # one GSD for the batch: the images must share one small size
        gsd = sample_gsd(rng, cfg.base_gsd, cfg.max_gsd)
        size = small_size(side, cfg.base_gsd, gsd)
        small = resize(images, size)
        gsds = [cfg.base_gsd * side / size] * len(images)
        outs = list(small)
    else:  # per-sample GSD, back to the teacher size before the model
        outs, gsds = [], []
        for img in images:
            gsd = sample_gsd(rng, cfg.base_gsd, cfg.max_gsd)
            down = max(8, int(round(side * cfg.base_gsd / gsd)))
            outs.append(resize(resize(img[None], down), side)[0])
            gsds.append(cfg.base_gsd * side / down)
    final, transforms = [], []
    for i, img in enumerate(outs):
        img = photometric(img, rng, cfg)
        if masks is not None and masks[i].any():
            pix = F.interpolate(masks[i][None, None].float(), size=img.shape[-2:], mode="nearest")[0, 0] > 0
            fill = img.mean(dim=(1, 2), keepdim=True).expand_as(img)
            img = torch.where(pix[None], fill, img)
        k, flip = _transform(rng, cfg)
        final.append(d4(img, k, flip))
        transforms.append((k, flip))
    return torch.stack(final), transforms, gsds, mode


def make_views(teacher: torch.Tensor, valid: torch.Tensor, rng: np.random.Generator,
               cfg: TrainConfig) -> Views:
    """All views of one step from clean crops ``teacher`` (B, 3, crop, crop) and their validity."""
    b, _, crop, _ = teacher.shape
    stride, side = cfg.stride, crop // cfg.stride
    cell_valid = F.avg_pool2d(valid[:, None].float(), stride)[:, 0] >= MIN_VALID_CELL
    masks = torch.zeros(b, side, side, dtype=torch.bool)
    for i in range(b):
        if rng.random() < cfg.mask_prob:
            masks[i] = torch.from_numpy(block_mask(side, side, rng, cfg.mask_min, cfg.mask_max))
    image, transforms, gsds, mode = _student(teacher, rng, cfg, masks)
    students = [StudentView(image, transforms, (0, 0, side), mask=masks, gsd=gsds, mode=mode)]
    sizes = list(range(cfg.local_min, min(cfg.local_max, crop) + 1, 32))
    for _ in range(cfg.local_crops):
        r = int(sizes[int(rng.integers(0, len(sizes)))])
        offsets = [(int(rng.integers(0, (crop - r) // 32 + 1)) * 32,
                    int(rng.integers(0, (crop - r) // 32 + 1)) * 32) for _ in range(b)]
        crops = torch.stack([teacher[i, :, y:y + r, x:x + r] for i, (x, y) in enumerate(offsets)])
        image, transforms, gsds, mode = _student(crops, rng, cfg, None)
        students.append(StudentView(image, transforms, (0, 0, r // stride),
                                    offsets=[(x // stride, y // stride) for x, y in offsets],
                                    gsd=gsds, mode=mode))
    return Views(teacher, cell_valid, students)


def teacher_region(t: torch.Tensor, view: StudentView) -> torch.Tensor:
    """The part of a teacher-grid tensor (B, ..., h, w) that ``view`` covers."""
    side = view.cells[2]
    if view.offsets is None:
        return t
    return torch.stack([t[i, ..., y:y + side, x:x + side] for i, (x, y) in enumerate(view.offsets)])
