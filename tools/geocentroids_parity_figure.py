"""Parity figure: the geocentroids notebook (re-implemented) vs the engine's geocentroids recipe.

Same set-up as tests/backend/test_geocentroids.py (random 768-d DINOv2-reg, synthetic 6144
centroids, the published colour map, a 640 x 520 px crop of the demo scene). Panels, all on the
crop's 0.25 m pixel grid: the source; the notebook's map where the notebook puts it (14 px
cells: stretched about each tile centre); the notebook's patches at their true 12.25 px
footprints; the engine's map (7 px cells); where they agree at the notebook patches' true centres.

    .venv/bin/python tools/geocentroids_parity_figure.py out/parity   # writes out/parity/parity.png
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from osgeo import gdal

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "backend"))

from geocentroids_notebook import BORDER, PX, run_notebook, save_random_dinov2_reg, true_centres  # noqa: E402

from coredino.codebook.importer import import_codebook  # noqa: E402
from coredino.engine import classify  # noqa: E402
from coredino.params import ClassifyOptions, ClassifyParams  # noqa: E402


def main(out: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    model = out / "dinov2-reg"
    if not model.is_dir():
        save_random_dinov2_reg(model)
    centroids = np.random.default_rng(1).standard_normal((6144, 768)).astype(np.float32)
    np.save(out / "centroids_6k.npy", centroids)
    colours_file = ROOT / "tests" / "data" / "geocentroids_color_map_rgb_6k.npy"
    colours = np.load(colours_file)
    crop = str(out / "crop.tif")
    gdal.Translate(crop, str(ROOT / "resources" / "montevideo_0p25m_demo.tif"), srcWin=[300, 200, 640, 520])
    book = str(out / "geo.codebook.npz")
    import_codebook(str(out / "centroids_6k.npy"), str(colours_file), "geocentroids", book, str(model))
    engine_tif = out / "engine.tif"
    classify(ClassifyParams(crop, str(engine_tif), ClassifyOptions(codebook=book, device="cpu")))
    tiles = run_notebook(crop, model, centroids)

    h, w = 520, 640
    source = gdal.Open(crop).ReadAsArray().transpose(1, 2, 0)
    ds = gdal.Open(str(engine_tif))
    ids, gt = ds.ReadAsArray(), ds.GetGeoTransform()
    src_gt = gdal.Open(crop).GetGeoTransform()
    ox, oy = (gt[0] - src_gt[0]) / 0.25, (src_gt[3] - gt[3]) / 0.25
    yy, xx = np.mgrid[0:h, 0:w] + 0.5
    cells = ids[((yy - oy) // 7).astype(int), ((xx - ox) // 7).astype(int)]
    engine = np.where((cells == 65535)[..., None], 255, colours[np.minimum(cells, 6143)])

    stretched = np.full((h, w, 3), 255, np.uint8)
    true = np.full((h, w, 3), 255, np.uint8)
    first, size = 14.0, 12.25
    agree, rows_all, cols_all = [], [], []
    for tile in tiles:
        for i in range(BORDER, 16 - BORDER):
            for j in range(BORDER, 16 - BORDER):
                c = colours[tile.ids[i, j]]
                y0, x0 = int(tile.y + PX * i), int(tile.x + PX * j)  # where the notebook writes it
                stretched[max(y0, 0):y0 + int(PX), max(x0, 0):x0 + int(PX)] = c
                ty, tx = tile.y + first + size * i, tile.x + first + size * j
                true[int(round(ty)):int(round(ty + size)), int(round(tx)):int(round(tx + size))] = c
        rows, cols, ref = true_centres(tile)
        eng = ids[((rows - oy) // 7).astype(int), ((cols - ox) // 7).astype(int)]
        agree.append((eng == ref).ravel())
        rows_all.append(rows.ravel())
        cols_all.append(cols.ravel())
    agree, rows_all, cols_all = (np.concatenate(a) for a in (agree, rows_all, cols_all))

    fig, axes = plt.subplots(1, 5, figsize=(26, 5.2))
    panels = [(source, "source (640 x 520 px, 0.25 m)"),
              (stretched, "notebook, as it georeferences (14 px cells)"),
              (true, "notebook patches at their true 12.25 px footprints"),
              (engine, "engine, geocentroids recipe (7 px cells)"),
              (source, f"same id at the notebook's true centres: {agree.sum()}/{agree.size}")]
    for ax, (image, title) in zip(axes, panels):
        ax.imshow(image[:h, :w])
        ax.set_title(title, fontsize=10)
        ax.set_xlim(0, w)
        ax.set_ylim(h, 0)
        ax.set_xticks([])
        ax.set_yticks([])
    axes[4].scatter(cols_all[agree], rows_all[agree], s=3, c="lime")
    axes[4].scatter(cols_all[~agree], rows_all[~agree], s=12, c="red")
    fig.tight_layout()
    fig.savefig(out / "parity.png", dpi=80)
    print(f"{out / 'parity.png'}: {agree.sum()}/{agree.size} identical ids ({agree.mean():.2%})")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "out/parity"))
