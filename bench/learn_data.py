"""Labelled scenes for bench/learn_curves.py: each classified once with the bundled codebook
(``classify --embeddings``: the product's own path), and per cell: the label, the cluster id, the
embedding (codebook basis) and the mean RGB, cached in ``out/bench/learn/<scene>.npz``.

Buildings: ``labelled/oam_osm_buildings/*_0p30m_image.tif`` (EPSG:3857, resampled to the
codebook's 0.25 m like any input); a cell is building when at least half its pixels are.
Dubai: ``labelled/dubai_landcover`` JPEGs have no georeference and no documented GSD: each is
wrapped in a GeoTIFF declared at 0.25 m/px (the codebook's GSD: no resampling; the true GSD is
about 0.5-1 m, so a 2 m cell covers about 4-8 m of ground) in EPSG:32640; three parts per tile;
a cell's label is the majority class of its pixels (class 0, unlabelled, is ignored).
"""

from __future__ import annotations

import glob
import os
import sys
from pathlib import Path

import numpy as np
from osgeo import gdal

from common import OUT, ROOT  # noqa: F401 (sets the offline environment)

DATA = Path(os.environ.get("COREDINO_DATA", ROOT.parent / "shared" / "data"))
WORK = OUT / "learn"
DUBAI_PARTS = ("001", "005", "009")
IGNORE = 255


def buildings() -> list[tuple[str, str, str]]:
    folder = DATA / "labelled" / "oam_osm_buildings"
    return [(Path(p).stem.replace("_0p30m_image", ""), p, p.replace("_image.tif", "_buildings_mask.tif"))
            for p in sorted(glob.glob(str(folder / "*_0p30m_image.tif")))]


def dubai() -> list[tuple[str, str, str]]:
    folder = DATA / "labelled" / "dubai_landcover"
    out = []
    for p in sorted(glob.glob(str(folder / "dubai_tile*_part*_image.jpg"))):
        if p.split("_part")[1][:3] in DUBAI_PARTS:
            out.append((Path(p).stem.replace("_image", ""), p, p.replace("_image.jpg", "_mask_index.png")))
    return out


def _georeference(image: str, mask: str, name: str) -> tuple[str, str]:
    """GeoTIFF copies of a non-georeferenced image and its mask at 0.25 m in EPSG:32640."""
    paths = []
    for src, suffix in ((image, "image"), (mask, "mask")):
        dst = WORK / f"{name}_{suffix}.tif"
        if not dst.exists():
            ds = gdal.Open(src)
            gdal.Translate(str(dst), ds, outputSRS="EPSG:32640",
                           outputBounds=[500000, 2800000 + ds.RasterYSize * 0.25, 500000 + ds.RasterXSize * 0.25, 2800000],
                           bandList=[1, 2, 3] if suffix == "image" else [1])
        paths.append(str(dst))
    return paths[0], paths[1]


def _on_grid(path: str, like: gdal.Dataset, alg: str, nodata=None) -> np.ndarray:
    gt = like.GetGeoTransform()
    bounds = [gt[0], gt[3] + gt[5] * like.RasterYSize, gt[0] + gt[1] * like.RasterXSize, gt[3]]
    ds = gdal.Warp("", path, format="MEM", dstSRS=like.GetProjection(), outputBounds=bounds,
                   width=like.RasterXSize, height=like.RasterYSize, resampleAlg=alg,
                   srcNodata=nodata, dstNodata=nodata)
    return ds.ReadAsArray().astype(np.float32)


def prepare(name: str, image: str, mask: str, classes: list[int]) -> Path:
    """Classify ``image`` with embeddings and cache the per-cell arrays; returns the .npz."""
    from coredino.engine import classify
    from coredino.explore.embeddings import EmbeddingFile, embeddings_path
    from coredino.params import ClassifyOptions, ClassifyParams
    cache = WORK / f"{name}.npz"
    if cache.exists():
        return cache
    WORK.mkdir(parents=True, exist_ok=True)
    if image.endswith(".jpg"):
        image, mask = _georeference(image, mask, name)
    classes_path = WORK / f"{name}_classes.tif"
    if not classes_path.exists():
        classify(ClassifyParams(image, str(classes_path), ClassifyOptions(embeddings=True, device="cpu")))
    cls_ds = gdal.Open(str(classes_path))
    ids = cls_ds.ReadAsArray().astype(np.int64)
    emb = EmbeddingFile(embeddings_path(str(classes_path)))
    z, valid = emb.read(0, 0, emb.width, emb.height)
    emb.close()
    rgb = np.stack([_on_grid(image, cls_ds, "average")[b] for b in range(3)], -1) / 255.0
    # label: per-class pixel fractions on the cell grid (255 = no imagery / unlabelled)
    m = gdal.Open(mask).ReadAsArray()
    fractions = []
    for c in classes:
        tmp = WORK / f".{name}_c{c}.tif"
        drv = gdal.GetDriverByName("GTiff").CreateCopy(str(tmp), gdal.Open(mask))
        band = drv.GetRasterBand(1)
        arr = np.where(m == c, 100, np.where((m == IGNORE) | (m == 0 if 0 not in classes else False), 255, 0))
        band.WriteArray(arr.astype(np.uint8))
        band.SetNoDataValue(255)
        drv = band = None
        fractions.append(_on_grid(str(tmp), cls_ds, "average", 255))
        tmp.unlink()
    f = np.stack(fractions, -1)  # (h, w, classes) percent, 255 where no labelled pixel
    known = (f[..., 0] != 255) & valid & (ids != cls_ds.GetRasterBand(1).GetNoDataValue())
    label = np.where(known, f.argmax(-1), IGNORE).astype(np.uint8)
    purity = np.where(known, f.max(-1), 0).astype(np.uint8)
    np.savez_compressed(cache, z=z.astype(np.float32), ids=ids, rgb=rgb.astype(np.float32), label=label,
                        purity=purity, valid=valid)
    cls_ds = None
    return cache


def main() -> None:
    for name, image, mask in buildings():
        print(prepare(name, image, mask, [0, 1]), flush=True)
    for name, image, mask in dubai():
        print(prepare(name, image, mask, [1, 2, 3, 4, 5]), flush=True)


if __name__ == "__main__":
    sys.exit(main())
