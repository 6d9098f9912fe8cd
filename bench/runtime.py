"""End-to-end runtime comparison: `coredino classify` as users run it, variant against variant.

Each variant is a whole `coredino classify` process (its own threads, OpenMP runtime and ONNX
cache), run in interleaved rounds (A B C A B C ...) so that load drifting on a shared machine hits
every variant alike; the table gives medians and each run's 1-minute load average. Times are the
engine's own `classify` seconds (what the CLI prints: no interpreter start-up) and the process's
wall time. Ids are compared cell by cell with the first variant's map.

Variants (``--variants``, comma-separated):
  baseline        the engine before this work (--baseline commit, extracted with git archive),
                  OpenMP's default wait policy, torch eager
  baseline-passive  the same with OMP_WAIT_POLICY=PASSIVE
  torch           this checkout, --runtime torch (threads and wait policy set by the engine)
  onnx            this checkout, --runtime onnx (the default `auto` on a CPU)
  onnx-spin       the same with OMP_WAIT_POLICY=ACTIVE (OpenMP threads spin: torch's, faiss's)
  torch-cut / onnx-cut / onnx-spin-cut  --no-blend: tiles cut at their cores as the baseline did (same map
                  layout, so its ids compare cell for cell; blending is the default since #10)
  int8 / bf16     this checkout, reduced precision (ids compared with the first variant)

    .venv/bin/python bench/runtime.py --model n                      # default model, demo raster
    .venv/bin/python bench/runtime.py --model dinov2-b --rounds 3    # ViT-B/14-reg, random weights
    .venv/bin/python bench/runtime.py --busy 2 ...                   # plus 2 busy processes (load)
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import DEMO, OUT, ROOT, table  # noqa: E402

VARIANTS = {
    # name: (checkout, extra CLI options, environment changes)
    "baseline": ("baseline", [], {"OMP_WAIT_POLICY": None}),
    "baseline-passive": ("baseline", [], {"OMP_WAIT_POLICY": "PASSIVE"}),
    "torch": ("this", ["--runtime", "torch"], {"OMP_WAIT_POLICY": None}),
    "onnx": ("this", ["--runtime", "onnx"], {"OMP_WAIT_POLICY": None}),
    "onnx-spin": ("this", ["--runtime", "onnx"], {"OMP_WAIT_POLICY": "ACTIVE"}),
    "torch-cut": ("this", ["--runtime", "torch", "--no-blend"], {"OMP_WAIT_POLICY": None}),
    "onnx-cut": ("this", ["--runtime", "onnx", "--no-blend"], {"OMP_WAIT_POLICY": None}),
    "onnx-spin-cut": ("this", ["--runtime", "onnx", "--no-blend"], {"OMP_WAIT_POLICY": "ACTIVE"}),
    "bf16": ("this", ["--precision", "bf16"], {"OMP_WAIT_POLICY": None}),
    "int8": ("this", ["--precision", "int8"], {"OMP_WAIT_POLICY": None}),
}
SECONDS = re.compile(r" in ([0-9.]+) s on ")


def baseline_checkout(commit: str) -> Path:
    """``backend`` and ``resources`` of ``commit`` extracted once under the bench folder."""
    folder = OUT / f"baseline-{commit[:12]}"
    if not (folder / "backend").is_dir():
        folder.mkdir(parents=True, exist_ok=True)
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", commit, "backend", "resources"],
                                 check=True, capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", str(folder)], input=archive, check=True)
    return folder


def codebook_for(model: str) -> str:
    """The codebook a model's runs use: the bundled one for n, a random one for DINOv2-B."""
    if model == "n":
        return str(ROOT / "backend" / "coredino" / "resources" / "coredino-n-default.codebook.npz")
    sys.path.insert(0, str(ROOT / "backend"))
    from common import dinov2_folder, random_codebook
    from coredino.encoders import ModelSpec, build_encoder
    import torch

    path = OUT / "dinov2-b-random-6000.codebook.npz"
    if not path.is_file():
        encoder = build_encoder(ModelSpec("dinov2", dinov2_folder(), "", None), torch.device("cpu"))
        random_codebook(encoder, path)
    return str(path)


