"""Hostile-but-ordinary input (issue #10, section 3): each case is a one-line error or a correct
result, never a traceback, a destroyed file or a leftover temporary. Real GDAL, real crops."""

import hashlib
import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from osgeo import gdal

from coredino import atomic
from coredino.atomic import OutputBusy, output_lock, stale_temporaries, temp_name
from coredino.cli import main
from coredino.codebook import Codebook
from coredino.engine import batch, classify
from coredino.errors import UserError
from coredino.explore.polygonize import polygonize
from coredino.explore.reclassify import reclassify
from coredino.explore.similar import similar
from coredino.params import (BatchParams, ClassifyOptions, ClassifyParams, PolygonizeParams,
                             ReclassifyParams, SimilarParams)
from coredino.codebook.discovery import CodebookCatalogue
from coredino.train.checkpoint import (CHECKPOINT, load_checkpoint, remove_stale_temporaries,
                                       rng_state, save_checkpoint, set_rng_state)

gdal.UseExceptions()


def crop(data: Path, out: Path, size: int = 96, dtype: int = gdal.GDT_Byte, scale: float = 1.0,
         nodata=None) -> Path:
    """A ``size`` x ``size`` px crop of the real Caranavi scene (its sealed road and roofs),
    retyped to ``dtype`` with values ``scale`` times the 8-bit ones."""
    src = gdal.Open(str(data / "caranavi_collar_0p25m.tif"))
    pixels = src.ReadAsArray(600, 400, size, size).astype(np.float64) * scale
    gt = src.GetGeoTransform()
    ds = gdal.GetDriverByName("GTiff").Create(str(out), size, size, 3, dtype)
    ds.SetGeoTransform((gt[0] + 600 * gt[1], gt[1], 0, gt[3] + 400 * gt[5], 0, gt[5]))
    ds.SetProjection(src.GetProjection())
    for b in range(3):
        band = ds.GetRasterBand(b + 1)
        band.WriteArray(pixels[b])
        if nodata is not None:
            band.SetNoDataValue(nodata)
    ds = src = None
    return out


def write_band_values(path: Path, edit) -> None:
    """Apply ``edit(array)`` (in place, 3 x h x w) to the raster's pixels."""
    ds = gdal.Open(str(path), gdal.GA_Update)
    a = ds.ReadAsArray()
    edit(a)
    for b in range(ds.RasterCount):
        ds.GetRasterBand(b + 1).WriteArray(a[b])
    ds = None


def cli(*args: str, capsys=None) -> tuple[int, list[str]]:
    """Run the CLI in-process; (exit code, stderr lines without progress bars)."""
    rc = main(list(args))
    err = capsys.readouterr().err if capsys else ""
    return rc, [line for line in err.splitlines() if line.startswith("coredino:")]


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def hidden(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob(".*"))


def ids(path: Path) -> np.ndarray:
    ds = gdal.Open(str(path))
    return ds.GetRasterBand(1).ReadAsArray()


@pytest.fixture
def opts(tiny_codebook) -> ClassifyOptions:
    return ClassifyOptions(codebook=tiny_codebook, device="cpu")


# -- D1: non-finite pixels ---------------------------------------------------------------------

def test_d1_nan_and_inf_pixels_are_nodata_not_a_one_cluster_map(tmp_path, data, opts):
    clean = crop(data, tmp_path / "clean.tif", dtype=gdal.GDT_Float32, scale=1 / 255)
    dirty = crop(data, tmp_path / "dirty.tif", dtype=gdal.GDT_Float32, scale=1 / 255)

    def poison(a):
        a[:, 5, 7] = np.nan
        a[1, 60, 70] = np.inf
        a[2, 80, 20] = -np.inf
    write_band_values(dirty, poison)
    classify(ClassifyParams(str(clean), str(tmp_path / "c.tif"), opts))
    result = classify(ClassifyParams(str(dirty), str(tmp_path / "d.tif"), opts))
    a, b = ids(tmp_path / "c.tif"), ids(tmp_path / "d.tif")
    assert len(result.classes) > 2  # today: the stretch is NaN and every cell is cluster 0
    assert (a == b).mean() > 0.8  # three bad pixels change a few cells, not the map


