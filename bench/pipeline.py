"""The engine against the reference pipeline, on the same raster, model, codebook and device.

The reference (dinov2_geocentroids, inference.ipynb, re-implemented here from its description):
224 px tiles every 140 px (a 3-patch border on each side is discarded), the grid of tiles
centred on the raster and its margins left out; each tile goes through the Hugging Face image
processor of facebook/dinov2 (resize the shortest edge to 256, centre-crop 224, rescale,
ImageNet-normalise), the model at batch 1 in float32, then every one of its 16 x 16 patch
features is looked up in a faiss IndexFlatIP of the centroids with one ``search`` call per patch,
and the core ids are written to a GeoTIFF. Tiles that are mostly one flat colour are skipped.

The engine: ``coredino.engine.classify`` with its defaults for the device (see README).

Both run DINOv2 ViT-B/14 with registers (random weights: the same compute as the real model)
and a 6000 x 768 cosine codebook of random unit centroids, in one process, in interleaved rounds
(engine, reference, reference, engine, ...) so that load drifting on a shared machine hits both
alike; the table gives the medians of ``--rounds`` runs and the load averages seen.

    .venv/bin/python bench/pipeline.py                      # demo raster, CPU or the GPU
    .venv/bin/python bench/pipeline.py --raster scene.tif --device cuda --batch-size 256
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (DEMO, OUT, PeakRss, Stopwatch, dinov2_folder, hardware, max_rss_mb,  # noqa: E402
                    random_codebook, sync, table)

import faiss  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from osgeo import gdal  # noqa: E402

gdal.UseExceptions()

SAMPLE, PATCH, BORDER = 224, 14, 3
GRID = SAMPLE // PATCH  # 16 x 16 patches per tile
CORE = GRID - 2 * BORDER
STRIDE = CORE * PATCH  # 140 px
FLAT_THRESHOLD, FLAT_MAX_BLOCKS = 2, 768  # the reference's "single colour" skip


def reference_processor():
    """facebook/dinov2's preprocessor_config.json, built offline."""
    from transformers import BitImageProcessor
    from transformers.image_utils import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD, PILImageResampling

    return BitImageProcessor(do_resize=True, size={"shortest_edge": 256},
                             resample=PILImageResampling.BICUBIC, do_center_crop=True,
                             crop_size={"height": 224, "width": 224}, do_rescale=True,
                             rescale_factor=1 / 255, do_normalize=True,
                             image_mean=IMAGENET_DEFAULT_MEAN, image_std=IMAGENET_DEFAULT_STD,
                             do_convert_rgb=True)


def starts(size: int) -> list[int]:
    """Tile origins along one axis: every STRIDE px while a tile fits, then shifted to centre."""
    out, pos = [], 0
    while pos + SAMPLE <= size:
        out.append(pos)
        pos += STRIDE
    shift = (pos + SAMPLE - size) // 2
    return [p + shift for p in out]


