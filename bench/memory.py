"""Bounded memory, time proportional to the valid area: classify big, mostly empty VRT mosaics.

Each case is a VRT canvas (0.25 m, the Montevideo scene's CRS, no nodata declared: the empty
canvas reads as black, which the engine treats as nodata) holding crops of the real scenes at
pixel offsets; the Caranavi drone scene is placed in the same CRS (geographically meaningless,
the pixels are real). Each case runs ``coredino.engine.classify`` with the bundled default model
and codebook (core-dino n) in its own process, so its peak RSS is its own.

    .venv/bin/python bench/memory.py                 # whole scenes (2-core CPU: about 2 minutes)
    .venv/bin/python bench/memory.py --crop 3000     # 3000 x 3000 px of each scene
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import OUT, SCENES, hardware, max_rss_mb, table  # noqa: E402

import psutil  # noqa: E402

MONTEVIDEO = SCENES / "oam_uruguay_montevideo_0p25m.tif"
CARANAVI = SCENES / "oam_bolivia_caranavi_drone_0p25m.tif"


def crop_window(path: Path, crop: int) -> tuple[int, int, int, int]:
    """(x, y, w, h) of the central ``crop`` x ``crop`` px of a scene (the whole scene if crop is 0)."""
    from osgeo import gdal

    ds = gdal.Open(str(path))
    w, h = ds.RasterXSize, ds.RasterYSize
    if not crop:
        return 0, 0, w, h
    cw, ch = min(crop, w), min(crop, h)
    return (w - cw) // 2, (h - ch) // 2, cw, ch


def mosaic(path: Path, size: int, placements: list[tuple[Path, int, int]], crop: int) -> Path:
    """A ``size`` x ``size`` px VRT with a crop of each scene at (x, y)."""
    from osgeo import gdal

    ref = gdal.Open(str(placements[0][0]))
    gt = ref.GetGeoTransform()
    bands = []
    for b, color in ((1, "Red"), (2, "Green"), (3, "Blue")):
        sources = []
        for src, x, y in placements:
            sx, sy, w, h = crop_window(src, crop)
            sources.append(f'<SimpleSource><SourceFilename relativeToVRT="0">{src}</SourceFilename>'
                           f'<SourceBand>{b}</SourceBand><SrcRect xOff="{sx}" yOff="{sy}" xSize="{w}" ySize="{h}"/>'
                           f'<DstRect xOff="{x}" yOff="{y}" xSize="{w}" ySize="{h}"/></SimpleSource>')
        bands.append(f'<VRTRasterBand dataType="Byte" band="{b}"><ColorInterp>{color}</ColorInterp>'
                     f'{"".join(sources)}</VRTRasterBand>')
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f'<VRTDataset rasterXSize="{size}" rasterYSize="{size}"><SRS>{ref.GetProjection()}</SRS>'
                    f'<GeoTransform>{gt[0]}, 0.25, 0, {gt[3]}, 0, -0.25</GeoTransform>'
                    f'{"".join(bands)}</VRTDataset>')
    return path


CASES = [  # name, canvas px, placements (scene, x, y)
    ("10k canvas, 1 scene", 10_000, [(MONTEVIDEO, 3_000, 3_000)]),
    ("40k canvas, 1 scene", 40_000, [(MONTEVIDEO, 18_000, 18_000)]),
    ("40k canvas, 3 scenes", 40_000, [(MONTEVIDEO, 1_000, 1_000), (CARANAVI, 30_000, 4_000),
                                     (MONTEVIDEO, 20_000, 33_000)]),
    ("40k canvas, 6 scenes", 40_000, [(MONTEVIDEO, 1_000, 1_000), (CARANAVI, 30_000, 4_000),
                                     (MONTEVIDEO, 20_000, 33_000), (CARANAVI, 6_000, 30_000),
                                     (MONTEVIDEO, 16_000, 12_000), (CARANAVI, 33_000, 22_000)]),
]


def run_one(vrt: str, output: str, device: str, batch: int, repeat: int) -> dict:
    """Classify in this process; what the parent tabulates."""
    from coredino.engine import classify, encoder_for, load_codebook
    from coredino.params import ClassifyOptions, ClassifyParams
    from coredino.raster import open_raster_source
    from coredino.tiling import tile_grid

    from osgeo import gdal

    codebook = load_codebook(None)
    options = ClassifyOptions(device=device, batch_size=batch)
    encoder = encoder_for(codebook, options)
    rss_before = psutil.Process().memory_info().rss / 2**20
    walls, cpus = [], []
    for _ in range(repeat):
        cpu0, start = time.process_time(), time.perf_counter()
        result = classify(ClassifyParams(vrt, output, options), codebook=codebook, encoder=encoder)
        walls.append(time.perf_counter() - start)
        cpus.append(time.process_time() - cpu0)
    wall, cpu = min(walls), min(cpus)
    r = codebook.recipe
    raster = open_raster_source(vrt, r["gsd"], pad_to=r["tile"] * r["patch"], multiple_of=r["patch"])
    grid = tile_grid(raster, r["patch"], r["tile"], r["border"])
    raster.close()
    cell_m = r["gsd"] * r["patch"]
    return dict(wall=wall, cpu=cpu, walls=walls, rss_mb=max_rss_mb(), rss_before_mb=rss_before,
                gdal_cache_max_mb=gdal.GetCacheMax() / 2**20, tiles=result.tiles, grid_tiles=len(grid),
                valid_km2=sum(result.classes.values()) * cell_m ** 2 / 1e6, device=result.device,
                canvas_km2=(grid.cells_x * cell_m) * (grid.cells_y * cell_m) / 1e6)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--crop", type=int, default=0, help="px of each scene used (0: whole scenes)")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--batch-size", type=int, default=0, help="0: 8 on CPU, 256 on CUDA")
    ap.add_argument("--repeat", type=int, default=2, help="runs per case (the fastest is reported)")
    ap.add_argument("--one", nargs=2, metavar=("VRT", "OUTPUT"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        print(json.dumps(run_one(*args.one, args.device, args.batch_size or 8, args.repeat)))
        return

    import torch

    from coredino.device import pick_device
    device = pick_device(args.device)
    batch = args.batch_size or (256 if device.type == "cuda" else 8)
    print(f"hardware: {hardware(device)}")
    print(f"default codebook (core-dino n), batch {batch}, scenes: "
          f"{f'{args.crop} px crops' if args.crop else 'whole'}; one process per case, model built "
          f"before timing, best of {args.repeat} runs\n")
    rows = []
    for name, size, placements in CASES:
        vrt = mosaic(OUT / "memory" / f"canvas_{size}_{len(placements)}.vrt", size, placements, args.crop)
        proc = subprocess.run([sys.executable, __file__, "--one", str(vrt), str(vrt.with_suffix(".classes.tif")),
                               "--device", str(device), "--batch-size", str(batch),
                               "--repeat", str(args.repeat)],
                              capture_output=True, text=True)
        if proc.returncode:
            sys.exit(f"{name}: failed\n{proc.stderr[-3000:]}")
        r = json.loads(proc.stdout.strip().splitlines()[-1])
        rows.append([name, f"{size} x {size}", f"{r['canvas_km2']:.1f}", f"{r['valid_km2']:.3f}",
                     f"{r['tiles']} / {r['grid_tiles']}", f"{r['wall']:.1f}",
                     f"{r['wall'] / r['valid_km2']:.1f}", f"{r['cpu'] / r['valid_km2']:.1f}",
                     f"{r['rss_mb']:.0f}", f"{r['rss_before_mb']:.0f}"])
        print(table(rows[-1:], HEADER).splitlines()[-1], flush=True)
    print()
    print(table(rows, HEADER))
    del torch


HEADER = ["case", "canvas px", "canvas km²", "classified km²", "tiles encoded / grid",
          "wall s (best of runs)", "wall s / classified km²", "CPU s / classified km²",
          "peak RSS MB", "RSS before classify MB"]


if __name__ == "__main__":
    main()