@pytest.mark.parametrize("dtype, fill, nodata", [
    (gdal.GDT_Float32, np.nan, None),  # all NaN
    (gdal.GDT_Byte, 0, None),  # all black, no nodata declared: a collar everywhere
    (gdal.GDT_Byte, 7, 7),  # all nodata
    (gdal.GDT_UInt16, 0, 0),
])
def test_d1_an_all_invalid_raster_is_the_same_one_line_error_for_every_type(tmp_path, data, opts, capsys,
                                                                           dtype, fill, nodata):
    path = crop(data, tmp_path / "empty.tif", dtype=dtype, nodata=nodata)
    write_band_values(path, lambda a: a.fill(fill))
    rc, lines = cli("classify", str(path), "-o", str(tmp_path / "out" / "c.tif"), "--codebook",
                    opts.codebook, capsys=capsys)
    assert rc == 2 and lines == [f"coredino: error: {path}: no valid pixels (all nodata, transparent, "
                                 f"black or NaN/inf); nothing to classify"]
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())


# -- D3: truncated file ------------------------------------------------------------------------

def test_d3_truncated_geotiff_is_one_line_and_batch_continues(tmp_path, data, opts, capsys):
    folder = tmp_path / "in"
    folder.mkdir()
    good = crop(data, folder / "a_good.tif")
    big = crop(data, tmp_path / "big.tif", size=400)
    (folder / "b_truncated.tif").write_bytes(big.read_bytes()[:200_000])
    rc, lines = cli("classify", str(folder / "b_truncated.tif"), "-o", str(tmp_path / "t.tif"),
                    "--codebook", opts.codebook, capsys=capsys)
    assert rc == 2 and len(lines) == 1 and "b_truncated.tif: GDAL cannot read it (" in lines[0]
    assert "complete raster" in lines[0] and not (tmp_path / "t.tif").exists()
    result = batch(BatchParams(str(folder), str(tmp_path / "out"), options=opts))
    assert result.done == [str(good)] and list(result.failed) == [str(folder / "b_truncated.tif")]
    assert "GDAL cannot read it" in result.failed[str(folder / "b_truncated.tif")]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a_good_classes.qml", "a_good_classes.tif"]


# -- D4, D7, R7: where outputs go ----------------------------------------------------------------

def test_d4_an_input_is_never_overwritten(tmp_path, data, opts, capsys):
    src = crop(data, tmp_path / "scene.tif")
    before = sha(src)
    rc, lines = cli("classify", str(src), "-o", str(src), "--codebook", opts.codebook, "--overwrite",
                    capsys=capsys)
    assert rc == 2 and lines == [f"coredino: error: {src} is an input of this job ({src}); choose another output"]
    # a sidecar (the _rgb rendering) landing on the input is refused as well
    rgb_twin = crop(data, tmp_path / "x_rgb.tif")
    with pytest.raises(UserError, match=r"x_rgb.tif \(written beside x.tif\) is an input"):
        classify(ClassifyParams(str(rgb_twin), str(tmp_path / "x.tif"),
                                ClassifyOptions(codebook=opts.codebook, rgb=True)))
    assert sha(src) == before and hidden(tmp_path) == []


def test_d4_other_files_need_overwrite_and_reruns_do_not(tmp_path, data, opts, capsys):
    src = crop(data, tmp_path / "scene.tif")
    out = tmp_path / "notes.tif"
    out.write_text("my notes\n")
    rc, lines = cli("classify", str(src), "-o", str(out), "--codebook", opts.codebook, capsys=capsys)
    assert rc == 2 and lines == [f"coredino: error: {out} exists and is not a coredino output; pass "
                                 f"--overwrite to replace it, or choose another output"]
    assert out.read_text() == "my notes\n" and not out.with_suffix(".qml").exists()
    assert cli("classify", str(src), "-o", str(out), "--codebook", opts.codebook, "--overwrite",
               capsys=capsys)[0] == 0
    assert gdal.Open(str(out)).GetMetadataItem("CODEBOOK_SHA256")
    assert cli("classify", str(src), "-o", str(out), "--codebook", opts.codebook, capsys=capsys)[0] == 0  # re-run
    # an embeddings file is a coredino output, but not a class map: not replaced without --overwrite
    emb = tmp_path / "c.tif"
    classify(ClassifyParams(str(src), str(emb), ClassifyOptions(codebook=opts.codebook, embeddings=True)))
    with pytest.raises(UserError, match="c_embeddings.tif exists and is a coredino embeddings"):
        classify(ClassifyParams(str(src), str(tmp_path / "c_embeddings.tif"), opts))
    assert hidden(tmp_path) == []


