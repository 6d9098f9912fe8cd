"""No tile seams: blended tiles change class across tile borders no more often than inside
tiles, for the core-dino (YOLO11) and DINOv2 families, on real imagery with water; and the
bundled model has none even with cut tiles (it was trained with the context window)."""

import numpy as np
import pytest
from osgeo import gdal
from transformers import Dinov2WithRegistersConfig, Dinov2WithRegistersModel

from coredino.codebook import Codebook
from coredino.encoders import ModelSpec
from coredino.engine import DEFAULT_CODEBOOK, classify, fit_codebook
from coredino.evaluate.seams import cluster_groups, grid_of, seam_stats, seam_stats_of
from coredino.explore.embeddings import EmbeddingFile
from coredino.params import ClassifyOptions, ClassifyParams, FitParams

TARGET = 1.10


@pytest.fixture(scope="module")
def dinov2_codebook(tmp_path_factory, data) -> str:
    """A tiny random DINOv2 with registers (HF format) and a 32-cluster codebook of its features."""
    import torch

    folder = tmp_path_factory.mktemp("dinov2") / "dinov2-reg-tiny"
    torch.manual_seed(0)
    Dinov2WithRegistersModel(Dinov2WithRegistersConfig(
        hidden_size=64, num_hidden_layers=2, num_attention_heads=2, intermediate_size=128,
        patch_size=14, image_size=224, num_register_tokens=4)).save_pretrained(folder)
    path = str(folder.parent / "dinov2.codebook.npz")
    fit_codebook(FitParams([str(data / "caranavi_river_0p25m.tif")], path,
                           ModelSpec("dinov2", str(folder), "random", None), gsd=0.25, tile=16,
                           border=3, k=32, max_features=20000, niter=8, seed=0, device="cpu"))
    return path


@pytest.mark.parametrize("family", ["core-dino", "dinov2"])
def test_blended_tiles_have_no_seams(tmp_path, data, demo_raster, dinov2_codebook, family):
    # the bundled model on the demo; a tiny random DINOv2 on the river
    book = str(DEFAULT_CODEBOOK) if family == "core-dino" else dinov2_codebook
    groups = cluster_groups(Codebook.load(book), 32 if family == "core-dino" else 16)
    scene = str(demo_raster if family == "core-dino" else data / "caranavi_river_0p25m.tif")
    ratios, jumps = {}, {}
    for blend in (False, True):
        out = tmp_path / f"{blend}.tif"
        classify(ClassifyParams(scene, str(out), ClassifyOptions(codebook=book, device="cpu",
                                                                blend=blend, embeddings=True)))
        ratios[blend] = seam_stats_of(str(out), groups).ratio
        jumps[blend] = feature_jump_ratio(out, tmp_path / f"{blend}_embeddings.tif")
    if family == "core-dino":
        # trained so that a place's features do not depend on its tile: no seams even when cut
        assert ratios[False] <= TARGET and jumps[False] <= TARGET, (ratios, jumps)
        # the palette jump of a tile-dependent model (the first distilled candidates): every
        # other tile's clusters moved to other groups; the metric must see it
        ds = gdal.Open(str(tmp_path / "False.tif"))
        grid, ids, nodata = grid_of(ds, "cut"), ds.ReadAsArray(), ds.GetRasterBand(1).GetNoDataValue()
        odd = (grid.owners(grid.cells_y)[:, None] + grid.owners(grid.cells_x)[None, :]) % 2 == 1
        shifted = np.where(odd & (ids != nodata), (ids + 1) % len(groups), ids)
        assert seam_stats(shifted, int(nodata), grid, groups).ratio > 1.2
    # (a 2-layer random ViT has no tile-wide context to speak of: no seams even when cut)
    assert ratios[True] <= TARGET, (ratios, jumps)
    # the embeddings file (what `similar` and explore read) is as continuous as the classes
    assert jumps[True] <= TARGET, (ratios, jumps)


def feature_jump_ratio(classes, embeddings) -> float:
    """Mean distance between neighbouring cells' embeddings across tile seams / inside tiles."""
    ds = gdal.Open(str(classes))
    grid = grid_of(ds, str(classes))
    ds = None
    emb = EmbeddingFile(str(embeddings))
    z, valid = emb.read(0, 0, emb.width, emb.height)
    sums = np.zeros((2, 2))
    for axis, owners in ((1, grid.owners(grid.cells_x)), (0, grid.owners(grid.cells_y))):
        a, v = np.moveaxis(z, axis, 0), np.moveaxis(valid, axis, 0)
        both = v[1:] & v[:-1]
        step = np.linalg.norm(a[1:] - a[:-1], axis=-1)
        seam = owners[1:] != owners[:-1]
        for k, where in enumerate((~seam, seam)):
            sums[k] += step[where][both[where]].sum(), both[where].sum()
    (inside, n_in), (across, n_x) = sums
    return (across / n_x) / (inside / n_in)


def test_seam_metric_needs_a_classification(tmp_path, demo_raster):
    from coredino.errors import UserError

    with pytest.raises(UserError, match="not a coredino classification"):
        seam_stats_of(str(demo_raster))
