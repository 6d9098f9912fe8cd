"""How far the exact float32 path is from this CPU's limit: each stage's FLOPs against the CPU's
own float32 GEMM rate, measured in the same run.

For one model and one scene it counts the work of a `coredino classify` (tiles and cells from the
engine's own plan), the FLOPs of one tile (hooks on every convolution and linear layer, plus the
attention products; activations, norms and pooling count as zero, so the ceiling is optimistic)
and of the assignment (2 k d per cell), then times, in interleaved rounds on real tiles:

* the CPU's float32 GEMM rate: a 2048^3 ``torch.mm`` with the engine's threads (the best any
  exact float32 kernel does here);
* the encoder: torch eager (the engine before #16) and the runtime ``auto`` picks now;
* the assignment: the old whole-row matmul + argmax and the exact faiss search now.

A stage can get at most ``measured / at GEMM rate`` faster without changing its results; the
last rows add the stages up: the old engine's compute, today's, and the floor.

    .venv/bin/python bench/ceiling.py --model n --raster ../shared/data/scenes/oam_uruguay_montevideo_0p25m.tif
    .venv/bin/python bench/ceiling.py --model dinov2-b --rounds 3
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "backend"))

from coredino.threads import configure_threads  # noqa: E402

POLICY = configure_threads()

from common import DEMO, OUT, ROOT, interleave, table  # noqa: E402

import torch  # noqa: E402


def tile_flops(encoder: torch.nn.Module, tiles: torch.Tensor) -> float:
    """Multiply-add FLOPs (2 per MAC) of one tile: convolutions, linear layers, attention products."""
    total = [0.0]

    def conv(m: torch.nn.Conv2d, _inp, out) -> None:
        k = m.kernel_size[0] * m.kernel_size[1] * m.in_channels // m.groups
        total[0] += 2.0 * out.numel() * k

    def linear(m: torch.nn.Linear, inp, _out) -> None:
        total[0] += 2.0 * inp[0].numel() * m.out_features

    handles = []
    for m in encoder.modules():
        if isinstance(m, torch.nn.Conv2d):
            handles.append(m.register_forward_hook(conv))
        elif isinstance(m, torch.nn.Linear):
            handles.append(m.register_forward_hook(linear))
    real_matmul = torch.Tensor.__matmul__
    sdpa = torch.nn.functional.scaled_dot_product_attention

    def matmul(a, b):  # the YOLO attention block's q.k and attn.v products
        total[0] += 2.0 * a.numel() * b.shape[-1]
        return real_matmul(a, b)

    def attention(q, k, v, *args, **kwargs):  # DINOv2 (sdpa): q.k and attn.v
        total[0] += 2.0 * 2 * q.numel() * k.shape[-2]
        return sdpa(q, k, v, *args, **kwargs)

    torch.Tensor.__matmul__ = matmul
    torch.nn.functional.scaled_dot_product_attention = attention
    try:
        with torch.inference_mode():
            encoder(tiles[:1])
    finally:
        torch.Tensor.__matmul__ = real_matmul
        torch.nn.functional.scaled_dot_product_attention = sdpa
        for h in handles:
            h.remove()
    return total[0]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", choices=("n", "dinov2-b"), default="n")
    ap.add_argument("--raster", default=str(DEMO))
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()

    from coredino.codebook import Codebook
    from coredino.codebook.assign import Assigner, _Scorer
    from coredino.encoders import ModelSpec, build_encoder
    from coredino.encoders.onnx_export import real_tiles
    from coredino.encoders.runtime import describe_runtime, prepare_encoder
    from coredino.engine import open_tiled
    from coredino.params import ClassifyOptions
    from coredino.tile_stream import plan_tiles

    cpu = torch.device("cpu")
    resources = ROOT / "backend" / "coredino" / "resources"
    if args.model == "n":
        encoder = build_encoder(ModelSpec("core-dino", "n", str(resources / "coredino-n-default.pt"), 16), cpu)
        book = Codebook.load(str(resources / "coredino-n-default.codebook.npz"))
    else:
        from common import dinov2_folder, random_codebook
        encoder = build_encoder(ModelSpec("dinov2", dinov2_folder(), "", None), cpu)
        book = random_codebook(encoder, OUT / "dinov2-b-random-6000.codebook.npz")
    side = int(book.recipe["tile"]) * encoder.patch
    work = {}
    for name, blend in (("cut", False), ("blended", True)):
        raster, grid = open_tiled(args.raster, book, encoder.patch, ClassifyOptions(blend=blend))
        try:
            work[name] = (plan_tiles(raster, grid, encoder.patch).tiles, grid.cells_x * grid.cells_y)
        finally:
            raster.close()

    tiles = real_tiles(DEMO, side, args.batch)
    assigner = Assigner(book, cpu)
    now, _ = prepare_encoder(encoder, "auto", "fp32", side, assigner, DEMO)
    with torch.inference_mode():
        feats = torch.cat([encoder(tiles).flatten(2).transpose(1, 2).reshape(-1, encoder.dim)] * 4)
    old_scorer = _Scorer(torch.from_numpy(book.centroids), book.metric)
    a = torch.randn(2048, 2048)

    def old_assign() -> torch.Tensor:  # the engine before #16: whole-row matmul (+ l2 bias) + argmax
        out = []
        for i0 in range(0, len(feats), 1024):
            scores = feats[i0:i0 + 1024] @ old_scorer.centroids_t
            if old_scorer.bias is not None:
                scores += old_scorer.bias
            out.append(scores.argmax(1))
        return torch.cat(out)

    variants = {
        "gemm": lambda: a @ a,
        "encoder torch": lambda: encoder(tiles),
        "encoder now": lambda: now(tiles),
        "assign old": old_assign,
        "assign now": lambda: assigner(feats),
    }
    with torch.inference_mode():
        times, _, loads = interleave(variants, args.rounds)
    med = {k: statistics.median(v) for k, v in times.items()}
    rate = 2.0 * 2048 ** 3 / med["gemm"]
    flop_tile = tile_flops(encoder, tiles)
    flop_cell = 2.0 * book.k * encoder.dim
    per_tile = {k: med[k] / len(tiles) for k in ("encoder torch", "encoder now")}
    per_cell = {k: med[k] / len(feats) for k in ("assign old", "assign now")}
    print(f"{args.model}, {Path(args.raster).name}; {describe_runtime(now)}; load "
          f"{min(loads):.1f}-{max(loads):.1f}; float32 GEMM rate {rate / 1e9:.0f} GFLOP/s "
          f"({POLICY.threads} threads); {flop_tile / 1e9:.2f} GFLOP per {side} px tile, "
          f"{flop_cell / 1e6:.2f} MFLOP per cell\n")
    rows = []
    for name, (n_tiles, n_cells) in work.items():
        enc_floor, asg_floor = n_tiles * flop_tile / rate, n_cells * flop_cell / rate
        stages = [("encoder, torch eager (before)", n_tiles * per_tile["encoder torch"], enc_floor),
                  ("encoder, now", n_tiles * per_tile["encoder now"], enc_floor),
                  ("assignment, matmul + argmax (before)", n_cells * per_cell["assign old"], asg_floor),
                  ("assignment, now (exact faiss)", n_cells * per_cell["assign now"], asg_floor)]
        for stage, seconds, floor in stages:
            rows.append([name, stage, f"{seconds:.2f}", f"{floor:.2f}", f"{floor / seconds:.0%}"])
        before, after = stages[0][1] + stages[2][1], stages[1][1] + stages[3][1]
        rows.append([name, "**compute before / now / floor**", f"{before:.2f} / {after:.2f}",
                     f"{enc_floor + asg_floor:.2f}",
                     f"now {before / after:.2f}x, at most {before / (enc_floor + asg_floor):.2f}x"])
        rows[-5][0] = f"{name}: {n_tiles} tiles, {n_cells} cells"
    print(table(rows, ["tiles", "stage", "s per scene", "s at the GEMM rate", "share of the rate"]))


if __name__ == "__main__":
    main()
