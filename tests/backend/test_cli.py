"""The `coredino` command as a user runs it: bundled defaults, quicklook, clear errors."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
from osgeo import gdal

COREDINO = [str(Path(sys.executable).with_name("coredino"))]


def run(*args):
    # from another folder: the bundled codebook finds its weights wherever the command runs
    return subprocess.run(COREDINO + [str(a) for a in args], capture_output=True, text=True,
                          timeout=300, cwd="/")


def test_classify_with_no_option_uses_the_bundled_model_and_codebook(tmp_path, demo_raster):
    out = tmp_path / "demo_classes.tif"
    done = run("classify", demo_raster, "-o", out)
    assert done.returncode == 0, done.stderr
    assert "clusters over 36864 cells" in done.stdout  # 1536 px at 0.25 m, 8 px patches: 192 x 192
    ds = gdal.Open(str(out))
    assert ds.GetRasterBand(1).DataType == gdal.GDT_UInt16  # k = 6000 > 255
    assert ds.GetMetadataItem("MODEL") == "core-dino:n@16" and ds.GetMetadataItem("K") == "6000"
    ids = ds.ReadAsArray()
    assert (ids < 6000).all() and len(np.unique(ids)) > 100
    look = tmp_path / "look.png"
    assert run("quicklook", out, "--source", demo_raster, "-o", look, "--side", "256").returncode == 0
    png = gdal.Open(str(look))
    assert (png.RasterXSize, png.RasterYSize, png.RasterCount) == (256 * 2 + 8, 256, 3)


def test_bad_inputs_exit_2_with_one_line_and_no_output(tmp_path, demo_raster):
    corrupt = tmp_path / "corrupt.tif"
    corrupt.write_bytes(demo_raster.read_bytes()[:3000])
    for bad in (tmp_path / "missing.tif", corrupt):
        done = run("classify", bad, "-o", tmp_path / "out.tif")
        assert done.returncode == 2
        lines = done.stderr.strip().splitlines()
        assert lines[-1].startswith(f"coredino: error: {bad}") and "Traceback" not in done.stderr
    assert not (tmp_path / "out.tif").exists()
    done = run("classify", demo_raster, "-o", tmp_path / "o.tif", "--codebook", corrupt)
    assert done.returncode == 2 and "corrupt.tif" in done.stderr and "Traceback" not in done.stderr


def test_info_reports_device_and_codebook():
    done = run("info")
    assert done.returncode == 0, done.stderr
    info = json.loads(done.stdout)
    assert info["device"] == "cpu" and "core-dino" in info["model_families"]
    assert info["codebook"]["k"] == 6000


def test_help_lists_every_command():
    done = run("--help")
    for command in ("classify", "batch", "fit-codebook", "quicklook", "info", "similar", "reclassify",
                    "polygonize"):
        assert command in done.stdout


def test_sigterm_while_ids_are_being_written_exits_143_and_leaves_nothing(tmp_path, demo_raster):
    """SIGTERM once the class map's scratch file exists (the writer thread running, batches queued):
    exit 143, the thread stopped, no file at all in the output folder."""
    import signal
    import time

    job = subprocess.Popen(COREDINO + ["classify", str(demo_raster), "-o", str(tmp_path / "map.tif"),
                                       "--batch-size", "1"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           text=True, cwd="/")
    deadline = time.monotonic() + 120
    while not list(tmp_path.glob(".map.tif.*.scratch.tif")) and time.monotonic() < deadline and job.poll() is None:
        time.sleep(0.05)
    time.sleep(1.0)  # some batches through the queue
    assert job.poll() is None, job.communicate()
    job.send_signal(signal.SIGTERM)
    _, err = job.communicate(timeout=60)
    assert job.returncode == 143, err
    assert "terminated; no output was written" in err
    assert list(tmp_path.iterdir()) == []
