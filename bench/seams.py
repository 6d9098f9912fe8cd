"""Tile seams and their cost: cut tiles (the layout before blending) against blended tiles.

For each model x scene: classify with ``blend=False`` and ``blend=True`` and report the seam
ratio (:mod:`coredino.evaluate.seams`: the rate of neighbour cells in different cluster groups
across tile seams / inside tiles, 32 groups of the codebook's clusters). Then the throughput
cost: on a square crop of the full Montevideo scene (away from the demo) sized so that the
blended layout needs as many more tiles as on a large raster ((core / stride)^2: 1.44x for the
default recipe, 1.23x for DINOv2's 16-patch tiles; smaller rasters need fewer), after one untimed
warm-up run the two layouts alternate (cut, blend, cut, blend, ...) in one process and the
medians are compared.

Models: the bundled default (core-dino n, layer 16, its 6000-cluster codebook) and a DINOv2
ViT-Ti/14 with 4 registers (ViT-Ti sizes: 192 wide, 12 layers, 3 heads; seeded random weights,
Hugging Face format, built offline) with a 256-cluster codebook fitted here on the demo and the
Caranavi crop (tile 16, border 3: the geocentroids recipe).

    .venv/bin/python bench/seams.py                       # all models and scenes
    .venv/bin/python bench/seams.py --models default --reps 5
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import DEMO, OUT, ROOT, SCENES, hardware, table  # noqa: E402

DATA = ROOT / "tests" / "data"
SEAM_SCENES = {
    "montevideo demo": DEMO,
    "caranavi collar": DATA / "caranavi_collar_0p25m.tif",
    "spacenet las vegas pan (uint16, 4326)": SCENES.parent / "labelled" / "spacenet_roads" /
                                              "spacenet_las_vegas_pan_0p30m_image.tif",
    "caranavi river (water)": DATA / "caranavi_river_0p25m.tif",
}
THROUGHPUT_SCENE = SCENES / "oam_uruguay_montevideo_0p25m.tif"  # 4094 x 3764 px


def worst_case_cells(tile: int, border: int) -> int:
    """The smallest square side (cells) where blended tiles outnumber cut ones as much as on a
    large raster ((core / stride)^2, within 2 %)."""
    from coredino.tiling import TileGrid

    blend = TileGrid(tile, tile, tile, border, blend=True)
    target = (blend.core / blend.stride) ** 2
    return next(n for n in range(tile, 50 * tile)
                if abs(len(TileGrid(n, n, tile, border, blend=True)) / len(TileGrid(n, n, tile, border)) - target)
                <= 0.02 * target)


def dinov2_tiny(folder: Path = OUT / "dinov2-ti14-reg-random") -> str:
    """ViT-Ti/14 with 4 registers, seeded random weights."""
    if not (folder / "config.json").is_file():
        import torch
        from transformers import Dinov2WithRegistersConfig, Dinov2WithRegistersModel

        torch.manual_seed(0)
        config = Dinov2WithRegistersConfig(patch_size=14, image_size=518, num_register_tokens=4,
                                           hidden_size=192, num_hidden_layers=12,
                                           num_attention_heads=3, intermediate_size=768)
        Dinov2WithRegistersModel(config).save_pretrained(folder)
    return str(folder)


def codebooks(models: list[str]) -> dict[str, str]:
    from coredino.encoders import ModelSpec
    from coredino.engine import DEFAULT_CODEBOOK, fit_codebook
    from coredino.params import FitParams

    out = {}
    if "default" in models:
        out["core-dino n@16 (bundled)"] = str(DEFAULT_CODEBOOK)
    if "dinov2" in models:
        path = OUT / "seams" / "dinov2-ti14-random.codebook.npz"
        if not path.is_file():
            fit_codebook(FitParams([str(DEMO), str(DATA / "caranavi_collar_0p25m.tif")], str(path),
                                   ModelSpec("dinov2", dinov2_tiny(), "random", None), gsd=0.25,
                                   tile=16, border=3, k=256, max_features=40000, niter=10,
                                   device="cpu"))
        out["DINOv2 ViT-Ti/14-reg (random)"] = str(path)
    return out


def classify(raster: Path, output: Path, codebook, encoder, blend: bool):
    from coredino.engine import classify as run
    from coredino.params import ClassifyOptions, ClassifyParams

    start = time.perf_counter()
    result = run(ClassifyParams(str(raster), str(output), ClassifyOptions(device="cpu", blend=blend)),
                 codebook=codebook, encoder=encoder)
    return result, time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default="default,dinov2")
    ap.add_argument("--reps", type=int, default=3, help="alternating throughput runs per layout")
    ap.add_argument("--no-seams", action="store_true", help="throughput only")
    ap.add_argument("--no-cost", action="store_true", help="seam ratios only")
    args = ap.parse_args()

    import torch
    from osgeo import gdal

    from coredino.engine import encoder_for, load_codebook
    from coredino.evaluate.seams import GROUPS, cluster_groups, seam_stats_of
    from coredino.params import ClassifyOptions

    out = OUT / "seams"
    out.mkdir(parents=True, exist_ok=True)
    print(f"hardware: {hardware(torch.device('cpu'))}\n")
    seam_rows, cost_rows = [], []
    for name, path in codebooks(args.models.split(",")).items():
        codebook = load_codebook(path)
        encoder = encoder_for(codebook, ClassifyOptions(device="cpu"))
        groups = cluster_groups(codebook, GROUPS)
        for scene, raster in ({} if args.no_seams else SEAM_SCENES).items():
            ratios = []
            for blend in (False, True):
                result, _ = classify(raster, out / f"{encoder.family}_{raster.stem}_{'blend' if blend else 'cut'}.tif",
                                     codebook, encoder, blend)
                ratios.append(seam_stats_of(result.output, groups))
            seam_rows.append([name, scene, *(f"{s.across:.3f} / {s.inside:.3f} = **{s.ratio:.2f}**"
                                            for s in ratios)])
            print(" | ".join(seam_rows[-1]), flush=True)
        if args.no_cost:
            continue
        recipe = codebook.recipe
        side = worst_case_cells(recipe["tile"], recipe["border"]) * recipe["patch"]
        big = out / f"throughput_{side}.vrt"
        gdal.Translate(str(big), str(THROUGHPUT_SCENE), format="VRT", srcWin=[0, 2000, side, side])
        classify(big, out / "throughput_warmup.tif", codebook, encoder, True)  # not timed
        times = {False: [], True: []}
        tiles = {}
        for _ in range(args.reps):
            for blend in (False, True):
                result, seconds = classify(big, out / f"throughput_{blend}.tif", codebook, encoder, blend)
                times[blend].append(seconds)
                tiles[blend] = result.tiles
        cut, blended = statistics.median(times[False]), statistics.median(times[True])
        cost_rows.append([name, f"{side} x {side} px", f"{tiles[False]} / {tiles[True]}", f"{cut:.1f}", f"{blended:.1f}",
                          f"{blended / cut:.2f}x", f"{os.getloadavg()[0]:.1f}"])
        print(" | ".join(cost_rows[-1]), flush=True)
    print(f"\n### Seam ratio ({GROUPS} cluster groups), cut tiles -> blended tiles\n")
    print(table(seam_rows, ["model", "scene", "cut (before)", "blended (after)"]))
    print(f"\n### Throughput cost: crops of {THROUGHPUT_SCENE.name}, {args.reps} alternating runs each, medians\n")
    print(table(cost_rows, ["model", "crop", "tiles cut / blended", "cut s", "blended s", "cost", "load avg at end"]))


if __name__ == "__main__":
    main()
