"""Nearest-centroid assignment on the CPU: the float32 matmul + argmax over whole rows (the
engine before #16), the blocked matmul + running argmax (the GPU path since #16, run here on the
CPU) and faiss's blocked top-2 search with the exact float64 re-check (the CPU path now).

Features: the default model (core-dino n, layer 16) on real tiles of the demo raster, against
the bundled 6000 x 64 codebook. Interleaved rounds (A B B A ...), medians, load recorded; ids
compared with a float64 exact search. Threads and wait policy as the engine sets them.

    .venv/bin/python bench/assign.py [--tiles 16] [--rounds 7]
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "backend"))

from coredino.threads import configure_threads  # noqa: E402

configure_threads()  # as the engine does: before torch and faiss start their OpenMP threads

from common import DEMO, ROOT, interleave, table  # noqa: E402

import torch  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tiles", type=int, default=16, help="384 px demo tiles (2304 cells each)")
    ap.add_argument("--rounds", type=int, default=7)
    args = ap.parse_args()

    from coredino.codebook import Codebook
    from coredino.codebook.assign import CENTROID_BLOCK, ROW_BLOCK, _ExactCpuScorer, _Scorer
    from coredino.encoders import ModelSpec, build_encoder
    from coredino.encoders.onnx_export import real_tiles

    book = Codebook.load(str(ROOT / "backend" / "coredino" / "resources" / "coredino-n-default.codebook.npz"))
    encoder = build_encoder(ModelSpec("core-dino", "n", str(ROOT / "backend" / "coredino" / "resources" / "coredino-n-default.pt"), 16),
                            torch.device("cpu"))
    with torch.inference_mode():
        x = torch.cat([encoder(t[None]) for t in real_tiles(DEMO, 384, args.tiles)])
    x = x.permute(0, 2, 3, 1).reshape(-1, encoder.dim).contiguous()
    centroids = torch.from_numpy(book.centroids)
    blocked = _Scorer(centroids, book.metric)
    exact = _ExactCpuScorer(blocked)

    def whole_rows(chunk: int = 1024):
        bias = 0 if blocked.bias is None else blocked.bias
        return torch.cat([(x[i:i + chunk] @ blocked.centroids_t + bias).argmax(1)
                          for i in range(0, len(x), chunk)]).numpy()

    variants = {"float32 matmul + argmax over whole rows, 1024-row chunks (before)": whole_rows,
                f"blocked matmul + running argmax, {ROW_BLOCK} x {CENTROID_BLOCK} blocks (GPU path)": lambda: blocked(x, 65536).numpy(),
                "faiss top-2 + float64 re-check (CPU path now)": lambda: exact(x, 65536).numpy()}
    times, ids, loads = interleave(variants, args.rounds)
    names = list(variants)
    c64 = torch.nn.functional.normalize(centroids.float(), dim=1).double().numpy()
    expected = (x.double().numpy() @ c64.T).argmax(1)
    first = statistics.median(times[names[0]])
    rows = [[name, f"{statistics.median(times[name]) * 1e3:.0f}", f"{len(x) / statistics.median(times[name]):,.0f}",
             f"{first / statistics.median(times[name]):.2f}x", f"{int((ids[name] != expected).sum())}",
             f"{int((ids[name] != ids[names[0]]).sum())}"]
            for name in names]
    print(f"{len(x)} real cells x {book.k} centroids (d = {encoder.dim}), {torch.get_num_threads()} threads, "
          f"{args.rounds} interleaved rounds, load average {min(loads):.1f}-{max(loads):.1f}")
    print(table(rows, ["assignment", "ms (median)", "cells/s", "speed-up", "ids differing from float64 search",
                            "from whole-row float32"]))


if __name__ == "__main__":
    main()
