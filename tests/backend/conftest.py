"""A small codebook fitted once per session on the shipped real crops (core-dino n, layer 16)."""

import pytest

from coredino.encoders import ModelSpec
from coredino.engine import fit_codebook
from coredino.params import FitParams


@pytest.fixture(scope="session")
def codebook(tmp_path_factory, demo_raster, data) -> str:
    path = str(tmp_path_factory.mktemp("cb") / "test.codebook.npz")
    fit_codebook(FitParams([str(demo_raster), str(data / "caranavi_collar_0p25m.tif")], path,
                           ModelSpec("core-dino", "n", "random", 16), gsd=0.25, tile=40, border=4,
                           k=48, max_features=30000, niter=8, seed=0, device="cpu"))
    return path
