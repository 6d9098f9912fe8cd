"""GPU encoder throughput: bf16 autocast batch sweep and MFU, for the default model and DINOv2-B.

One short run on a CUDA machine (about 5 minutes on an H100). For each model and batch size:
tiles/s (median of ``--repeats`` timed passes after a warm-up, CUDA-synchronised), km²/s of
cells written at 0.25 m (each tile writes its core: tile minus the border on each side), and
MFU = FLOPs per second / the chip's dense bf16 peak. FLOPs are counted by
``torch.utils.flop_counter.FlopCounterMode`` on one batch (matmuls and convolutions).

    .venv/bin/python bench/gpu.py [--batches 64,128,256,512] [--peak-tflops 989]
    .venv/bin/python bench/gpu.py --device cpu --batches 1 --repeats 1   # a dry run of the script
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import ROOT, dinov2_folder, hardware, table  # noqa: E402

import torch  # noqa: E402

# (name, spec arguments, tile side px, core side px written per tile)
MODELS = [("core-dino n@16", ("core-dino", "n", str(ROOT / "backend" / "coredino" / "resources" / "coredino-n-default.pt"), 16), 384, 288),
          ("DINOv2 ViT-B/14-reg (random)", None, 224, 140)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batches", default="64,128,256,512")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--peak-tflops", type=float, default=989.0, help="dense bf16 peak (H100/H200 SXM: 989)")
    args = ap.parse_args()

    from torch.utils.flop_counter import FlopCounterMode

    from common import sync

    from coredino.device import autocast
    from coredino.encoders import ModelSpec, build_encoder

    device = torch.device(args.device)
    print(f"hardware: {hardware(device)}; peak {args.peak_tflops:.0f} TFLOP/s bf16 dense")
    rows = []
    for name, spec, side, core in MODELS:
        spec = ModelSpec(*spec) if spec else ModelSpec("dinov2", dinov2_folder(), "", None)
        encoder = build_encoder(spec, device)
        for batch in map(int, args.batches.split(",")):
            x = torch.rand(batch, 3, side, side, device=device)
            try:
                with torch.inference_mode(), autocast(device):
                    with FlopCounterMode(display=False) as counter:
                        encoder(x)
                    encoder(x)
                    sync(device)
                    times = []
                    for _ in range(args.repeats):
                        start = time.perf_counter()
                        encoder(x)
                        sync(device)
                        times.append(time.perf_counter() - start)
            except torch.cuda.OutOfMemoryError:
                rows.append([name, str(batch), "out of memory", "", "", ""])
                torch.cuda.empty_cache()
                continue
            seconds = statistics.median(times)
            flops = counter.get_total_flops()
            tiles = batch / seconds
            rows.append([name, str(batch), f"{tiles:,.0f}", f"{tiles * (core * 0.25) ** 2 / 1e6:.2f}",
                         f"{flops / seconds / 1e12:.0f}", f"{100 * flops / seconds / 1e12 / args.peak_tflops:.1f}"])
        del encoder
        build_encoder.cache_clear()
        if device.type == "cuda":
            torch.cuda.empty_cache()
    print(table(rows, ["model", "batch", "tiles/s", "km²/s (0.25 m)", "TFLOP/s", "MFU %"]))


if __name__ == "__main__":
    main()
