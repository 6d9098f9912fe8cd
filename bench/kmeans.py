"""K-means at codebook scale (n x 768 -> 6000) and the t-SNE colouring of the centroids.

    .venv/bin/python bench/kmeans.py                         # GPU: 4M x 768 -> 6000, 20 iterations
    .venv/bin/python bench/kmeans.py --n 100000 --niter 5    # a CPU-sized run (faiss alongside)

The data is a synthetic Gaussian mixture (6000 true centres in 768-d plus noise, generated on the
device), so any n fits without a feature extraction first; the timing of a Lloyd iteration does
not depend on the values. On the CPU, faiss (the engine's CPU path) runs on the same data for
comparison, interleaved with torch over ``--rounds`` rounds (torch, faiss, faiss, torch, ...:
load drifting on a shared machine hits both alike; medians and load averages are reported).
``--tsne`` also times ``centroid_colors`` on the fitted centroids.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import PeakRss, hardware, sync, table  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402


def mixture(n: int, d: int, centres: int, device: torch.device, seed: int = 0) -> torch.Tensor:
    """(n, d) float32 on ``device``: points around ``centres`` random centres."""
    gen = torch.Generator(device=device).manual_seed(seed)
    means = torch.randn(centres, d, generator=gen, device=device)
    out = torch.empty(n, d, device=device)
    for i in range(0, n, 262144):
        m = min(262144, n - i)
        which = torch.randint(centres, (m,), generator=gen, device=device)
        out[i:i + m] = means[which] + 0.5 * torch.randn(m, d, generator=gen, device=device)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--n", type=int, default=0, help="features (default: 4,000,000 on CUDA, 100,000 on CPU)")
    ap.add_argument("--d", type=int, default=768)
    ap.add_argument("--k", type=int, default=6000)
    ap.add_argument("--niter", type=int, default=0, help="iterations (default: 20 on CUDA, 5 on CPU)")
    ap.add_argument("--metric", default="cosine", choices=["cosine", "l2"])
    ap.add_argument("--init", default="", choices=["", "kmeans||", "random"],
                    help="torch initialisation (default: kmeans|| on CUDA, random on CPU)")
    ap.add_argument("--no-faiss", action="store_true", help="skip the faiss run on the CPU")
    ap.add_argument("--tsne", action="store_true", help="also time centroid_colors on the centroids")
    ap.add_argument("--rounds", type=int, default=0, help="interleaved rounds (default: 1 on CUDA, 3 on CPU)")
    args = ap.parse_args()

    from coredino.codebook.kmeans import fit_kmeans
    from coredino.codebook.torch_kmeans import torch_kmeans
    from coredino.device import pick_device

    device = pick_device(args.device)
    cuda = device.type == "cuda"
    n = args.n or (4_000_000 if cuda else 100_000)
    niter = args.niter or (20 if cuda else 5)
    init = args.init or ("kmeans||" if cuda else "random")
    print(f"hardware: {hardware(device)}")
    print(f"data: {n} x {args.d} synthetic mixture -> k = {args.k}, {niter} iterations, "
          f"metric {args.metric}, torch init {init}")
    x = mixture(n, args.d, 6000, device)
    sync(device)
    rows = []
    stats: dict = {}
    faiss_too = not cuda and not args.no_faiss
    rounds = args.rounds or (1 if cuda else 3)
    times: dict[str, list[float]] = {"torch": [], "faiss": []}
    loads: list[float] = []
    xn = x.numpy() if faiss_too else None
    for r in range(rounds):
        for which in (("torch", "faiss") if r % 2 == 0 else ("faiss", "torch")):
            if which == "faiss" and not faiss_too:
                continue
            loads.append(os.getloadavg()[0])
            with PeakRss() as rss_run:
                start = time.perf_counter()
                if which == "torch":
                    stats = {}
                    centroids = torch_kmeans(x, args.k, args.metric, 0, niter, device=device, init=init,
                                             stats=stats)
                    sync(device)
                else:
                    fitted = fit_kmeans(xn, args.k, args.metric, 0, niter, device="cpu")
                times[which].append(time.perf_counter() - start)
            if which == "torch":
                rss = rss_run
            else:
                rss_f = rss_run
    t_torch = statistics.median(times["torch"])
    print(f"medians of {rounds} interleaved rounds; load average {min(loads):.1f}-{max(loads):.1f}")
    gpu_mem = f", peak GPU memory {torch.cuda.max_memory_allocated(device) / 2**30:.1f} GiB" if cuda else ""
    rows.append([f"torch_kmeans ({device.type}, {'bf16 x fp32-acc' if cuda else 'fp32'}, init {init})",
                 f"{t_torch:.1f}", f"{t_torch / niter:.2f}", f"{stats['objective'][-1]:.6g}",
                 f"{rss.mb:.0f}{gpu_mem}"])
    if faiss_too:
        t_faiss = statistics.median(times["faiss"])
        # the same objective as torch's: squared distances before the last update
        obj = _objective(xn, fitted, args.metric)
        rows.append([f"faiss (engine CPU path, random init)", f"{t_faiss:.1f}", f"{t_faiss / niter:.2f}",
                     f"{obj:.6g} (after the last update)", f"{rss_f.mb:.0f}"])
        rows.append(["torch objective after the last update", "", "",
                     f"{_objective(xn, centroids, args.metric):.6g}", ""])
    print()
    print(table(rows, ["k-means", "seconds", "s / iteration (incl. init)", "objective", "peak RSS MB"]))
    if args.tsne:
        from coredino.codebook import centroid_colors

        start = time.perf_counter()
        colors = centroid_colors(centroids, args.metric, 0)
        t = time.perf_counter() - start
        print(f"\ncentroid_colors (PCA 50 + 3-D t-SNE) on {centroids.shape[0]} x {centroids.shape[1]}: "
              f"{t:.1f} s ({len({tuple(c) for c in colors.tolist()})} distinct colours)")


def _objective(x: np.ndarray, c: np.ndarray, metric: str, chunk: int = 8192) -> float:
    from coredino.codebook.kmeans import normalise_rows

    if metric == "cosine":
        c = normalise_rows(c)
    ct = torch.from_numpy(c)
    cc = (ct * ct).sum(1)
    total = 0.0
    for i in range(0, len(x), chunk):
        xb = torch.from_numpy(x[i:i + chunk])
        if metric == "cosine":
            xb = torch.nn.functional.normalize(xb, dim=1)
        d = (xb * xb).sum(1)[:, None] - 2 * xb @ ct.T + cc[None]
        total += float(d.min(1).values.clamp(min=0).double().sum())
    return total


if __name__ == "__main__":
    main()
