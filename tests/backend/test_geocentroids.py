"""The geocentroids recipe: import-codebook, and parity with the notebook it reproduces."""

import numpy as np
import pytest
from osgeo import gdal

from coredino.codebook import Codebook
from coredino.codebook.importer import import_codebook
from coredino.engine import classify
from coredino.errors import UserError
from coredino.params import ClassifyOptions, ClassifyParams

from geocentroids_notebook import run_notebook, true_centres

K, DIM = 6144, 768


def test_import_records_the_recipe(geo, data):
    cb = Codebook.load(geo["book"])
    assert (cb.k, cb.dim, cb.metric) == (K, DIM, "ip")
    assert cb.recipe["family"] == "dinov2-processor" and cb.recipe["lattice"] == "centred"
    assert (cb.recipe["tile"], cb.recipe["border"], cb.recipe["patch"], cb.recipe["gsd"]) == (32, 6, 7, 0.25)
    assert np.array_equal(cb.colors, np.load(data / "geocentroids_color_map_rgb_6k.npy"))
    assert np.array_equal(cb.centroids, geo["centroids"])
    assert "MIT" in cb.recipe["model_license"] and "Apache-2.0" in cb.recipe["model_license"]


def test_engine_matches_the_notebook(geo, tmp_path):
    """>= 99 % identical ids on every patch the notebook writes, looked up at its true position."""
    out = tmp_path / "engine.tif"
    classify(ClassifyParams(geo["crop"], str(out), ClassifyOptions(codebook=geo["book"], device="cpu",
                                                                   batch_size=4)))
    ds = gdal.Open(str(out))
    ids, gt, band = ds.ReadAsArray(), ds.GetGeoTransform(), ds.GetRasterBand(1)
    assert band.DataType == gdal.GDT_UInt16 and band.GetNoDataValue() == 65535
    colours = band.GetColorTable()
    assert colours.GetColorEntry(123)[:3] == tuple(Codebook.load(geo["book"]).colors[123])
    src = gdal.Open(geo["crop"]).GetGeoTransform()
    ox, oy = (gt[0] - src[0]) / 0.25, (src[3] - gt[3]) / 0.25  # engine grid origin, raster px
    assert gt[1] == 7 * 0.25 and -7 < ox <= 0 and -7 < oy <= 0
    tiles = run_notebook(geo["crop"], geo["model"], geo["centroids"])
    assert len(tiles) == 9
    same = total = 0
    for tile in tiles:
        rows, cols, ref = true_centres(tile)
        eng = ids[((rows - oy) // 7).astype(int), ((cols - ox) // 7).astype(int)]
        same += int((eng == ref).sum())
        total += ref.size
    assert total == 900 and same / total >= 0.99, f"{same}/{total} identical"
    # beyond the notebook: every cell whose centre is inside the raster is classified
    rows = oy + 7 * np.arange(ids.shape[0]) + 3.5
    cols = ox + 7 * np.arange(ids.shape[1]) + 3.5
    inside = ids[np.ix_((rows > 0) & (rows < 520), (cols > 0) & (cols < 640))]
    assert inside.shape == (74, 91) and (inside != 65535).all() and len(np.unique(ids)) > 20


def test_bad_centroids_or_colours_are_one_line_errors(geo, data, tmp_path):
    colours = str(data / "geocentroids_color_map_rgb_6k.npy")
    cases = {
        "short.npy": (np.zeros((K, 512), np.float32), "expected k x 768"),
        "nan.npy": (np.full((4, DIM), np.nan, np.float32), "NaN"),
        "ints.npy": (np.zeros((4, DIM), np.int32), "floating point"),
        "objects.npy": (np.array([{"a": 1}], dtype=object), "not a plain .npy array"),
    }
    for name, (array, message) in cases.items():
        np.save(tmp_path / name, array, allow_pickle=True)
        with pytest.raises(UserError, match=message):
            import_codebook(str(tmp_path / name), colours, "geocentroids", str(tmp_path / "o.npz"),
                            variant=str(geo["model"]))
    np.save(tmp_path / "rgb.npy", np.zeros((K - 1, 3), np.uint8))
    with pytest.raises(UserError, match="expected 6144 x 3"):
        import_codebook(str(geo["root"] / "centroids_6k.npy"), str(tmp_path / "rgb.npy"), "geocentroids",
                        str(tmp_path / "o.npz"), variant=str(geo["model"]))
    with pytest.raises(UserError, match="would overwrite an input"):
        import_codebook(str(geo["root"] / "centroids_6k.npy"), colours, "geocentroids",
                        str(geo["root"] / "centroids_6k.npy"), variant=str(geo["model"]))
    assert not (tmp_path / "o.npz").exists()