def run(variant: str, raster: str, codebook: str, out: Path, checkouts: dict[str, Path],
        cache: Path) -> dict:
    checkout, extra, env_changes = VARIANTS[variant]
    env = dict(os.environ, PYTHONPATH=str(checkouts[checkout] / "backend"), COREDINO_CACHE=str(cache),
               HF_HUB_OFFLINE="1", YOLO_OFFLINE="1", YOLO_VERBOSE="False")
    for name, value in env_changes.items():
        env.pop(name, None) if value is None else env.__setitem__(name, value)
    cmd = [sys.executable, "-m", "coredino.cli", "classify", raster, "-o", str(out),
           "--codebook", codebook, "--device", "cpu", *extra]
    load = os.getloadavg()[0]
    start = time.perf_counter()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if done.returncode:
        raise SystemExit(f"{variant} failed ({done.returncode}): {done.stderr[-2000:]}")
    found = SECONDS.search(done.stdout)
    return dict(variant=variant, seconds=float(found.group(1)), wall=wall, load=load,
                stdout=done.stdout.strip(), stderr=done.stderr.strip()[-500:])


def same_ids(a: Path, b: Path) -> float:
    from osgeo import gdal
    x, y = gdal.Open(str(a)).ReadAsArray(), gdal.Open(str(b)).ReadAsArray()
    return float((x == y).mean())


def busy(n: int) -> list[subprocess.Popen]:
    """``n`` processes spinning on a core each: a shared machine's background load."""
    return [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(n)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", choices=("n", "dinov2-b"), default="n")
    ap.add_argument("--raster", default=str(DEMO))
    ap.add_argument("--variants", default="baseline,torch,onnx")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--baseline", default="f736e67", help="commit of the engine before this work (default: %(default)s)")
    ap.add_argument("--busy", type=int, default=0, help="background busy processes during the runs")
    ap.add_argument("--json", help="also write the runs here")
    args = ap.parse_args()

    variants = args.variants.split(",")
    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", args.baseline], check=True,
                            capture_output=True, text=True).stdout.strip()
    checkouts = {"this": ROOT, "baseline": baseline_checkout(commit)}
    codebook = codebook_for(args.model)
    work = Path(tempfile.mkdtemp(prefix="runtime-", dir=OUT))
    cache = work / "cache"
    # warm-up (not counted): one run of each variant; the ONNX export's cold start is timed here
    cold = {v: run(v, args.raster, codebook, work / f"{v}-warm.tif", checkouts, cache) for v in variants}
    runs: list[dict] = []
    background = busy(args.busy)
    try:
        for r in range(args.rounds):
            for v in variants:
                runs.append(run(v, args.raster, codebook, work / f"{v}-{r}.tif", checkouts, cache))
                print(f"round {r} {v}: {runs[-1]['seconds']:.1f} s (load {runs[-1]['load']:.1f})",
                      file=sys.stderr, flush=True)
    finally:
        for p in background:
            p.kill()
            p.wait()
    first = variants[0]
    rows = []
    med = {v: statistics.median(x["seconds"] for x in runs if x["variant"] == v) for v in variants}
    for v in variants:
        mine = [x for x in runs if x["variant"] == v]
        # ratio per round (paired), then the median of the ratios
        ratios = [b["seconds"] / a["seconds"] for a, b in
                  zip(mine, [x for x in runs if x["variant"] == first])]
        ids = same_ids(work / f"{first}-0.tif", work / f"{v}-0.tif")
        loads = [x["load"] for x in mine]
        rows.append([v, f"{med[v]:.2f}", f"{min(x['seconds'] for x in mine):.2f}-{max(x['seconds'] for x in mine):.2f}",
                     f"{statistics.median(x['wall'] for x in mine):.1f}",
                     f"{statistics.median(ratios):.2f}x", f"{100 * ids:.3f}",
                     f"{min(loads):.1f}-{max(loads):.1f}"])
    print(f"model {args.model}, raster {Path(args.raster).name}, {args.rounds} interleaved rounds, "
          f"{args.busy} busy processes, baseline {commit[:10]}, {os.cpu_count()} cores")
    print(table(rows, ["variant", "classify s (median)", "min-max", "process wall s", f"speed-up vs {first}",
                       f"% ids = {first}", "load avg"]))
    print("\ncold start (first run, empty ONNX cache):",
          ", ".join(f"{v} {c['seconds']:.1f} s" for v, c in cold.items()))
    if args.json:
        Path(args.json).write_text(json.dumps(dict(runs=runs, cold=cold, args=vars(args)), indent=1))


if __name__ == "__main__":
    main()
