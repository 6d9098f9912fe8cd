"""Scaling of `coredino batch`: in-process vs Ray with one actor vs Ray with two actors.

The same folder of real crops (1024 px tiles of the Montevideo scene by default) is classified
by the CLI with the bundled codebook on the CPU, the three set-ups interleaved (A B C A B C ...)
so that a change in the machine's load hits them alike; medians of the wall times (the whole
command: interpreter, model load, Ray start-up) are reported with the load average around each
run. For N GPUs (none here) it makes a paper estimate from measured per-tile costs: the encoder's
and the assignment's FLOPs per tile (counted by torch) at an assumed fraction of a GPU's peak, and
the CPU time to read and prepare one tile (GDAL read + warp + scaling, timed here), whichever bounds
first; actors share nothing but the queue, so N GPUs give N times one. ``--gpu-hour-usd`` turns
it into a cost per km².

    nice -n 10 .venv/bin/python bench/scaling.py --reps 3            # about 15-25 min on 2 cores
    .venv/bin/python bench/scaling.py --files 4 --reps 1             # a quick look
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "backend"))  # this checkout's engine

from common import OUT, ROOT, SCENES, table  # noqa: E402

from osgeo import gdal  # noqa: E402

gdal.UseExceptions()

SETUPS = {"process": [], "ray, 1 actor x 2 threads": ["--ray", "--workers", "1"],
          "ray, 2 actors x 1 thread": ["--ray", "--workers", "2"]}


def make_folder(folder: Path, files: int, side: int) -> None:
    """``files`` crops of ``side`` px from the Montevideo scene (row by row), as GeoTIFFs."""
    scene = SCENES / "oam_uruguay_montevideo_0p25m.tif"
    ds = gdal.Open(str(scene))
    cols, rows = ds.RasterXSize // side, ds.RasterYSize // side
    if files > cols * rows:
        raise SystemExit(f"{scene} holds {cols * rows} crops of {side} px; ask for fewer")
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(files):
        x, y = (i % cols) * side, (i // cols) * side
        target = folder / f"montevideo_{x}_{y}.tif"
        if not target.exists():
            gdal.Translate(str(target), ds, srcWin=[x, y, side, side], creationOptions=["TILED=YES"])


def run(folder: Path, out: Path, args: list[str]) -> dict:
    shutil.rmtree(out, ignore_errors=True)
    env = {**os.environ, "PYTHONPATH": str(ROOT / "backend"), "RAY_TMPDIR": str(OUT / "ray-tmp")}
    load = os.getloadavg()[0]
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "coredino.cli", "batch", str(folder), str(out),
                           "--device", "cpu", *args], env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(done.stderr[-3000:])
    summary = out / "coredino-batch-summary.json"
    info = json.loads(summary.read_text()) if summary.exists() else {}
    return {"wall": wall, "load": (load + os.getloadavg()[0]) / 2, **info}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--files", type=int, default=12)
    p.add_argument("--side", type=int, default=1024, help="crop side in px (0.25 m)")
    p.add_argument("--reps", type=int, default=3, help="0: only the paper estimate")
    p.add_argument("--gpu-tflops", type=float, default=100.0,
                   help="sustained GPU TFLOP/s assumed for the estimate (default: %(default)s, about "
                        "10 %% of an H100's dense bf16 peak)")
    p.add_argument("--readers", type=int, default=4, help="CPU reader threads per GPU (default: %(default)s)")
    p.add_argument("--gpu-hour-usd", type=float, default=2.5,
                   help="price of one GPU hour for the cost per km² (default: %(default)s)")
    args = p.parse_args()
    folder = OUT / "scaling" / "in"
    make_folder(folder, args.files, args.side)
    if args.reps > 0:
        measure(folder, args)
    paper(folder, args)


def measure(folder: Path, args: argparse.Namespace) -> None:
    """The interleaved runs and their table."""
    walls: dict[str, list[float]] = {name: [] for name in SETUPS}
    loads: dict[str, list[float]] = {name: [] for name in SETUPS}
    ray_info: dict[str, list[dict]] = {name: [] for name in SETUPS}
    for rep in range(args.reps):
        for i, (name, extra) in enumerate(SETUPS.items()):
            result = run(folder, OUT / "scaling" / f"out{i}", extra)
            walls[name].append(result["wall"])
            loads[name].append(result["load"])
            if "tiles" in result:
                ray_info[name].append(result)
            print(f"rep {rep} {name}: {result['wall']:.1f} s (load {result['load']:.1f})", flush=True)
    first = ray_info["ray, 1 actor x 2 threads"][0]
    tiles, km2 = first["tiles"], first["km2"]
    base = statistics.median(walls["process"])
    rows = []
    for name in SETUPS:
        med = statistics.median(walls[name])
        runs = ray_info[name]
        part = lambda key: f"{statistics.median(r[key] for r in runs):.1f}" if runs else "-"  # noqa: E731
        rest = [r["seconds"] - r["startup_seconds"] - r["actor_busy_seconds"] / r["actors"]
                for r in runs]
        rows.append([name, f"{med:.1f}", " / ".join(f"{w:.1f}" for w in walls[name]),
                     f"{statistics.mean(loads[name]):.1f}", f"{base / med:.2f}x",
                     part("startup_seconds"), part("actor_busy_seconds"),
                     f"{statistics.median(rest):.1f}" if runs else "-",
                     f"{tiles / med:.2f}", f"{km2 / med * 3600:.2f}"])
    print(f"\n{args.files} crops of {args.side} px, {tiles} tiles, {km2:.3f} km², {args.reps} reps, "
          f"{os.cpu_count()} cores")
    print(table(rows, ["set-up", "median wall s", "runs s", "load avg", "speed-up",
                       "Ray start-up s", "actor busy s (sum)", "queue/plan/assembly s", "tiles/s", "km²/h"]))
    one = statistics.median(walls["ray, 1 actor x 2 threads"])
    print(f"\nRay, 1 actor vs in-process, whole commands: {one - base:+.1f} s = {(one - base) / one:+.1%} "
          f"of the --ray wall time (Ray start-up included)")
    rest = [r["seconds"] - r["startup_seconds"] - r["actor_busy_seconds"]
            for r in ray_info["ray, 1 actor x 2 threads"]]
    share = [x / r["seconds"] for x, r in zip(rest, ray_info["ray, 1 actor x 2 threads"])]
    print(f"Ray, 1 actor, outside start-up and classification (planning, queue, progress, assembly, "
          f"shut-down): median {statistics.median(rest):.1f} s = {statistics.median(share):.1%} of its wall")
    print(f"in-process, whole command: {base / tiles:.3f} s of wall per tile, "
          f"{base / km2 / 3600:.2f} wall-hours per km² on this machine ({os.cpu_count()} shared cores)")


def paper(folder: Path, args: argparse.Namespace) -> None:
    """The estimate for N GPUs from the per-tile costs measured here."""
    gflop, read_s, tile_km2 = per_tile_costs(folder)
    gpu_s = gflop / (args.gpu_tflops * 1e3)
    tile_s = max(gpu_s, read_s / args.readers)
    bound = "GPU compute" if gpu_s >= read_s / args.readers else f"reading ({args.readers} reader threads)"
    per_gpu = 3600 / tile_s * tile_km2
    print(f"\nper tile ({tile_km2 * 1e6:.0f} m² written): {gflop:.2f} GFLOP (encoder + assignment), "
          f"{read_s * 1000:.1f} ms CPU to read "
          f"and prepare; one GPU at {args.gpu_tflops:.0f} TFLOP/s: {gpu_s * 1e6:.0f} µs compute, "
          f"bound by {bound}: {1 / tile_s:,.0f} tiles/s")
    est = [[str(n), f"{per_gpu * n:,.0f}", f"{per_gpu * n * 24:,.0f}",
            f"{1000 * args.gpu_hour_usd / per_gpu:.3f}"] for n in (1, 4, 8, 32)]
    print(table(est, ["GPUs", "km²/h (paper)", "km²/day (paper)",
                      f"USD per 1000 km² at {args.gpu_hour_usd} USD/GPU-h"]))


def per_tile_costs(folder: Path) -> tuple[float, float, float]:
    """(GFLOP per tile: encoder + nearest-centroid assignment of the core cells; seconds to read
    and prepare one tile: the mean of one cold pass over the whole Montevideo scene, a JPEG COG,
    each tile read on its own (an upper bound: the engine reads whole tile rows); km² a tile's
    core writes)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from coredino.engine import encoder_for, load_codebook, open_tiled
    from coredino.params import ClassifyOptions

    options = ClassifyOptions(device="cpu")
    codebook = load_codebook(None)
    encoder = encoder_for(codebook, options)
    side = int(codebook.recipe["tile"]) * encoder.patch
    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        encoder(torch.rand(1, 3, side, side))
    core = int(codebook.recipe["tile"]) - 2 * int(codebook.recipe["border"])
    gflop = (counter.get_total_flops() + 2 * core * core * codebook.k * codebook.dim) / 1e9
    raster, grid = open_tiled(str(SCENES / "oam_uruguay_montevideo_0p25m.tif"), codebook, encoder.patch,
                              options)
    start = time.perf_counter()
    for tile in grid:
        values, valid = raster.read_raw(tile.x * encoder.patch, tile.y * encoder.patch, side, side)
        raster.to_unit(values, valid)
    read_s = (time.perf_counter() - start) / len(grid)
    cell = raster.grid.gsd * encoder.patch
    raster.close()
    return gflop, read_s, (core * cell) ** 2 / 1e6


if __name__ == "__main__":
    main()
