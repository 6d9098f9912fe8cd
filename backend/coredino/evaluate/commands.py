"""`coredino eval`: argparse wiring (the CLI calls :func:`add_eval_parser`)."""

from __future__ import annotations

import argparse
import shlex
import sys

from ..errors import UserError

DESCRIPTION = """Score frozen encoders on every labelled development set in rotation: buildings
with each city held out in turn at 0.30 m and 0.15 m, Dubai land cover with each tile held out in
turn; per fold a linear and a conv probe, K-means clusters mapped to classes, and the similarity
ROC AUC from 10 building / 5 background clicks. Candidates (--weights) are reported beside the
colour-only, random-init and ImageNet MobileNetV2 baselines, as means and spreads over folds and
seeds. Writes OUT/eval.json and OUT/eval.md (results per encoder cached in OUT/cache)."""

EXAMPLE = """example:
  coredino eval --weights default=backend/coredino/resources/coredino-n-default.pt --weights new=out/train/coredino-n-student.pt -o out/eval
"""


def _list(text: str) -> list[str]:
    return [s.strip() for s in text.split(",") if s.strip()]


def add_eval_parser(subparsers) -> argparse.ArgumentParser:
    from .evaluator import BASELINES, DEFAULT_CALIB, DEFAULT_DATA, weights_arg
    from .rotation import TASKS
    p = subparsers.add_parser("eval", help="rotating held-out evaluation of encoders vs baselines",
                              description=DESCRIPTION, epilog=EXAMPLE,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--weights", type=weights_arg, action="append", default=[],
                   help="candidate core-dino weights, NAME=PATH or PATH (repeatable)")
    p.add_argument("--baselines", type=_list, default=list(BASELINES),
                   help="comma-separated baselines: color, random, imagenet, or none (default: all)")
    p.add_argument("--candidate", help="the --weights NAME the ship decision is about (default: the last)")
    p.add_argument("--scale", default="n", help="YOLO11 scale of the weights (default: %(default)s)")
    p.add_argument("--layer", type=int, default=16, help="feature layer 16/19/22 (default: %(default)s)")
    p.add_argument("--data", default=DEFAULT_DATA,
                   help="labelled development set: oam_osm_buildings/ and dubai_landcover/ (default: %(default)s)")
    p.add_argument("--tasks", type=_list, default=list(TASKS), help=f"default: {','.join(TASKS)}")
    p.add_argument("--seeds", type=int, default=3, help="seeds per fold (default: %(default)s)")
    p.add_argument("--k", type=int, default=32, help="K-means clusters (default: %(default)s)")
    p.add_argument("--calib", nargs="+", default=[DEFAULT_CALIB],
                   help="rasters for the random baseline's BatchNorm (default: the demo raster)")
    p.add_argument("--calib-batches", type=int, default=16, help="batches of 8 (default: %(default)s)")
    p.add_argument("-o", "--output", default="out/eval", help="output folder (default: %(default)s)")
    p.add_argument("--device", default="cpu", help="cpu, cuda, auto (default: %(default)s)")
    p.add_argument("--threads", type=int, help="torch CPU threads")
    p.set_defaults(run=run_eval_command)
    return p


def run_eval_command(args: argparse.Namespace) -> int:
    import torch
    from .evaluator import EvalParams, run_eval
    from .report import markdown
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.seeds < 1 or args.k < 2:
        raise UserError("--seeds must be at least 1 and --k at least 2")
    baselines = [b for b in args.baselines if b != "none"]
    if not args.weights and not baselines:
        raise UserError("nothing to evaluate: give --weights or keep a baseline")
    names = [n for n, _ in args.weights]
    if args.candidate and args.candidate not in names:
        raise UserError(f"--candidate {args.candidate!r} is not a --weights name ({', '.join(names) or 'none'})")
    params = EvalParams(args.weights, baselines, args.scale, args.layer, args.data, args.tasks, args.seeds,
                        args.k, args.calib, args.calib_batches, args.output, args.device, args.candidate,
                        command="coredino " + shlex.join(sys.argv[1:]) if sys.argv[1:2] == ["eval"] else "")
    report = run_eval(params, log=lambda m: print(m, file=sys.stderr))
    print(markdown(report))
    return 0
