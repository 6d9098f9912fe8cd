"""GPU encoder throughput (bf16 autocast batch sweep and MFU, default model and DINOv2-B), and the
fused nearest-centroid assignment against the whole-row matmul + argmax it replaced.

One short run on a CUDA machine (about 5 minutes on an H100). For each model and batch size:
tiles/s (median of ``--repeats`` timed passes after a warm-up, CUDA-synchronised), km²/s of
cells written at 0.25 m (each tile writes its core: tile minus the border on each side), and
MFU = FLOPs per second / the chip's dense bf16 peak. FLOPs are counted by
``torch.utils.flop_counter.FlopCounterMode`` on one batch (matmuls and convolutions).

Assignment: ``--assign-cells`` default-model features of real demo tiles (250,000: one km² of
2 m cells) against the bundled 6000 x 64 codebook, float32 with TF32 off, as the engine runs it:
the blocked matmul + running argmax (``coredino.codebook.assign._Scorer``, now) against a
65,536-row chunked matmul + argmax over whole rows (before #16), interleaved, CUDA-synchronised,
medians, ids compared. The end-to-end writer-thread comparison is ``bench/host_overlap.py
--device cuda``.

    .venv/bin/python bench/gpu.py [--batches 64,128,256,512] [--peak-tflops 989]
    .venv/bin/python bench/gpu.py --device cpu --batches 1 --repeats 1   # a dry run of the script
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Callable

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
    ap.add_argument("--assign-cells", type=int, default=250_000, help="feature rows (250,000: 1 km² of 2 m cells)")
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
    print(assignment(device, args.assign_cells, args.repeats))


def assignment(device: torch.device, cells: int, repeats: int) -> str:
    """The fused (blocked) assignment against the whole-row one on ``cells`` real feature rows."""
    from common import DEMO, interleave, sync

    from coredino.codebook.assign import CENTROID_BLOCK, ROW_BLOCK, _full_float32, _Scorer
    from coredino.encoders import ModelSpec, build_encoder
    from coredino.encoders.onnx_export import real_tiles
    from coredino.engine import load_codebook

    book = load_codebook(None)
    spec = ModelSpec(*MODELS[0][1])
    encoder = build_encoder(spec, device)
    with torch.inference_mode():
        feats = encoder(real_tiles(DEMO, 384, 8).to(device)).permute(0, 2, 3, 1).reshape(-1, encoder.dim)
    x = feats.repeat(-(-cells // len(feats)), 1)[:cells].float().contiguous()
    scorer = _Scorer(torch.from_numpy(book.centroids).to(device), book.metric)  # its centroids, for "before"

    def whole_rows(chunk: int = 65536) -> torch.Tensor:
        with torch.no_grad(), _full_float32(device):
            ids = torch.cat([(x[i:i + chunk] @ scorer.centroids_t).argmax(1) for i in range(0, len(x), chunk)])
        sync(device)
        return ids

    def blocked(rows: int) -> Callable[[], torch.Tensor]:
        sized = _Scorer(torch.from_numpy(book.centroids).to(device), book.metric, rows=rows)

        def run() -> torch.Tensor:
            ids = sized(x, 65536)
            sync(device)
            return ids
        return run

    variants = {"matmul + argmax over whole rows, 65,536-row chunks (before)": whole_rows}
    for rows in (ROW_BLOCK // 2, ROW_BLOCK, ROW_BLOCK * 2):  # the row block's sweep
        now = " (now)" if rows == ROW_BLOCK else ""
        variants[f"blocked matmul + running argmax, {rows} x {CENTROID_BLOCK} blocks{now}"] = blocked(rows)
    for run in variants.values():  # warm-up: kernels chosen, memory allocated
        run()
    times, ids, loads = interleave(variants, repeats)
    names = list(variants)
    differ = max(int((ids[names[0]] != ids[name]).sum()) for name in names)
    rows = [[name, f"{1e3 * statistics.median(times[name]):.1f}", f"{1e3 * statistics.median(times[name]) * 250_000 / cells:.1f}"]
            for name in names]
    return (f"\nassignment: {cells:,} real feature rows x {book.k} centroids (d = {encoder.dim}), float32, "
            f"{repeats} interleaved rounds; most ids differing from the whole-row search: {differ}\n"
            + table(rows, ["assignment", "ms (median)", "ms/km² (2 m cells)"]))


if __name__ == "__main__":
    main()
