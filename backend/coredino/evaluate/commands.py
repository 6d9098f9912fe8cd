"""`coredino eval`: argparse wiring (the CLI calls :func:`add_eval_parser`)."""

from __future__ import annotations

import argparse
import sys

from ..errors import UserError

DESCRIPTION = """Score frozen core-dino features on labelled building rasters, held out by scene:
(a) a 2-layer conv probe trained with a soft-IoU loss on the train scenes, IoU on the test
scenes at the mask resolution; (b) over-clustering accuracy and NMI of K-means clusters (or of
--codebook). The same numbers are reported for seeded random-init weights of the same
architecture with BatchNorm recalibrated on the same clean imagery (from export.json beside
the weights, else --calib, else the train scenes' images). Writes OUT/eval.json and eval.md."""


def _scenes(text: str) -> list[str]:
    return [s.strip() for s in text.split(",") if s.strip()]


def add_eval_parser(subparsers) -> argparse.ArgumentParser:
    from .evaluator import DEFAULT_DATA
    from .data import DEFAULT_PATTERN
    p = subparsers.add_parser("eval", help="probe + cluster quality of weights vs random init",
                              description=DESCRIPTION,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--weights", required=True, help="core-dino weights (.pt), or 'random' for the baseline only")
    p.add_argument("--scale", default="n", help="YOLO11 scale of the weights (default: %(default)s)")
    p.add_argument("--layer", type=int, default=19, help="feature layer 16/19/22 (default: %(default)s)")
    p.add_argument("--codebook", help="also score this codebook's clusters (must match --weights)")
    p.add_argument("--data", default=DEFAULT_DATA, help="folder of X_image.tif + X_buildings_mask.tif (default: %(default)s)")
    p.add_argument("--pattern", default=DEFAULT_PATTERN, help="image files in --data (default: %(default)s)")
    p.add_argument("--train-scenes", type=_scenes, default=["kampala", "nairobi"],
                   help="comma-separated scene prefixes for training (default: kampala,nairobi)")
    p.add_argument("--test-scenes", type=_scenes, default=["kathmandu"],
                   help="comma-separated held-out scene prefixes (default: kathmandu)")
    p.add_argument("--gsd", type=float, default=0.3, help="metres per pixel (default: %(default)s)")
    p.add_argument("--iters", type=int, default=300, help="probe iterations (default: %(default)s)")
    p.add_argument("--seeds", type=int, default=3, help="probe seeds averaged (default: %(default)s)")
    p.add_argument("--k", type=int, default=32, help="K-means clusters (default: %(default)s)")
    p.add_argument("--no-baseline", action="store_true", help="skip the random-init baseline")
    p.add_argument("--calib", nargs="+", help="rasters for the baseline's BatchNorm recalibration")
    p.add_argument("--calib-batches", type=int, default=32,
                   help="clean batches of 8 for the baseline's BatchNorm when the weights have no "
                        "export.json (default: %(default)s)")
    p.add_argument("-o", "--output", default="out/eval", help="output folder (default: %(default)s)")
    p.add_argument("--device", default="cpu", help="cpu, cuda, auto (default: %(default)s)")
    p.add_argument("--threads", type=int, help="torch CPU threads")
    p.set_defaults(run=run_eval_command)
    return p


def run_eval_command(args: argparse.Namespace) -> int:
    import torch
    from .evaluator import EvalParams, run_eval
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.iters < 1 or args.seeds < 1 or args.k < 2:
        raise UserError("--iters and --seeds must be at least 1 and --k at least 2")
    params = EvalParams(args.weights, args.scale, args.layer, args.data, args.pattern,
                        args.train_scenes, args.test_scenes, args.gsd, args.iters, args.seeds,
                        k=args.k, codebook=args.codebook, baseline=not args.no_baseline,
                        calib=args.calib, calib_batches=args.calib_batches, out=args.output, device=args.device)
    result = run_eval(params, log=lambda m: print(m, file=sys.stderr))
    from .evaluator import markdown
    print(markdown(result))
    return 0
