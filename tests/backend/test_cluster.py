"""Clustering a raster on its own features, and reusing its codebook on another raster."""

import numpy as np
import pytest
from osgeo import gdal

from coredino.cli import main
from coredino.cluster import cluster
from coredino.codebook import Codebook
from coredino.encoders import ModelSpec
from coredino.engine import classify
from coredino.errors import UserError
from coredino.params import ClassifyOptions, ClassifyParams, ClusterParams


@pytest.fixture(scope="module")
def clustered(tmp_path_factory, demo_raster):
    out = tmp_path_factory.mktemp("cluster") / "demo_clusters.tif"
    result = cluster(ClusterParams(str(demo_raster), str(out), ModelSpec("core-dino", "n", "random", 16),
                                   k=12, max_features=20000, niter=8, device="cpu"))
    return out, result


def test_cluster_writes_a_styled_map_and_its_codebook(clustered):
    out, result = clustered
    assert result.codebook == str(out.with_name("demo_clusters.codebook.npz"))
    book = Codebook.load(result.codebook)
    assert (book.k, book.metric, book.recipe["sources"]) == (12, "cosine", ["montevideo_0p25m_demo.tif"])
    assert len(np.unique(book.colors, axis=0)) == 12  # every cluster its own colour
    ds = gdal.Open(str(out))
    band = ds.GetRasterBand(1)
    assert band.DataType == gdal.GDT_Byte and band.GetColorTable() is not None
    ids = ds.ReadAsArray()
    assert set(np.unique(ids)) <= set(range(12)) and len(result.classes) >= 6
    assert out.with_suffix(".qml").is_file() and ds.GetMetadataItem("CODEBOOK") == "demo_clusters.codebook.npz"


def test_the_codebook_classifies_another_raster_consistently(clustered, data, demo_raster, tmp_path):
    out, result = clustered
    again = tmp_path / "demo_again.tif"
    classify(ClassifyParams(str(demo_raster), str(again), ClassifyOptions(codebook=result.codebook)))
    assert np.array_equal(gdal.Open(str(again)).ReadAsArray(), gdal.Open(str(out)).ReadAsArray())
    other = tmp_path / "caranavi.tif"
    classify(ClassifyParams(str(data / "caranavi_collar_0p25m.tif"), str(other),
                            ClassifyOptions(codebook=result.codebook)))
    assert len(set(np.unique(gdal.Open(str(other)).ReadAsArray())) - {255}) >= 4


def test_bad_k_and_cli(tmp_path, data, capsys):
    image = str(data / "kampala_0p30m_3857.tif")
    with pytest.raises(UserError, match="2 to 255"):
        cluster(ClusterParams(image, str(tmp_path / "x.tif"), k=1))
    assert main(["cluster", image, "-o", str(tmp_path / "k.tif"), "--k", "8", "--model", "core-dino:n",
                 "--layer", "16", "--max-features", "5000", "--device", "cpu"]) == 0
    assert "of 8 clusters" in capsys.readouterr().out and (tmp_path / "k.codebook.npz").is_file()
    # fitting on too few features fails cleanly: no map and no codebook left behind
    assert main(["cluster", image, "-o", str(tmp_path / "big.tif"), "--k", "200", "--model", "core-dino:n",
                 "--max-features", "100", "--device", "cpu"]) == 2
    assert not list(tmp_path.glob("big*"))
