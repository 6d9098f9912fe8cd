"""Every training option in one dataclass (what the CLI fills and checkpoints store)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Optional

from ..encoders.yolo import LAYER_STRIDES, SCALES
from ..errors import UserError

# Options that must not change when a run is resumed (they change the model or the data stream).
RESUME_KEYS = ("scale", "layer", "head", "out_dim", "hidden_dim", "bottleneck_dim", "crop",
               "batch_size", "base_gsd", "max_gsd", "seed", "local_crops", "steps", "centering", "gsds", "objective")


@dataclass
class TrainConfig:
    """A core-dino training run. Sizes are pixels at ``base_gsd`` (the teacher's grid)."""

    data: list[str]
    out: str
    scale: str = "n"
    steps: int = 1000
    batch_size: int = 8  # per process (per GPU under torchrun)
    base_gsd: float = 0.3
    gsds: list[float] = field(default_factory=list)  # further teacher GSDs, one drawn per step
    max_gsd: float = 2.0
    crop: int = 256
    layer: int = 19
    init: Optional[str] = None  # start from a core-dino checkpoint instead of random init
    objective: str = "dino"  # dino: self-supervised EMA teacher; distill: the MobileNetV2 prior
    # head and loss
    head: str = "dino"  # dino: MLP + weight-normed prototypes; identity: the features themselves
    out_dim: int = 4096
    hidden_dim: int = 1024
    bottleneck_dim: int = 256
    centering: str = "centre"  # centre (EMA centre) or sinkhorn (Sinkhorn-Knopp)
    centre_momentum: float = 0.9
    student_temp: float = 0.1
    teacher_temp_start: float = 0.04
    teacher_temp: float = 0.07
    teacher_temp_warmup: Optional[int] = None  # steps; default 30 % of steps
    momentum_start: float = 0.996
    momentum_end: float = 1.0
    # optimisation
    lr: float = 1e-3  # absolute peak learning rate (not scaled by batch size)
    min_lr: float = 1e-6
    warmup_steps: Optional[int] = None  # default 10 % of steps, at most 1000
    weight_decay: float = 0.04
    weight_decay_end: float = 0.4
    clip_grad: float = 3.0
    freeze_prototypes: int = 0  # steps during which the prototypes get no update (DINO)
    # views
    down_up_prob: float = 0.5  # student mode (b) "down-then-up" probability; else mode (a)
    mask_min: float = 0.15
    mask_max: float = 0.4
    mask_prob: float = 1.0  # fraction of student global views that get block masking
    loss_on_masked: bool = False
    local_crops: int = 0  # DINO-MC multi-sized local crops per sample (student only)
    local_min: int = 96
    local_max: int = 192
    jitter_prob: float = 0.8
    jitter_strength: float = 0.4  # brightness/contrast/saturation factors in [1 - s, 1 + s], hue +-s/8
    blur_prob: float = 0.3
    noise_prob: float = 0.3
    jpeg_prob: float = 0.3
    geometric: bool = True  # random flips / 90 degree rotations of the student (undone on its map)
    context_window: float = 0.0  # distill: the student also sees the crop's centre (this fraction of its side)
    min_valid: float = 0.9  # windows need this fraction of valid pixels
    # bookkeeping
    checkpoint_every: int = 100
    log_every: int = 10
    calib_batches: int = 32
    device: str = "auto"
    seed: int = 0
    threads: Optional[int] = None
    overfit: bool = False  # debug: the same batch and augmentations at every step
    export: bool = True
    plot: bool = True
    extra: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.scale not in SCALES:
            raise UserError(f"unknown YOLO11 scale {self.scale!r}; use one of {', '.join(SCALES)}")
        if self.layer not in LAYER_STRIDES:
            raise UserError(f"--layer {self.layer} is not a core-dino feature layer; use 16, 19 or 22")
        if self.crop % 32 or self.crop < 64:
            raise UserError(f"--crop {self.crop} must be a multiple of 32 and at least 64 "
                            f"(the YOLO neck needs multiples of 32)")
        if self.steps < 1:
            raise UserError("--steps must be at least 1")
        if self.batch_size < 2:
            raise UserError("--batch-size must be at least 2 (BatchNorm needs batch statistics; "
                            "a 32 px student view has a 1 x 1 map at stride 32)")
        if not 0 < self.base_gsd <= self.max_gsd:
            raise UserError(f"--max-gsd {self.max_gsd} must be at least --base-gsd {self.base_gsd} (> 0)")
        if self.objective not in ("dino", "distill"):
            raise UserError(f"--objective {self.objective!r}: use dino or distill")
        if self.objective == "distill" and self.local_crops:
            raise UserError("--objective distill does not use --local-crops; drop the option")
        if any(g <= 0 for g in self.gsds):
            raise UserError(f"--gsds {self.gsds}: every GSD must be positive")
        if self.calib_batches < 0:
            raise UserError(f"--calib-batches {self.calib_batches} must be 0 (keep training's statistics) or more")
        if not 0 <= self.context_window < 1:
            raise UserError(f"--context-window {self.context_window} must be in [0, 1) (0: off)")
        if not 0 <= self.jitter_strength < 1:
            raise UserError(f"--jitter-strength {self.jitter_strength} must be in [0, 1)")
        if self.head not in ("dino", "identity"):
            raise UserError(f"--head {self.head!r}: use dino or identity")
        if self.centering not in ("centre", "sinkhorn"):
            raise UserError(f"--centering {self.centering!r}: use centre or sinkhorn")
        if not 0 <= self.mask_min <= self.mask_max < 1:
            raise UserError("masking ratios need 0 <= --mask-min <= --mask-max < 1")
        if self.local_crops:
            lo, hi = self.local_min, min(self.local_max, self.crop)
            if lo % 32 or lo > hi:
                raise UserError(f"local crop sizes {self.local_min}-{self.local_max} must be multiples "
                                f"of 32 no larger than --crop {self.crop}")
        if not self.data:
            raise UserError("no training rasters given")

    @property
    def stride(self) -> int:
        return LAYER_STRIDES[self.layer]

    @property
    def warmup(self) -> int:
        return self.warmup_steps if self.warmup_steps is not None else min(1000, self.steps // 10)

    @property
    def temp_warmup(self) -> int:
        return (self.teacher_temp_warmup if self.teacher_temp_warmup is not None
                else int(0.3 * self.steps))

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})