def test_d4_explore_outputs_never_replace_their_inputs_or_other_kinds(tmp_path, data, opts):
    src = crop(data, tmp_path / "scene.tif")
    c = tmp_path / "c.tif"
    classify(ClassifyParams(str(src), str(c), ClassifyOptions(codebook=opts.codebook, embeddings=True)))
    before = sha(c)
    ds = gdal.Open(str(c))
    gt = ds.GetGeoTransform()
    point = (gt[0] + 5.5 * gt[1], gt[3] + 5.5 * gt[5])
    ds = None
    with pytest.raises(UserError, match="is an input of this job"):
        similar(SimilarParams(str(c), str(c), [point]))
    with pytest.raises(UserError, match="c.tif exists and is a coredino class map; pass --overwrite"):
        similar(SimilarParams(str(tmp_path / "c_embeddings.tif"), str(c), [point]))
    with pytest.raises(UserError, match="is an input of this job"):
        reclassify(ReclassifyParams(str(c), str(c), {"a": [0, 1]}))
    with pytest.raises(UserError, match="must|written as .gpkg"):
        polygonize(PolygonizeParams(str(c), str(tmp_path / "p.shp"), value=1))
    assert sha(c) == before
    # the right kinds are replaced on a re-run
    named = tmp_path / "named.tif"
    for _ in range(2):
        reclassify(ReclassifyParams(str(c), str(named), {"a": [0, 1]}))
        polygonize(PolygonizeParams(str(named), str(tmp_path / "a.gpkg"), "a"))
        similar(SimilarParams(str(c), str(tmp_path / "sim.tif"), [point]))
    assert hidden(tmp_path) == []


@pytest.mark.parametrize("name, message", [
    ("folder", "is a folder; give a file name"),
    ("x.png", "a class map is written as .tif or .tiff; name the output x.tif"),
])
def test_d7_r7_a_folder_or_a_wrong_extension_is_refused_before_any_work(tmp_path, data, opts, capsys,
                                                                          name, message):
    src = crop(data, tmp_path / "scene.tif")
    (tmp_path / "folder").mkdir()
    rc, lines = cli("classify", str(src), "-o", str(tmp_path / name), "--codebook", opts.codebook,
                    capsys=capsys)
    assert rc == 2 and len(lines) == 1 and message in lines[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["folder", "scene.tif"]  # no .qml left


# -- D5: one writer per output ---------------------------------------------------------------------

def test_d5_a_second_writer_is_refused_and_stale_temporaries_are_cleaned(tmp_path, data, opts, capsys):
    src = crop(data, tmp_path / "scene.tif")
    out = tmp_path / "out" / "c_classes.tif"  # also what batch makes of c.tif
    out.parent.mkdir()
    assert temp_name(out, ".x") != temp_name(out, ".x")
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; from coredino.atomic import output_lock\n"
        f"with output_lock({str(out)!r}):\n    print('held', flush=True); time.sleep(60)")],
        stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    try:
        assert holder.stdout.readline().strip() == "held"
        rc, lines = cli("classify", str(src), "-o", str(out), "--codebook", opts.codebook, capsys=capsys)
        assert rc == 2 and lines == [f"coredino: error: {out}: another coredino process (pid {holder.pid}) "
                                     f"is writing it; wait for it to finish or choose another output"]
        folder = tmp_path / "batch"
        folder.mkdir()
        (folder / "c.tif").symlink_to(src)
        result = batch(BatchParams(str(folder), str(tmp_path / "out"), "*.tif", options=opts))
        assert result.skipped == [str(folder / "c.tif")]  # the other process is writing its output
    finally:
        holder.kill()
        holder.wait()
    # a killed writer's temporaries (and its lock file) are removed by the next writer
    stale = [temp_name(out, ".scratch.tif"), temp_name(out.with_suffix(".qml"), ".partial")]
    for path in stale:
        path.write_bytes(b"half")
    assert set(stale_temporaries(out)) == {stale[0]}
    classify(ClassifyParams(str(src), str(out), opts))
    assert hidden(out.parent) == [] and sorted(p.name for p in out.parent.iterdir()) == ["c_classes.qml", "c_classes.tif"]
    with output_lock(out), pytest.raises(OutputBusy):
        with output_lock(out):  # a second lock, even from this process, is refused
            pass


