"""Reading a raster whose grid is the source's own: the bilinear warped VRT (the engine before
#16) against the direct read (the engine now), every window of a real scene, one thread, each
round on freshly opened datasets (GDAL's block cache is cold for them).

Interleaved rounds (A B B A ...), medians of wall and process CPU time, load recorded; the last
round of each path is checked byte for byte against the other (values and masks), so the
speed-up is for identical pixels.

    .venv/bin/python bench/read.py [--raster SCENE] [--window 384] [--rounds 7]
"""

from __future__ import annotations

import argparse
import hashlib
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "backend"))

from common import SCENES, hardware, interleave, table  # noqa: E402

import torch  # noqa: E402

from coredino.raster import open_raster_source  # noqa: E402


def read_all(raster, window: int) -> str:
    """Read every window of the grid; a digest of all values and masks."""
    digest = hashlib.sha256()
    for y in range(0, raster.grid.height, window):
        for x in range(0, raster.grid.width, window):
            values, valid = raster.read_raw(x, y, min(window, raster.grid.width - x),
                                            min(window, raster.grid.height - y))
            digest.update(values.tobytes())
            digest.update(valid.tobytes())
    return digest.hexdigest()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--raster", default=str(SCENES / "oam_uruguay_montevideo_0p25m.tif"))
    ap.add_argument("--gsd", type=float, default=0.25, help="the default codebook's GSD")
    ap.add_argument("--window", type=int, default=384, help="window side (the default model's tile)")
    ap.add_argument("--rounds", type=int, default=7)
    args = ap.parse_args()

    torch.set_num_threads(1)
    # freshly opened for every round (GDAL caches blocks per dataset: a second pass over the same
    # handles would time the block cache), opened before the timing starts
    sources = {name: [open_raster_source(args.raster, args.gsd, pad_to=args.window, multiple_of=8,
                                         warp=name == "warped VRT") for _ in range(args.rounds)]
               for name in ("warped VRT", "direct")}
    assert sources["direct"][0]._direct is not None, f"{args.raster}: not an identity grid at {args.gsd} m"
    grid = sources["direct"][0].grid
    cpu: dict = {name: [] for name in sources}

    def timed(name: str) -> str:
        start = time.process_time()
        digest = read_all(sources[name].pop(), args.window)
        cpu[name].append(time.process_time() - start)
        return digest

    variants = {name: (lambda name=name: timed(name)) for name in sources}
    times, digests, loads = interleave(variants, args.rounds)
    same = digests["warped VRT"] == digests["direct"]
    km2 = grid.width * grid.height * args.gsd ** 2 / 1e6
    base = statistics.median(times["warped VRT"])
    rows = []
    for name, t in times.items():
        med = statistics.median(t)
        rows.append([name, f"{med:.2f}", f"{min(t):.2f}-{max(t):.2f}", f"{statistics.median(cpu[name]):.2f}",
                     f"{grid.width * grid.height / med / 1e6:.1f}", f"{km2 / med:.2f}", f"{base / med:.2f}x"])
    print(f"{Path(args.raster).name}: grid {grid.width} x {grid.height} at {args.gsd} m "
          f"({km2:.2f} km²), {args.window} px windows, {args.rounds} interleaved rounds; "
          f"{hardware(torch.device('cpu'))}")
    print(table(rows, ["read", "median s", "range s", "CPU s (median)", "Mpx/s", "km²/s", "vs warped"]))
    print(f"identical values and masks: {same}; load avg {min(loads):.1f}-{max(loads):.1f} "
          f"(median {statistics.median(loads):.1f})")
    if not same:
        sys.exit("direct and warped reads differ")


if __name__ == "__main__":
    main()
