"""Session fixtures: a small codebook fitted on the shipped real crops (core-dino n, layer 16), the
geocentroids set-up (random DINOv2-reg, synthetic centroids, the real colour map), and a labelled
Kampala patch classified with the bundled codebook and its embeddings kept."""

import numpy as np
import pytest
from osgeo import gdal

from coredino.codebook.importer import import_codebook
from coredino.encoders import ModelSpec
from coredino.engine import classify, fit_codebook
from coredino.params import ClassifyOptions, ClassifyParams, FitParams
from geocentroids_notebook import save_random_dinov2_reg


@pytest.fixture(scope="session")
def codebook(tmp_path_factory, demo_raster, data) -> str:
    path = str(tmp_path_factory.mktemp("cb") / "test.codebook.npz")
    fit_codebook(FitParams([str(demo_raster), str(data / "caranavi_collar_0p25m.tif")], path,
                           ModelSpec("core-dino", "n", "random", 16), gsd=0.25, tile=40, border=4,
                           k=48, max_features=30000, niter=8, seed=0, device="cpu"))
    return path


@pytest.fixture(scope="session")
def geo(tmp_path_factory, data, demo_raster):
    """A random DINOv2-reg (768-d, 1 layer) in HF format, synthetic centroids, the real colour map,
    and a 640 x 520 px crop of the demo scene (tile lattices centred with 2 and 62 px offsets)."""
    root = tmp_path_factory.mktemp("geo")
    model = save_random_dinov2_reg(root / "dinov2-reg")
    centroids = np.random.default_rng(1).standard_normal((6144, 768)).astype(np.float32)
    np.save(root / "centroids_6k.npy", centroids)
    crop = str(root / "montevideo_640x520.tif")
    gdal.Translate(crop, str(demo_raster), srcWin=[300, 200, 640, 520])
    book = str(root / "geocentroids.codebook.npz")
    import_codebook(str(root / "centroids_6k.npy"), str(data / "geocentroids_color_map_rgb_6k.npy"),
                    "geocentroids", book, variant=str(model))
    return dict(root=root, model=model, centroids=centroids, crop=crop, book=book)


@pytest.fixture(scope="session")
def kampala(tmp_path_factory, data):
    """The labelled patch with a nodata hole (its top-left 96 x 64 px zeroed; nodata 0) so that every
    output has nodata cells to carry over."""
    folder = tmp_path_factory.mktemp("explore")
    source, out = folder / "kampala_holed.tif", folder / "kampala_classes.tif"
    ds = gdal.Translate(str(source), str(data / "kampala_patch1_0p30m_3857.tif"), format="GTiff")
    ds.WriteRaster(0, 0, 96, 64, bytes(3 * 96 * 64))
    ds = None
    result = classify(ClassifyParams(str(source), str(out), ClassifyOptions(embeddings=True, device="cpu")))
    return result, source, out


@pytest.fixture(scope="session")
def dinov2_folders(tmp_path_factory):
    """Tiny DINOv2 models (2 layers, 64-d, random weights) with and without registers, saved with
    save_pretrained."""
    from transformers import Dinov2Config, Dinov2Model, Dinov2WithRegistersConfig
    from transformers import Dinov2WithRegistersModel

    size = dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=2,
                intermediate_size=128, patch_size=14, image_size=224)
    folders = {}
    for name, model in (
        ("registers", Dinov2WithRegistersModel(Dinov2WithRegistersConfig(num_register_tokens=4,
                                                                         **size))),
        ("plain", Dinov2Model(Dinov2Config(**size))),
    ):
        folders[name] = tmp_path_factory.mktemp(name)
        model.save_pretrained(folders[name])
    return folders


@pytest.fixture(scope="session")
def tiny_codebook(tmp_path_factory) -> str:
    """A 16-cluster codebook for core-dino n (random weights, layer 16) with 8-cell tiles at 0.5 m:
    fast enough for tests that exercise the pipeline on many small rasters, not its quality."""
    import numpy as np

    from coredino.codebook import Codebook, build_recipe, centroid_colors
    from coredino.encoders import build_encoder
    import torch

    encoder = build_encoder(ModelSpec("core-dino", "n", "random", 16), torch.device("cpu"))
    centroids = np.random.default_rng(0).normal(size=(16, encoder.dim)).astype(np.float32)
    recipe = build_recipe(encoder.recipe(), tile=8, border=1, gsd=0.5, k=16, seed=0, n_features=0,
                          sources=[])
    recipe["metric"] = "cosine"
    path = tmp_path_factory.mktemp("tiny") / "tiny.codebook.npz"
    Codebook(centroids, centroid_colors(centroids, "cosine", 0), "cosine", recipe).save(path)
    return str(path)