def test_d5_without_flock_nothing_is_locked_made_or_removed(tmp_path, monkeypatch):
    """Windows has no fcntl: writers run side by side as before, and no lock file is made (Windows
    cannot delete an open one) nor another writer's temporary removed."""
    monkeypatch.setattr(atomic, "fcntl", None)
    out = tmp_path / "c_classes.tif"
    other = temp_name(out, ".scratch.tif")
    other.write_bytes(b"another writer's")
    with output_lock(out), output_lock(out, wait=lambda holder: pytest.fail("waited")):
        assert list(tmp_path.iterdir()) == [other]
    assert list(tmp_path.iterdir()) == [other]


# -- D6, R5: training checkpoints --------------------------------------------------------------------

class _Payload:
    def __reduce__(self):  # what a malicious checkpoint does: any call, here a harmless touch
        return (Path.touch, (Path(os.environ["COREDINO_PWNED"]),))


def test_d6_a_crafted_checkpoint_never_runs_code(tmp_path, monkeypatch):
    marker = tmp_path / "pwned"
    monkeypatch.setenv("COREDINO_PWNED", str(marker))
    torch.save({"format": "coredino-train/1", "x": _Payload()}, tmp_path / CHECKPOINT, pickle_protocol=2)
    with pytest.raises(UserError, match="not a coredino training checkpoint or corrupt"):
        load_checkpoint(tmp_path)
    assert not marker.exists()
    with open(tmp_path / CHECKPOINT, "rb") as f:  # the file really carries the payload
        assert b"touch" in f.read()


def test_d6_checkpoints_hold_only_tensors_and_plain_values_and_restore_rng(tmp_path):
    torch.manual_seed(3)
    np.random.seed(4)
    save_checkpoint({"step": 7}, tmp_path)
    expected = (torch.rand(3), np.random.rand(3), __import__("random").random())
    torch.manual_seed(0)
    np.random.seed(0)
    ckpt = load_checkpoint(tmp_path)  # weights_only=True
    set_rng_state(ckpt["rng"])
    assert ckpt["step"] == 7
    assert torch.equal(torch.rand(3), expected[0]) and np.array_equal(np.random.rand(3), expected[1])
    assert __import__("random").random() == expected[2]
    assert set(rng_state()) >= {"torch", "numpy", "python"}


def test_r5_a_killed_save_leaves_nothing_after_the_next_start(tmp_path):
    stale = temp_name(tmp_path / CHECKPOINT)  # what a SIGKILL inside torch.save leaves
    stale.write_bytes(b"half a checkpoint")
    (tmp_path / "keep.txt").write_text("x")
    assert remove_stale_temporaries(tmp_path) == [stale]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.txt"]


# -- D8, R9: batch inputs ------------------------------------------------------------------------

@pytest.mark.parametrize("pattern", ["../../x/*.tif", "/etc/*.conf", "sub/../../*.tif", "~/*.tif"])
def test_d8_batch_patterns_cannot_leave_the_input_folder(tmp_path, data, opts, pattern):
    (tmp_path / "in").mkdir()
    crop(data, tmp_path / "in" / "a.tif")
    with pytest.raises(UserError, match="patterns are relative to the input folder"):
        batch(BatchParams(str(tmp_path / "in"), str(tmp_path / "out"), pattern, options=opts))
    assert not (tmp_path / "out").exists()


