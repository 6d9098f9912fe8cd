"""classify end to end on real imagery: COG layout, georeference, coverage, nodata, determinism."""

import threading

import numpy as np
import pytest
from osgeo import gdal, osr

from coredino.codebook import Codebook
from coredino.engine import classify
from coredino.errors import Cancelled, UserError
from coredino.params import ClassifyOptions, ClassifyParams
from coredino.progress import Progress

PATCH = 8  # the test codebook uses core-dino layer 16 (stride 8): small rasters still get overviews


@pytest.fixture(scope="session")
def demo_result(tmp_path_factory, demo_raster, codebook):
    out = tmp_path_factory.mktemp("demo") / "demo_classes.tif"
    result = classify(ClassifyParams(str(demo_raster), str(out), ClassifyOptions(codebook=codebook, rgb=True)))
    return result, out


def read(path):
    ds = gdal.Open(str(path))
    band = ds.GetRasterBand(1)
    info = dict(array=band.ReadAsArray(), gt=ds.GetGeoTransform(), wkt=ds.GetProjection(),
                nodata=band.GetNoDataValue(), dtype=band.DataType, overviews=band.GetOverviewCount(),
                layout=ds.GetMetadataItem("LAYOUT", "IMAGE_STRUCTURE"), tags=ds.GetMetadata(),
                ct=band.GetColorTable().Clone(), size=(ds.RasterXSize, ds.RasterYSize))
    return info


def test_fit_codebook_records_the_feature_recipe(codebook):
    cb = Codebook.load(codebook)
    assert (cb.k, cb.dim, cb.metric) == (48, 64, "cosine")
    r = cb.recipe
    assert (r["family"], r["variant"], r["layer"], r["patch"]) == ("core-dino", "n", 16, 8)
    assert (r["gsd"], r["tile"], r["border"], r["weights_sha256"]) == (0.25, 40, 4, "random-seed0")
    assert r["n_features"] == 30000 and r["features_seen"] > 30000
    assert cb.colors.shape == (48, 3) and len({tuple(c) for c in cb.colors.tolist()}) > 40


def test_cog_layout_colours_and_provenance(demo_result, codebook):
    result, out = demo_result
    o = read(out)
    cb = Codebook.load(codebook)
    assert o["layout"] == "COG" and o["overviews"] >= 1
    assert o["dtype"] == gdal.GDT_Byte and o["nodata"] == 255  # k = 48 <= 255
    for cid in result.classes:
        assert o["ct"].GetColorEntry(cid)[:3] == tuple(cb.colors[cid])
    assert o["tags"]["CODEBOOK_SHA256"] == cb.sha256 and o["tags"]["MODEL"] == "core-dino:n@16"
    assert o["tags"]["GSD"] == "0.25" and o["tags"]["TILE_PATCHES"] == "40"
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".")]  # no temporary left


