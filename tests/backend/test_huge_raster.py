"""A huge canvas or a job of millions of tiles: planned lazily from the data coverage, memory
bounded, an up-front estimate and a refusal above --max-tiles, progress at once, cancel and
SIGTERM within seconds leaving no file behind."""

import os
import resource
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from osgeo import gdal

from coredino.engine import classify
from coredino.errors import Cancelled, UserError
from coredino.params import ClassifyOptions, ClassifyParams
from coredino.progress import Progress

ROOT = Path(__file__).resolve().parents[2]
SIDE = 2_000_000  # px at 0.25 m: 500 km x 500 km


@pytest.fixture(scope="module")
def small(tmp_path_factory, demo_raster) -> Path:
    """A 384 x 384 px real tile (Montevideo, UTM 21S, 0.25 m)."""
    path = tmp_path_factory.mktemp("small") / "small.tif"
    gdal.Translate(str(path), str(demo_raster), srcWin=[0, 0, 384, 384])
    return path


def sparse_canvas(small: Path, folder: Path) -> str:
    """gdalbuildvrt of the small tile on a 2,000,000 x 2,000,000 px extent (one source)."""
    ds = gdal.Open(str(small))
    x0, _, _, y0, _, _ = ds.GetGeoTransform()
    ds = None
    path = folder / "huge.vrt"
    subprocess.run(["gdalbuildvrt", "-q", "-te", str(x0 - 250_000), str(y0 - 250_000),
                    str(x0 + 250_000), str(y0 + 250_000), "-tr", "0.25", "0.25", str(path), str(small)],
                   check=True)
    return str(path)


def full_canvas(small: Path, folder: Path, side: int = SIDE) -> str:
    """The small tile stretched over ``side`` x ``side`` px at 0.25 m: data everywhere."""
    ds = gdal.Open(str(small))
    x0, _, _, y0, _, _ = ds.GetGeoTransform()
    ds = None
    path = folder / "stretched.vrt"
    gdal.Translate(str(path), str(small), format="VRT", width=side, height=side,
                   outputBounds=[x0, y0, x0 + side * 0.25, y0 - side * 0.25])
    return str(path)


def cli(*args: str, **kwargs) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(ROOT / "backend"))
    return subprocess.Popen([sys.executable, "-m", "coredino.cli", *args], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kwargs)


def test_huge_sparse_vrt_is_classified_where_its_data_is_in_bounded_time_and_memory(
        tmp_path, small, codebook):
    vrt = sparse_canvas(small, tmp_path)
    out = tmp_path / "out" / "classes.tif"
    start = time.monotonic()
    # torch runtime: the bound is on what the raster's size costs; an ONNX export is a one-off per
    # model and tile size (its memory does not grow with the raster)
    proc = cli("classify", vrt, "-o", str(out), "--codebook", codebook, "--device", "cpu", "--runtime", "torch")
    _, err = proc.communicate(timeout=600)
    wall = time.monotonic() - start
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    assert proc.returncode == 0, err
    assert wall < 300  # ~30 s on an idle 2-core CPU (before: > 2 min, 5.6 GB, then killed)
    assert peak_mb < 3000  # 1.07 GB on the seams branch alone, 2.6 GB after the merge (cause not yet measured)
    ds = gdal.Open(str(out))
    assert ds.GetMetadataItem("LAYOUT", "IMAGE_STRUCTURE") == "COG"
    # cropped to the data's neighbourhood (256 px steps): the 48 x 48 cells of the tile and a margin
    assert ds.RasterXSize <= 128 and ds.RasterYSize <= 128
    band = ds.GetRasterBand(1)
    valid = (band.ReadAsArray() != band.GetNoDataValue()).sum()
    band = ds = None
    assert valid == 48 * 48
    assert sorted(p.name for p in out.parent.iterdir()) == ["classes.qml", "classes.tif"]


def test_millions_of_tiles_are_refused_up_front_with_an_estimate(tmp_path, small, codebook):
    vrt = full_canvas(small, tmp_path)
    out = tmp_path / "out" / "classes.tif"
    # 85 million tiles of 40 patches (the session codebook), with the time it would take
    with pytest.raises(UserError, match=r"~85,729,081 tiles, ~[\d,]+ h on cpu, more than the "
                                        r"limit of 250,000 tiles.*--max-tiles 85729081"):
        classify(ClassifyParams(vrt, str(out), ClassifyOptions(codebook=codebook, device="cpu")))
    assert not out.parent.exists() or not list(out.parent.iterdir())


def test_cancel_takes_effect_within_seconds_and_progress_starts_at_once(tmp_path, small, codebook):
    vrt = full_canvas(small, tmp_path, 200_000)  # 857,476 tiles: hours
    out = tmp_path / "out" / "classes.tif"
    seen: list[tuple[float, str]] = []
    progress = Progress()
    progress.callback = lambda fraction, message: seen.append((time.monotonic(), message))
    errors = []

    def run():
        try:
            classify(ClassifyParams(vrt, str(out), ClassifyOptions(codebook=codebook, device="cpu",
                                                                  max_tiles=0)), progress)
        except Cancelled as exc:
            errors.append(exc)

    start = time.monotonic()
    worker = threading.Thread(target=run)
    worker.start()
    while not any(m.startswith("tile ") for _, m in seen) and worker.is_alive():
        time.sleep(0.05)
    assert seen[0][1].startswith("opening") and seen[0][0] - start < 1.0
    assert any("~857,476 tiles" in m and " h on cpu" in m for _, m in seen)
    progress.cancel.set()
    cancelled = time.monotonic()
    worker.join(timeout=120)
    assert not worker.is_alive() and errors
    assert time.monotonic() - cancelled < 30  # one batch on a loaded CPU; ~1 s idle
    assert not out.parent.exists() or not list(out.parent.iterdir())


def test_sigterm_removes_every_temporary_file(tmp_path, small, codebook):
    vrt = full_canvas(small, tmp_path, 200_000)
    out = tmp_path / "out" / "classes.tif"
    proc = cli("classify", vrt, "-o", str(out), "--codebook", codebook, "--device", "cpu",
               "--max-tiles", "0", "--embeddings", "--runtime", "torch")
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and not (out.parent.exists() and list(out.parent.iterdir())):
        time.sleep(0.2)  # until the job writes its temporary files
    assert list(out.parent.iterdir()), "the job never started writing"
    proc.send_signal(signal.SIGTERM)
    sent = time.monotonic()
    _, err = proc.communicate(timeout=120)
    assert time.monotonic() - sent < 30
    assert proc.returncode == 143 and "terminated; no output was written" in err
    assert not list(out.parent.iterdir())
