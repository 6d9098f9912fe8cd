"""Batch runs: mirrored outputs, a bad file reported while the rest continue, resume."""

import shutil

from osgeo import gdal

from coredino.engine import batch
from coredino.params import BatchParams, ClassifyOptions


def test_batch_continues_past_bad_files_and_resumes(tmp_path, data, demo_raster, codebook):
    src = tmp_path / "in"
    (src / "uruguay").mkdir(parents=True)
    (src / "uganda").mkdir()
    shutil.copy(demo_raster, src / "uruguay" / "montevideo.tif")
    shutil.copy(data / "kampala_0p30m_3857.tif", src / "uganda" / "kampala.tif")
    (src / "truncated.tif").write_bytes(demo_raster.read_bytes()[:4000])
    (src / "uganda" / "readme.txt").write_text("not matched by the pattern")
    out = tmp_path / "out"
    params = BatchParams(str(src), str(out), options=ClassifyOptions(codebook=codebook))

    first = batch(params)
    assert sorted(first.done) == sorted([str(src / "uganda" / "kampala.tif"), str(src / "uruguay" / "montevideo.tif")])
    assert list(first.failed) == [str(src / "truncated.tif")]
    assert "truncated.tif: GDAL cannot read it" in first.failed[str(src / "truncated.tif")]
    made = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.tif"))
    assert made == ["uganda/kampala_classes.tif", "uruguay/montevideo_classes.tif"]
    assert gdal.Open(str(out / "uganda" / "kampala_classes.tif")).GetMetadataItem("SOURCE") == "kampala.tif"

    again = batch(params)
    assert again.done == [] and len(again.skipped) == 2 and len(again.failed) == 1

    (out / "uruguay" / "montevideo_classes.tif").unlink()  # an interrupted run leaves no output
    resumed = batch(params)
    assert resumed.done == [str(src / "uruguay" / "montevideo.tif")] and len(resumed.skipped) == 1