def test_georeference_matches_the_input_and_covers_it_fully(demo_result, demo_raster):
    result, out = demo_result
    o = read(out)
    src = gdal.Open(str(demo_raster))
    sgt = src.GetGeoTransform()
    assert osr.SpatialReference(wkt=o["wkt"]).IsSame(osr.SpatialReference(wkt=src.GetProjection()))
    assert o["gt"] == pytest.approx((sgt[0], 0.25 * PATCH, 0, sgt[3], 0, -0.25 * PATCH))
    assert o["size"] == (1536 // PATCH, 1536 // PATCH)
    a = o["array"]
    assert (a != 255).all()  # every cell of a fully valid raster is classified, margins included
    assert sum(result.classes.values()) == a.size
    counts = np.bincount(a.ravel(), minlength=48)
    assert {i: int(n) for i, n in enumerate(counts) if n} == result.classes
    assert len(result.classes) > 20 and counts.max() < 0.5 * a.size  # a varied scene, not one blob


def test_collar_becomes_nodata_and_footprint_is_classified(tmp_path, data, codebook):
    path = data / "caranavi_collar_0p25m.tif"
    out = tmp_path / "caranavi.tif"
    classify(ClassifyParams(str(path), str(out), ClassifyOptions(codebook=codebook)))
    a = read(out)["array"]
    src = gdal.Open(str(path)).ReadAsArray().any(axis=0)
    h, w = src.shape[0] // PATCH, src.shape[1] // PATCH
    blocks = src[:h * PATCH, :w * PATCH].reshape(h, PATCH, w, PATCH).mean(axis=(1, 3))
    assert ((a[:h, :w] == 255) == (blocks < 0.5)).all()
    assert (a[:h, :w][blocks == 1] != 255).all() and 0.2 < (a == 255).mean() < 0.5


def test_same_input_same_output(tmp_path, demo_raster, demo_result, codebook):
    _, first = demo_result
    again = tmp_path / "again.tif"
    classify(ClassifyParams(str(demo_raster), str(again), ClassifyOptions(codebook=codebook, batch_size=3)))
    a, b = read(first)["array"], read(again)["array"]
    assert (a == b).mean() > 0.999


def test_rgb_rendering_and_qml_sidecar(demo_result):
    result, out = demo_result
    rgb = gdal.Open(result.rgb_output)
    assert rgb.RasterCount == 4 and rgb.GetMetadataItem("LAYOUT", "IMAGE_STRUCTURE") == "COG"
    qml = out.with_suffix(".qml").read_text()
    assert qml.count("<paletteEntry") == len(result.classes)


def test_geographic_pan_and_rgbn_inputs(tmp_path, data, codebook):
    pan = tmp_path / "pan.tif"
    classify(ClassifyParams(str(data / "lasvegas_pan_uint16_4326.tif"), str(pan), ClassifyOptions(codebook=codebook)))
    srs = osr.SpatialReference(wkt=read(pan)["wkt"])
    srs.AutoIdentifyEPSG()
    assert srs.GetAuthorityCode(None) == "32611"
    assert (read(pan)["array"] != 255).mean() > 0.85


def test_mismatched_weights_are_an_error(tmp_path, demo_raster, codebook):
    import torch
    from coredino.encoders.yolo import build_yolo_backbone
    torch.manual_seed(1)
    other = tmp_path / "other.pt"
    torch.save(build_yolo_backbone("n").state_dict(), other)
    with pytest.raises(UserError, match="fit"):
        classify(ClassifyParams(str(demo_raster), str(tmp_path / "x.tif"),
                                ClassifyOptions(codebook=codebook, weights=str(other))))
    assert not list(tmp_path.glob("*.tif*"))


def test_cancel_leaves_no_output(tmp_path, demo_raster, codebook):
    cancel = threading.Event()

    def on_progress(fraction, message):
        if fraction > 0.1:
            cancel.set()

    out = tmp_path / "cancelled.tif"
    with pytest.raises(Cancelled):
        classify(ClassifyParams(str(demo_raster), str(out), ClassifyOptions(codebook=codebook, batch_size=1)),
                 Progress(on_progress, cancel))
    assert list(tmp_path.iterdir()) == []


def test_dinov2_with_registers_end_to_end(tmp_path, data):
    """A tiny random DINOv2-with-registers saved in the HF folder format: fit, then classify."""
    from transformers import Dinov2WithRegistersConfig, Dinov2WithRegistersModel

    from coredino.encoders import ModelSpec
    from coredino.engine import fit_codebook
    from coredino.params import FitParams

    folder = tmp_path / "dinov2-reg-tiny"
    config = Dinov2WithRegistersConfig(hidden_size=48, num_hidden_layers=2, num_attention_heads=2,
                                       intermediate_size=96, patch_size=14, image_size=224,
                                       num_register_tokens=4)
    Dinov2WithRegistersModel(config).save_pretrained(folder)
    image = str(data / "kampala_0p30m_3857.tif")
    book = str(tmp_path / "dino.codebook.npz")
    fit_codebook(FitParams([image], book, ModelSpec("dinov2", str(folder), "", None), gsd=0.25,
                           tile=16, border=3, k=12, max_features=5000, niter=5, device="cpu"))
    assert Codebook.load(book).recipe["normalisation"] == "imagenet"
    out = tmp_path / "kampala_dino.tif"
    result = classify(ClassifyParams(image, str(out), ClassifyOptions(codebook=book)))
    o = read(out)
    assert o["gt"][1] == pytest.approx(0.25 * 14) and o["tags"]["MODEL"].startswith("dinov2:")
    assert len(result.classes) > 3 and (o["array"] != 255).mean() > 0.8


def test_unavailable_device_or_bad_batch_size_is_a_user_error(tmp_path, demo_raster, codebook):
    for options, expected in ((dict(device="cuda:7"), "not available here"),
                              (dict(device="tpu9"), "unknown device"),
                              (dict(batch_size=0), "--batch-size")):
        with pytest.raises(UserError, match=expected):
            classify(ClassifyParams(str(demo_raster), str(tmp_path / "x.tif"),
                                    ClassifyOptions(codebook=codebook, **options)))
    assert not list(tmp_path.iterdir())


def test_unwritable_output_is_a_user_error(tmp_path, demo_raster, codebook):
    blocker = tmp_path / "file"
    blocker.write_text("a file where a folder is expected")
    with pytest.raises(UserError, match="cannot write there"):
        classify(ClassifyParams(str(demo_raster), str(blocker / "out.tif"), ClassifyOptions(codebook=codebook)))


def _writer_threads() -> list:
    return [t for t in threading.enumerate() if t.name == "coredino-id-writer"]


def _overviews(path) -> list:
    ds = gdal.Open(str(path))
    band = ds.GetRasterBand(1)
    arrays = [band.ReadAsArray()] + [band.GetOverview(i).ReadAsArray() for i in range(band.GetOverviewCount())]
    ds = None
    return arrays


def test_writer_thread_writes_the_same_map_as_the_main_thread(tmp_path, data, monkeypatch):
    """The default model on real imagery with a nodata collar, one tile per batch (many batches and
    tile rows through the bounded queue): the writer thread's map equals, cell for cell and in
    every overview, the map written on the main thread (WRITE_QUEUE = 0, the path before #16)."""
    from coredino import engine

    image = str(data / "caranavi_collar_0p25m.tif")
    results = {}
    for depth in (0, 1, engine.WRITE_QUEUE):
        monkeypatch.setattr(engine, "WRITE_QUEUE", depth)
        out = tmp_path / f"queue{depth}.tif"
        results[depth] = classify(ClassifyParams(image, str(out), ClassifyOptions(batch_size=1, device="cpu")))
        assert not _writer_threads()
    reference = _overviews(tmp_path / "queue0.tif")
    assert len(reference) >= 2 and (reference[0] == 65535).any() and len(np.unique(reference[0])) > 100
    for depth in (1, engine.WRITE_QUEUE):
        assert results[depth].classes == results[0].classes
        for got, expected in zip(_overviews(tmp_path / f"queue{depth}.tif"), reference, strict=True):
            np.testing.assert_array_equal(got, expected)


def test_a_failed_write_in_the_writer_thread_is_raised_and_leaves_nothing(tmp_path, demo_raster, codebook,
                                                                          monkeypatch):
    """A GDAL write failing in the writer thread (the second row: say, a full disk) ends classify
    with that error in the caller's thread, the thread gone and no file left."""
    from coredino.writer import ClassWriter

    threads, real = [], ClassWriter.write

    def fail_second(self, x, y, ids):
        threads.append(threading.current_thread().name)
        if len(threads) == 2:
            raise RuntimeError("No space left on device")
        real(self, x, y, ids)

    monkeypatch.setattr(ClassWriter, "write", fail_second)
    with pytest.raises(RuntimeError, match="No space left"):
        classify(ClassifyParams(str(demo_raster), str(tmp_path / "map.tif"),
                                ClassifyOptions(codebook=codebook, batch_size=1)))
    assert threads == ["coredino-id-writer"] * 2  # the writes ran in the writer thread; none after
    assert list(tmp_path.iterdir()) == [] and not _writer_threads()


def test_interrupt_while_the_writer_thread_runs_leaves_nothing(tmp_path, demo_raster, codebook):
    """Ctrl-C (KeyboardInterrupt in the main thread) half-way: raised as is, thread ended, no file."""
    def on_progress(fraction, message):
        if fraction > 0.3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        classify(ClassifyParams(str(demo_raster), str(tmp_path / "map.tif"),
                                ClassifyOptions(codebook=codebook, batch_size=1)), Progress(on_progress))
    assert list(tmp_path.iterdir()) == [] and not _writer_threads()
