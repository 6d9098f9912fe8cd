"""The host side of classify: ids written by the writer thread against the main thread (the engine
before #16), and the COG finish with the engine's thread count against one thread.

1. ``coredino classify`` of a real scene with the default model on the CPU, the writer thread
   (``engine.WRITE_QUEUE = 2``) against writes on the main thread (``0``): interleaved rounds,
   medians, load recorded, the maps compared cell for cell. In the main-thread rounds the time
   spent scattering and writing ids is summed: the main-thread time the writer thread frees per
   km² (what a GPU, whose encoder waits for that thread, gains).
2. The COG finish (``gdal.Translate`` to COG, DEFLATE, MODE overviews) of that class map from a
   tiled scratch GeoTIFF, as :meth:`coredino.cog.AtomicCOG.publish` does: ``NUM_THREADS=1``
   against the engine's count, interleaved, pixels and overviews compared.

    .venv/bin/python bench/host_overlap.py [--raster SCENE] [--rounds 3] [--cog-rounds 15]
    .venv/bin/python bench/host_overlap.py --device cuda --batch-size 128   # on a GPU
    .venv/bin/python bench/host_overlap.py --classes MAP.tif --cog-rounds 61  # part 2 alone, on a class map
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

POLICY = configure_threads()  # as the CLI does: before torch starts its OpenMP threads

from common import OUT, SCENES, interleave, table  # noqa: E402

import numpy as np  # noqa: E402
from osgeo import gdal  # noqa: E402


def pyramid(path: Path) -> list[np.ndarray]:
    ds = gdal.Open(str(path))
    band = ds.GetRasterBand(1)
    arrays = [band.ReadAsArray()] + [band.GetOverview(i).ReadAsArray() for i in range(band.GetOverviewCount())]
    ds = band = None
    return arrays


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--raster", default=str(SCENES / "oam_uruguay_montevideo_0p25m.tif"))
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--cog-rounds", type=int, default=15)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--batch-size", type=int, default=None, help="default: the engine's")
    ap.add_argument("--classes", help="a class map: skip part 1 and time its COG finish")
    args = ap.parse_args()

    from coredino import engine, id_writer
    from coredino.params import ClassifyOptions, ClassifyParams

    out = OUT / "host_overlap"
    out.mkdir(parents=True, exist_ok=True)
    if args.classes:
        cog_finish(Path(args.classes), out, args.cog_rounds, area_km2(args.classes))
        return
    codebook = engine.load_codebook(None)
    options = ClassifyOptions(device=args.device, batch_size=args.batch_size)
    encoder = engine.encoder_for(codebook, options)
    write_seconds: list[float] = []
    timed_write = id_writer._write_ids

    def write_and_time(*batch) -> None:
        start = time.perf_counter()
        timed_write(*batch)
        write_seconds[-1] += time.perf_counter() - start

    def run(depth: int):
        engine.WRITE_QUEUE = depth
        id_writer._write_ids = write_and_time if depth == 0 else timed_write
        if depth == 0:
            write_seconds.append(0.0)
        path = out / f"classes_queue{depth}.tif"
        engine.classify(ClassifyParams(args.raster, str(path), options, overwrite=True),
                        codebook=codebook, encoder=encoder)
        return path

    variants = {"ids written on the main thread (before)": lambda: run(0),
                "writer thread, queue of 2 batches (now)": lambda: run(2)}
    km2 = area_km2(args.raster)
    rows, results, loads, identical, overviews = compare(variants, args.rounds, km2)
    print(f"1. classify {Path(args.raster).name} ({km2:.2f} km²), default model, {args.device}, {POLICY.threads} threads "
          f"({POLICY.wait_policy}), {args.rounds} interleaved rounds, load average {min(loads):.1f}-{max(loads):.1f}")
    print(table(rows, ["ids written by", "s (median)", "ms/km²", "speed-up"]))
    print(f"maps (and overviews) identical: {identical}; id scatter + GDAL writes on the main thread: "
          f"{1e3 * statistics.median(write_seconds) / km2:.0f} ms/km² (median of {len(write_seconds)})")

    cog_finish(results[list(variants)[-1]], out, args.cog_rounds, km2)


def area_km2(path: str) -> float:
    ds = gdal.Open(path)
    km2 = ds.RasterXSize * ds.RasterYSize * abs(ds.GetGeoTransform()[1] * ds.GetGeoTransform()[5]) / 1e6
    ds = None
    return km2


def cog_finish(classes: Path, out: Path, rounds: int, km2: float) -> None:
    """Part 2: the class map's COG finish with one thread and with the engine's count."""
    from coredino.cog import cog_options

    scratch = out / "classes_scratch.tif"
    gdal.Translate(str(scratch), str(classes), format="GTiff",
                   creationOptions=["TILED=YES", "BLOCKXSIZE=128", "BLOCKYSIZE=128", "COMPRESS=DEFLATE"])
    cog_variants = {}
    for threads in sorted({1, POLICY.threads}):
        def finish(threads=threads):
            path = out / f"cog_threads{threads}.tif"
            gdal.Translate(str(path), str(scratch), format="COG", creationOptions=cog_options(128, "MODE", threads))
            return path
        cog_variants[f"NUM_THREADS={threads}"] = finish
    rows, _, loads, identical, overviews = compare(cog_variants, rounds, km2)
    ds = gdal.Open(str(scratch))
    print(f"\n2. COG finish of that class map ({ds.RasterXSize} x {ds.RasterYSize} cells, {overviews} overviews), "
          f"{rounds} interleaved rounds, load average {min(loads):.1f}-{max(loads):.1f}")
    ds = None
    print(table(rows, ["COG creation", "s (median)", "ms/km²", "speed-up"]))
    print(f"pixels and overviews identical: {identical}")


def compare(variants: dict, rounds: int, km2: float) -> tuple[list, dict, list, bool, int]:
    """Interleaved runs of variants that each return a class map's path: table rows (median s,
    ms/km², speed-up over the first), the paths, the loads, whether every map (and overview) is
    the first one's, and the overview count."""
    times, results, loads = interleave(variants, rounds)
    maps = [pyramid(path) for path in results.values()]
    identical = all(np.array_equal(a, b) for other in maps[1:] for a, b in zip(maps[0], other, strict=True))
    medians = {name: statistics.median(seconds) for name, seconds in times.items()}
    base = next(iter(medians.values()))
    rows = [[name, f"{m:.3f}", f"{1e3 * m / km2:.1f}", f"{base / m:.2f}x"] for name, m in medians.items()]
    return rows, results, loads, identical, len(maps[0]) - 1

if __name__ == "__main__":
    main()