def test_r9_batch_into_its_own_folder_never_takes_its_outputs_as_inputs(tmp_path, data, opts):
    folder = tmp_path / "scenes [2024]"  # glob characters in the folder name are literal
    folder.mkdir()
    crop(data, folder / "a.tif")
    params = BatchParams(str(folder), str(folder), "*.*", options=opts)  # .qml styles match too
    assert batch(params).done == [str(folder / "a.tif")]
    again = batch(params)
    assert (again.done, again.skipped, again.failed) == ([], [str(folder / "a.tif")], {})
    assert sorted(p.name for p in folder.iterdir()) == ["a.tif", "a_classes.qml", "a_classes.tif"]


# -- D9: codebook recipes ---------------------------------------------------------------------------

@pytest.mark.parametrize("field, value, message", [
    ("tile", -5, "recipe field tile is -5; expected a whole number from 2 to"),
    ("tile", 100000, "recipe field tile is 100000; expected a whole number from 2 to"),
    ("gsd", 0.0005, "recipe field gsd is 0.0005; expected metres per pixel from 0.01 to 1000"),
    ("gsd", float("nan"), "recipe field gsd is nan"),
    ("border", 4, "recipe field border is 4; expected a whole number from 0 to 3"),
    ("centroids", np.nan, "centroids: 1 of 16 hold NaN or inf"),
])
def test_d9_codebook_recipes_are_validated_on_load_and_not_listed(tmp_path, tiny_codebook, capsys,
                                                                  field, value, message):
    good = Codebook.load(tiny_codebook)
    centroids = good.centroids.copy()
    recipe = dict(good.recipe)
    if field == "centroids":
        centroids[3, 0] = value
    else:
        recipe[field] = value
    path = tmp_path / "bad.codebook.npz"
    np.savez_compressed(path, format=np.array("coredino-codebook/1"), centroids=centroids,
                        colors=good.colors, metric=np.array("cosine"), recipe=np.array(json.dumps(recipe)))
    with pytest.raises(UserError) as error:
        Codebook.load(path)
    assert message in str(error.value) and "\n" not in str(error.value) and str(path) in str(error.value)
    catalogue = CodebookCatalogue([tmp_path, Path(tiny_codebook).parent], Path(tiny_codebook))
    names = [info["name"] for info in catalogue.scan()]
    assert "bad.codebook.npz" not in names and "tiny.codebook.npz" in names


# -- D10: non-finite clicks ---------------------------------------------------------------------------

@pytest.mark.parametrize("point", ["nan,nan", "inf,1e308", "1e308,-inf"])
def test_d10_non_finite_points_are_one_line(tmp_path, data, opts, capsys, point):
    src = crop(data, tmp_path / "scene.tif")
    c = tmp_path / "c.tif"
    classify(ClassifyParams(str(src), str(c), ClassifyOptions(codebook=opts.codebook, embeddings=True)))
    rc, lines = cli("similar", str(c), "-o", str(tmp_path / "s.tif"), f"--positive={point}", capsys=capsys)
    assert rc == 2 and len(lines) == 1 and "give two finite numbers x,y" in lines[0], lines
    assert not (tmp_path / "s.tif").exists() and hidden(tmp_path) == []


def test_d4_fit_codebook_never_overwrites_a_raster_or_a_foreign_npz(tmp_path, data, tiny_codebook):
    from coredino.encoders import ModelSpec
    from coredino.engine import fit_codebook
    from coredino.params import FitParams
    src = crop(data, tmp_path / "scene.tif")
    before = sha(src)
    spec = ModelSpec("core-dino", "n", "random", 16)
    with pytest.raises(UserError, match="a codebook is written as .npz; name the output scene.npz"):
        fit_codebook(FitParams([str(src)], str(src), spec, k=4, device="cpu"))
    arrays = tmp_path / "arrays.npz"
    np.savez(arrays, a=np.arange(3))
    with pytest.raises(UserError, match="arrays.npz exists and is not a coredino output"):
        fit_codebook(FitParams([str(src)], str(arrays), spec, k=4, device="cpu"))
    with pytest.raises(UserError, match="is an input of this job"):
        fit_codebook(FitParams([tiny_codebook], tiny_codebook, spec, k=4, device="cpu"))
    assert sha(src) == before and np.load(arrays)["a"].tolist() == [0, 1, 2]