def mostly_flat(sample: np.ndarray) -> bool:
    """The reference's skip: more than 768 of the 1024 7x7 blocks nearly one grey level."""
    grey = sample.mean(axis=2)
    blocks = grey.reshape(SAMPLE // 7, 7, SAMPLE // 7, 7)
    spread = blocks.max(axis=(1, 3)) - blocks.min(axis=(1, 3))
    return int((spread < FLAT_THRESHOLD).sum()) > FLAT_MAX_BLOCKS


def read_boundless(ds: gdal.Dataset, x: int, y: int) -> np.ndarray:
    """(224, 224, 3) uint8, zero outside the raster."""
    out = np.zeros((3, SAMPLE, SAMPLE), np.uint8)
    x0, y0 = max(x, 0), max(y, 0)
    x1, y1 = min(x + SAMPLE, ds.RasterXSize), min(y + SAMPLE, ds.RasterYSize)
    if x1 > x0 and y1 > y0:
        out[:, y0 - y:y1 - y, x0 - x:x1 - x] = ds.ReadAsArray(x0, y0, x1 - x0, y1 - y0, band_list=[1, 2, 3])
    return out.transpose(1, 2, 0)


def run_baseline(raster: str, folder: str, centroids: np.ndarray, device: torch.device,
                 output: Path, keep_features: int) -> dict:
    from transformers import Dinov2WithRegistersModel

    processor = reference_processor()
    model = Dinov2WithRegistersModel.from_pretrained(folder).to(device).eval()
    skip = 1 + model.config.num_register_tokens
    index = faiss.IndexFlatIP(centroids.shape[1])
    index.add(centroids)
    encode, search, prep = Stopwatch(device), Stopwatch(device), Stopwatch(device)
    kept: list[np.ndarray] = []
    ds = gdal.Open(raster)
    ys, xs = starts(ds.RasterYSize), starts(ds.RasterXSize)
    out = gdal.GetDriverByName("GTiff").Create(str(output), len(xs) * CORE, len(ys) * CORE, 1,
                                               gdal.GDT_UInt16, ["COMPRESS=LZW", "TILED=YES"])
    gt = ds.GetGeoTransform()
    out.SetGeoTransform((gt[0] + (xs[0] + BORDER * PATCH) * gt[1], gt[1] * PATCH, 0,
                         gt[3] + (ys[0] + BORDER * PATCH) * gt[5], 0, gt[5] * PATCH))
    out.SetProjection(ds.GetProjection())
    band = out.GetRasterBand(1)
    tiles = searches = 0
    start = time.perf_counter()
    for y in ys:
        for x in xs:
            sample = read_boundless(ds, x, y)
            if mostly_flat(sample):
                continue
            with prep.timing():
                inputs = processor(sample, return_tensors="pt")
            with encode.timing(), torch.no_grad():
                hidden = model(pixel_values=inputs["pixel_values"].to(device)).last_hidden_state
                feats = hidden[:, skip:].unflatten(1, (GRID, GRID)).cpu().numpy().astype(np.float16)
            ids = np.zeros((GRID, GRID), np.uint16)
            with search.timing():
                for iy in range(GRID):
                    for ix in range(GRID):
                        _, nearest = index.search(feats[0, iy, ix].reshape(1, -1), 1)
                        ids[iy, ix] = nearest[0][0]
            searches += GRID * GRID
            if sum(len(k) for k in kept) < keep_features:
                kept.append(feats[0].reshape(-1, feats.shape[-1]))
            band.WriteArray(ids[BORDER:-BORDER, BORDER:-BORDER], (x - xs[0]) // PATCH, (y - ys[0]) // PATCH)
            tiles += 1
    band, out = None, None
    wall = time.perf_counter() - start
    return dict(wall=wall, tiles=tiles, cells=tiles * CORE * CORE, encoder=encode.seconds,
                assign=search.seconds, assigned=searches, preprocess=prep.seconds,
                features=np.concatenate(kept)[:keep_features] if kept else None)


def run_engine(raster: str, encoder, codebook, device: torch.device, output: Path,
               batch_size: int, compile: bool, profile: bool) -> dict:
    """The engine's classify with the torch runtime (so its encoder time can be measured; the
    runtimes are compared end to end by bench/runtime.py)."""
    import coredino.engine as engine
    from coredino.codebook import Assigner
    from coredino.params import ClassifyOptions, ClassifyParams

    encode, assign = Stopwatch(device), Stopwatch(device)
    assigned = [0]

    class TimedAssigner(Assigner):
        def __call__(self, features):
            assigned[0] += len(features)
            with assign.timing():
                return super().__call__(features)

    forward = encoder.forward
    encoder.forward = encode.wrap(forward)
    engine.Assigner = TimedAssigner
    profiler = cProfile.Profile() if profile else None
    try:
        params = ClassifyParams(raster, str(output), ClassifyOptions(device=str(device),
                                                                     batch_size=batch_size,
                                                                     compile=compile, runtime="torch"))
        start = time.perf_counter()
        if profiler:
            profiler.enable()
        result = engine.classify(params, codebook=codebook, encoder=encoder)
        if profiler:
            profiler.disable()
        sync(device)
        wall = time.perf_counter() - start
    finally:
        encoder.forward = forward
        engine.Assigner = Assigner
    if profiler:
        stats = pstats.Stats(profiler).strip_dirs().sort_stats("tottime")
        stats.print_stats(18)
    return dict(wall=wall, tiles=result.tiles, cells=sum(result.classes.values()),
                encoder=encode.seconds, assign=assign.seconds, assigned=assigned[0])


def _median(runs: list[dict]) -> dict:
    """Each numeric figure's median over the runs."""
    return {key: statistics.median(r[key] for r in runs) for key, value in runs[0].items()
            if isinstance(value, (int, float))}


def _loads(runs: list[dict]) -> str:
    loads = [r["load"] for r in runs]
    return f"{min(loads):.1f}-{max(loads):.1f}"


def micro(features: np.ndarray, centroids: np.ndarray, codebook, device: torch.device,
          repeats: int = 3) -> dict:
    """Per-patch faiss search (the reference) vs the engine's batched Assigner, same patches."""
    from coredino.codebook import Assigner

    index = faiss.IndexFlatIP(centroids.shape[1])
    index.add(centroids)
    per_patch = np.empty(len(features), np.int64)
    start = time.perf_counter()
    for i in range(len(features)):
        per_patch[i] = index.search(features[i].reshape(1, -1), 1)[1][0][0]
    t_search = time.perf_counter() - start
    assigner = Assigner(codebook, device)
    x = torch.from_numpy(features.astype(np.float32)).to(device)
    best = float("inf")
    for _ in range(repeats):
        sync(device)
        start = time.perf_counter()
        ids = assigner(x).cpu().numpy()
        best = min(best, time.perf_counter() - start)
    start = time.perf_counter()
    _, batched_faiss = index.search(features.astype(np.float32), 1)
    t_faiss_batch = time.perf_counter() - start
    return dict(n=len(features), per_patch=t_search, assigner=best, faiss_batched=t_faiss_batch,
                agree=float((ids == per_patch).mean()),
                agree_faiss_batched=float((batched_faiss[:, 0] == per_patch).mean()))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--raster", default=str(DEMO))
    ap.add_argument("--device", default="auto")
    ap.add_argument("--batch-size", type=int, default=0, help="engine tiles per forward (0: 8 on CPU, 256 on CUDA)")
    ap.add_argument("--k", type=int, default=6000)
    ap.add_argument("--micro-n", type=int, default=4096, help="patches in the assignment micro-bench")
    ap.add_argument("--compile", action="store_true", help="engine with torch.compile")
    ap.add_argument("--profile", action="store_true", help="cProfile the engine (main thread)")
    ap.add_argument("--skip-baseline", action="store_true")
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds (medians are reported)")
    args = ap.parse_args()

    from coredino.device import pick_device
    from coredino.encoders import ModelSpec, build_encoder

    device = pick_device(args.device)
    batch = args.batch_size or (256 if device.type == "cuda" else 8)
    OUT.mkdir(parents=True, exist_ok=True)
    print(f"hardware: {hardware(device)}")
    folder = dinov2_folder()
    encoder = build_encoder(ModelSpec("dinov2", folder, "", None), device)
    codebook = random_codebook(encoder, OUT / f"random-{args.k}x{encoder.dim}.codebook.npz", k=args.k)
    ds = gdal.Open(args.raster)
    gsd = abs(ds.GetGeoTransform()[1])
    print(f"raster: {args.raster} ({ds.RasterXSize} x {ds.RasterYSize} px at {gsd} m); "
          f"model: DINOv2 ViT-B/14-reg (random weights); codebook {codebook.k} x {codebook.dim}; "
          f"device {device}; engine batch {batch}")
    ds = None

    engine_runs, base_runs = [], []
    for r in range(args.rounds):
        order = ("engine", "reference") if r % 2 == 0 else ("reference", "engine")
        for which in order:
            if which == "reference" and args.skip_baseline:
                continue
            load = os.getloadavg()[0]
            with PeakRss() as rss:
                if which == "engine":
                    run = run_engine(args.raster, encoder, codebook, device, OUT / "engine_classes.tif",
                                     batch, args.compile, args.profile and r == 0)
                else:
                    run = run_baseline(args.raster, folder, codebook.centroids, device,
                                       OUT / "baseline_classes.tif", args.micro_n)
            run.update(rss=rss.mb, load=load)
            (engine_runs if which == "engine" else base_runs).append(run)
            print(f"round {r} {which}: {run['wall']:.1f} s (load {load:.1f})", file=sys.stderr, flush=True)
    eng = _median(engine_runs)
    base = _median(base_runs) if base_runs else None
    if base:
        base["features"] = base_runs[0]["features"]

    cell_km2 = (PATCH * 0.25) ** 2 / 1e6  # km^2 of one output cell at 0.25 m

    def row(name: str, r: dict) -> list[str]:
        return [name, f"{r['wall']:.1f}", str(r["tiles"]), f"{r['tiles'] / r['wall']:.3f}",
                f"{r['cells'] * cell_km2 / r['wall']:.5f}", f"{r['assigned'] / r['assign']:.0f}",
                f"{r['rss']:.0f}", f"{100 * r['encoder'] / r['wall']:.1f}"]

    header = ["pipeline", "wall s", "tiles", "tiles/s", "km²/s (0.25 m)", "patch assignments/s",
              "peak RSS MB", "encoder % of wall"]
    print(f"\nmedians of {args.rounds} interleaved rounds; load average {_loads(engine_runs + base_runs)}")
    rows = [row("engine", eng)]
    if base:
        rows.insert(0, row("reference (baseline)", base))
        ratio = lambda key: (eng[key] / eng["wall"]) / (base[key] / base["wall"])  # noqa: E731
        rows.append(["ratio engine / baseline", f"{eng['wall'] / base['wall']:.2f}",
                     f"{eng['tiles'] / base['tiles']:.2f}", f"{ratio('tiles'):.2f}x",
                     f"{ratio('cells'):.2f}x",
                     f"{(eng['assigned'] / eng['assign']) / (base['assigned'] / base['assign']):.1f}x",
                     f"{eng['rss'] / base['rss']:.2f}", ""])
    print()
    print(table(rows, header))
    print(f"\nengine: encoder {eng['encoder']:.1f} s, assignment {eng['assign']:.2f} s "
          f"({eng['assigned']} core cells), rest {eng['wall'] - eng['encoder'] - eng['assign']:.1f} s")
    if base:
        print(f"baseline: encoder {base['encoder']:.1f} s, per-patch search {base['assign']:.1f} s "
              f"({base['assigned']} patches), image processor {base['preprocess']:.1f} s, rest "
              f"{base['wall'] - base['encoder'] - base['assign'] - base['preprocess']:.1f} s")
    result = dict(engine=eng, hardware=hardware(device), raster=args.raster, batch=batch)
    if base:
        feats = base.pop("features")
        m = micro(feats, codebook.centroids, codebook, device)
        print()
        print(table([["faiss IndexFlatIP.search, one call per patch (reference)", f"{m['per_patch']:.3f}",
                      f"{m['n'] / m['per_patch']:.0f}", "1.0x", "1.000"],
                     ["faiss IndexFlatIP.search, one call for all", f"{m['faiss_batched']:.3f}",
                      f"{m['n'] / m['faiss_batched']:.0f}", f"{m['per_patch'] / m['faiss_batched']:.1f}x",
                      f"{m['agree_faiss_batched']:.3f}"],
                     ["engine Assigner (batched, float32)", f"{m['assigner']:.3f}",
                      f"{m['n'] / m['assigner']:.0f}", f"{m['per_patch'] / m['assigner']:.1f}x",
                      f"{m['agree']:.3f}"]],
                    [f"assignment of {m['n']} patches", "seconds", "patches/s", "speed-up", "same ids"]))
        result.update(baseline=base, micro=m)
    print(f"\nprocess peak RSS (getrusage): {max_rss_mb():.0f} MB")
    (OUT / "pipeline.json").write_text(json.dumps(result, indent=2, default=float))


if __name__ == "__main__":
    main()
