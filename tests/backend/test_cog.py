"""The one COG writer: unique temporaries, the COG published before its sidecars, nothing left on failure."""

import os

import numpy as np
import pytest
from osgeo import gdal

from coredino.cog import AtomicCOG

COLORS = [(200, 200, 200), (228, 26, 28, 255)]  # background, buildings (RGB and RGBA entries)


@pytest.fixture()
def buildings(data):
    """The labelled Kampala crop (0 background, 1 buildings): a real class map."""
    ds = gdal.Open(str(data / "kampala_0p30m_3857_buildings.tif"))
    yield ds, ds.ReadAsArray()
    ds = None


def test_two_writers_of_one_output_share_no_temporary(tmp_path, buildings):
    ds, labels = buildings
    out = tmp_path / "map.tif"
    with AtomicCOG(str(out), ds, gdal.GDT_Byte, 255, resampling="MODE") as first, \
            AtomicCOG(str(out), ds, gdal.GDT_Byte, 255, resampling="MODE") as second:
        first.write(0, 0, labels)
        second.write(0, 0, 1 - labels)
        second.publish({"WHO": "second"}, COLORS)
        first.publish({"WHO": "first"}, COLORS)
    result = gdal.Open(str(out))
    np.testing.assert_array_equal(result.ReadAsArray(), labels)  # the last published, whole
    assert result.GetMetadataItem("WHO") == "first"
    assert result.GetRasterBand(1).GetColorTable().GetColorEntry(1) == (228, 26, 28, 255)
    assert result.GetRasterBand(1).GetColorTable().GetColorEntry(255) == (0, 0, 0, 0)
    result = None
    assert sorted(p.name for p in tmp_path.iterdir()) == ["map.tif"]


def test_sidecars_are_published_after_the_cog(tmp_path, buildings, monkeypatch):
    ds, labels = buildings
    out = tmp_path / "map.tif"
    published = []
    replace = os.replace

    def record(src, dst):
        replace(src, dst)
        published.append(os.path.basename(dst))

    monkeypatch.setattr(os, "replace", record)
    with AtomicCOG(str(out), ds, gdal.GDT_Byte, 255) as cog:
        cog.write(0, 0, labels)
        cog.sidecar(out.with_suffix(".qml")).write_text("<qgis/>", encoding="utf-8")
        cog.publish({}, COLORS, rgba=str(tmp_path / "map_rgb.tif"),
                    pam=lambda pam: pam.GetRasterBand(1).SetCategoryNames(["background", "buildings"]))
    assert published == ["map.tif", "map.qml", "map_rgb.tif", "map.tif.aux.xml"]
    assert gdal.Open(str(tmp_path / "map_rgb.tif")).RasterCount == 4
    assert sorted(p.name for p in tmp_path.iterdir()) == ["map.qml", "map.tif", "map.tif.aux.xml", "map_rgb.tif"]


def test_leaving_without_publishing_leaves_nothing(tmp_path, buildings):
    ds, labels = buildings
    out = tmp_path / "map.tif"
    with pytest.raises(KeyboardInterrupt):
        with AtomicCOG(str(out), ds, gdal.GDT_Byte, 255) as cog:
            cog.write(0, 0, labels)
            cog.sidecar(out.with_suffix(".qml")).write_text("<qgis/>", encoding="utf-8")
            raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == []


def test_cog_threads_change_no_pixel_and_no_overview(tmp_path, buildings):
    """The COG made with several threads (the engine's count) holds exactly the pixels and the MODE
    overviews of the one made with one thread: a real class map (the Kampala labels, resampled to
    2048 x 2048 cells: 256 blocks, 4 overview levels)."""
    from coredino.cog import cog_options

    ds, _ = buildings
    big = gdal.Translate(str(tmp_path / "big.tif"), ds, width=2048, height=2048, resampleAlg="nearest",
                         creationOptions=["TILED=YES", "COMPRESS=DEFLATE"])
    big = None
    pyramids = {}
    for threads in (1, 4):
        out = tmp_path / f"threads{threads}.tif"
        gdal.Translate(str(out), str(tmp_path / "big.tif"), format="COG",
                       creationOptions=cog_options(128, "MODE", threads))
        result = gdal.Open(str(out))
        band = result.GetRasterBand(1)
        pyramids[threads] = [band.ReadAsArray()] + [band.GetOverview(i).ReadAsArray()
                                                    for i in range(band.GetOverviewCount())]
        result = band = None
    assert len(pyramids[1]) >= 4 and {0, 1} <= set(np.unique(pyramids[1][0]))
    for one, several in zip(pyramids[1], pyramids[4], strict=True):
        np.testing.assert_array_equal(one, several)
