"""Session fixtures: a small codebook fitted on the shipped real crops (core-dino n, layer 16), and a
labelled Kampala patch classified with the bundled codebook and its embeddings kept."""

import pytest
from osgeo import gdal

from coredino.encoders import ModelSpec
from coredino.engine import classify, fit_codebook
from coredino.params import ClassifyOptions, ClassifyParams, FitParams


@pytest.fixture(scope="session")
def codebook(tmp_path_factory, demo_raster, data) -> str:
    path = str(tmp_path_factory.mktemp("cb") / "test.codebook.npz")
    fit_codebook(FitParams([str(demo_raster), str(data / "caranavi_collar_0p25m.tif")], path,
                           ModelSpec("core-dino", "n", "random", 16), gsd=0.25, tile=40, border=4,
                           k=48, max_features=30000, niter=8, seed=0, device="cpu"))
    return path


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
