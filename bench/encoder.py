"""Encoder forward alone: torch eager against ONNX Runtime (and reduced precision), per model.

One batch of real demo tiles through each variant in interleaved rounds (A B C A B C ...),
medians, load recorded; ids compared with torch fp32 through the codebook's exact search. The
ONNX files come from the engine's cache (exported and checked on first use; the export time is
printed). Threads and wait policy as the engine sets them.

    .venv/bin/python bench/encoder.py --model n            # core-dino n@16, 384 px tiles
    .venv/bin/python bench/encoder.py --model dinov2-b     # ViT-B/14-reg random weights, 224 px
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "backend"))

from coredino.threads import configure_threads  # noqa: E402

configure_threads()

from common import DEMO, OUT, ROOT, interleave, table  # noqa: E402

import torch  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", choices=("n", "dinov2-b"), default="n")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--variants", default="torch,onnx,bf16,int8")
    args = ap.parse_args()

    from coredino.codebook import Assigner, Codebook
    from coredino.encoders import ModelSpec, build_encoder
    from coredino.encoders.onnx_export import real_tiles
    from coredino.encoders.runtime import describe_runtime, prepare_encoder

    cpu = torch.device("cpu")
    if args.model == "n":
        encoder = build_encoder(ModelSpec("core-dino", "n", str(ROOT / "backend" / "coredino" / "resources" / "coredino-n-default.pt"), 16), cpu)
        book = Codebook.load(str(ROOT / "backend" / "coredino" / "resources" / "coredino-n-default.codebook.npz"))
    else:
        from common import dinov2_folder, random_codebook
        encoder = build_encoder(ModelSpec("dinov2", dinov2_folder(), "", None), cpu)
        book = random_codebook(encoder, OUT / "dinov2-b-random-6000.codebook.npz")
    side = int(book.recipe["tile"]) * encoder.patch
    assigner = Assigner(book, cpu)
    runners = {}
    for name in args.variants.split(","):
        runtime, precision = ("torch", "fp32") if name == "torch" else \
            ("onnx", "fp32") if name == "onnx" else ("auto", name)
        start = time.perf_counter()
        runners[name], notes = prepare_encoder(encoder, runtime, precision, side, assigner, DEMO)
        print(f"{name}: {describe_runtime(runners[name])}; prepared in {time.perf_counter() - start:.1f} s"
              f"{'; ' + notes[0] if notes else ''}", flush=True)
    tiles = real_tiles(DEMO, side, args.batch)

    def forward(runner):
        with torch.inference_mode():
            out = runner(tiles)
        return assigner(out.float().permute(0, 2, 3, 1).reshape(-1, encoder.dim))

    times, ids, loads = interleave({name: (lambda r=runner: forward(r)) for name, runner in runners.items()},
                                   args.rounds)
    names = list(runners)
    base = statistics.median(times[names[0]])
    rows = [[name, f"{statistics.median(times[name]):.3f}", f"{min(times[name]):.3f}-{max(times[name]):.3f}",
             f"{base / statistics.median(times[name]):.2f}x",
             f"{100 * float((ids[name] == ids[names[0]]).double().mean()):.2f}"] for name in names]
    print(f"{encoder.id}, {len(tiles)} real tiles of {side} px, {args.rounds} interleaved rounds, "
          f"{torch.get_num_threads()} threads, load average {min(loads):.1f}-{max(loads):.1f}")
    print(table(rows, ["variant", "s per batch (median)", "min-max", f"speed-up vs {names[0]}",
                       f"% ids = {names[0]}"]))


if __name__ == "__main__":
    main()
