"""`batch --ray`: Ray actors give the single-process outputs, bands of one raster assemble into
the one-piece COG, a killed worker's item is retried, a killed driver's run resumes, and without
--ray nothing imports Ray. A small real Ray runtime (2 CPUs, no dashboard) per module."""

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import psutil
import pytest
import ray
import torch
from osgeo import gdal

from coredino.engine import batch
from coredino.params import BatchParams, ClassifyOptions
from coredino.progress import Progress
from coredino.scale.bands import PARTS

ROOT = Path(__file__).resolve().parents[2]
OUTPUTS = ["city/montevideo_classes.tif", "kampala_classes.tif"]


@pytest.fixture(scope="module")
def ray_runtime(tmp_path_factory):
    folder = tempfile.mkdtemp(prefix="ray-", dir="/tmp")  # short: Ray's socket paths have a length limit
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, _temp_dir=folder)
    yield
    ray.shutdown()
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def folder(tmp_path_factory, demo_raster, data) -> Path:
    """Real crops: a 6 x 3 tile Montevideo strip, a Kampala scene and a truncated file."""
    src = tmp_path_factory.mktemp("scale") / "in"
    (src / "city").mkdir(parents=True)
    gdal.Translate(str(src / "city" / "montevideo.tif"), str(demo_raster), srcWin=[0, 0, 768, 1536])
    gdal.Translate(str(src / "kampala.tif"), str(data / "kampala_0p30m_3857.tif"))
    (src / "truncated.tif").write_bytes((data / "kampala_0p30m_3857.tif").read_bytes()[:3000])
    return src


@pytest.fixture(scope="module")
def reference(folder, codebook) -> Path:
    """The single-process batch, with the actors' thread count (CPU sums are thread-dependent)."""
    out = folder.parent / "single"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        result = batch(BatchParams(str(folder), str(out), options=ClassifyOptions(codebook=codebook, device="cpu", blend=False, runtime="torch")))
    finally:
        torch.set_num_threads(threads)
    assert len(result.done) == 2 and list(result.failed) == [str(folder / "truncated.tif")]
    return out


def _params(folder, out, codebook, **kw) -> BatchParams:
    return BatchParams(str(folder), str(out), options=ClassifyOptions(codebook=codebook, device="cpu", blend=False, runtime="torch"),
                       executor="ray", workers=2, **kw)


def _assert_same(out: Path, reference: Path) -> None:
    for rel in OUTPUTS:
        ours, theirs = gdal.Open(str(out / rel)), gdal.Open(str(reference / rel))
        assert ours.GetGeoTransform() == theirs.GetGeoTransform()
        assert np.array_equal(ours.ReadAsArray(), theirs.ReadAsArray()), rel
        band, ref_band = ours.GetRasterBand(1), theirs.GetRasterBand(1)
        assert band.GetOverviewCount() == ref_band.GetOverviewCount()
        for i in range(band.GetOverviewCount()):
            assert np.array_equal(band.GetOverview(i).ReadAsArray(), ref_band.GetOverview(i).ReadAsArray())
        assert band.GetColorTable().GetCount() == ref_band.GetColorTable().GetCount()
        tags, ref_tags = ours.GetMetadata(), theirs.GetMetadata()
        assert tags.pop("CREATED") and ref_tags.pop("CREATED") and tags == ref_tags
        assert ours.GetMetadata("IMAGE_STRUCTURE")["LAYOUT"] == "COG"
        band = ref_band = ours = theirs = None
    assert not list(out.rglob(PARTS)), "band parts are removed after assembly"
    assert not [p for p in out.rglob(".*") if p.name != PARTS], "no temporaries left"


def test_ray_outputs_equal_single_process_and_bands_assemble_into_one_cog(
        ray_runtime, folder, reference, codebook):
    out = folder.parent / "ray"
    reports = []
    result = batch(_params(folder, out, codebook, band_rows=2), Progress(lambda f, m: reports.append(m)))
    assert sorted(result.done) == sorted(str(folder / p) for p in ("city/montevideo.tif", "kampala.tif"))
    assert "GDAL cannot read it" in result.failed[str(folder / "truncated.tif")]
    _assert_same(out, reference)
    summary = json.loads(Path(result.summary).read_text())
    assert summary["actors"] == 2 and summary["threads_per_actor"] == 1
    assert summary["bands"] == {str(folder / "city" / "montevideo.tif"): 3}  # 6 tile rows, 2 per band
    assert summary["work_items"] == 4 and summary["retried"] == [] and summary["km2"] > 0
    assert any("km²/s" in m and "files 2/2" in m for m in reports)

    again = batch(_params(folder, out, codebook))  # resumes: everything is skipped
    assert again.done == [] and len(again.skipped) == 2 and len(again.failed) == 1


def _actor_pids() -> list[int]:
    """Worker processes of this test's Ray runtime running a ClassifyWorker actor."""
    return [p.pid for p in psutil.Process().children(recursive=True)
            if "ClassifyWorker" in " ".join(p.cmdline() or [])]


def test_killed_worker_is_retried_elsewhere_and_outputs_stay_exact(ray_runtime, folder, reference, codebook):
    out = folder.parent / "fault"
    killed = []

    def kill_one_worker(fraction: float, message: str) -> None:
        if not killed and " tiles " in message and not message.split(" tiles ")[1].startswith("0/"):
            pids = _actor_pids()
            assert len(pids) == 2
            os.kill(pids[0], signal.SIGKILL)  # mid-item: both actors are busy while items are queued
            killed.append(pids[0])

    result = batch(_params(folder, out, codebook, band_rows=1), Progress(kill_one_worker))
    assert killed
    assert len(result.done) == 2 and list(result.failed) == [str(folder / "truncated.tif")]
    assert len(result.retried) == 1 and "Actor" in next(iter(result.retried.values()))
    summary = json.loads(Path(result.summary).read_text())
    assert len(summary["retried"]) == 1 and summary["retried"][0]["attempt"] == 1
    assert summary["work_items"] == 8 + 1  # 6 Montevideo bands + 2 Kampala bands, one of them twice
    assert summary["bands"] == {str(folder / "city" / "montevideo.tif"): 6, str(folder / "kampala.tif"): 2}
    _assert_same(out, reference)


def test_killed_driver_resumes_with_its_finished_bands(ray_runtime, folder, reference, codebook, tmp_path):
    out = tmp_path / "driver"
    runtime = tempfile.mkdtemp(prefix="ray-", dir="/tmp")
    env = {**os.environ, "PYTHONPATH": str(ROOT / "backend"), "RAY_TMPDIR": runtime}
    cmd = [sys.executable, "-m", "coredino.cli", "batch", str(folder), str(out), "--codebook", codebook,
           "--device", "cpu", "--ray", "--workers", "1", "--band-rows", "1", "--no-blend", "--runtime", "torch"]
    driver = subprocess.Popen(cmd, env=env, start_new_session=True, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    parts = out / "city" / PARTS / "montevideo_classes"
    try:
        deadline = time.monotonic() + 240
        while not list(parts.glob("rows-*.tif")) and time.monotonic() < deadline:
            assert driver.poll() is None, "the driver ended before its first band"
            time.sleep(0.2)
    finally:
        os.killpg(driver.pid, signal.SIGKILL)  # the driver and the runtime it started
        driver.wait()
        for proc in psutil.process_iter(["pid", "cmdline"]):  # Ray processes outside the group
            if runtime in " ".join(proc.info["cmdline"] or []):
                proc.kill()
        shutil.rmtree(runtime, ignore_errors=True)
    finished = sorted(p.name for p in parts.glob("rows-*.tif"))
    assert finished and not (out / "city" / "montevideo_classes.tif").exists()
    whole = int((out / "kampala_classes.tif").exists())  # a small file the driver may have finished

    result = batch(_params(folder, out, codebook, band_rows=1))
    summary = json.loads(Path(result.summary).read_text())
    # 6 bands of montevideo + kampala (the truncated file fails when it is planned, before any work);
    # a Ray worker outside the driver's process group may finish one more band while it is killed,
    # so at least the bands finished before the kill are skipped
    assert summary["work_items"] <= 7 - max(1, len(finished) - 1) - whole, "finished bands are redone"
    assert len(result.done) == 2
    _assert_same(out, reference)


def test_batch_without_ray_does_not_import_ray(tmp_path, data, codebook):
    (tmp_path / "in").mkdir()
    gdal.Translate(str(tmp_path / "in" / "k.tif"), str(data / "kampala_0p30m_3857.tif"))
    code = ("import sys; from coredino.cli import main; "
            f"rc = main(['batch', {str(tmp_path / 'in')!r}, {str(tmp_path / 'out')!r}, '--codebook', "
            f"{codebook!r}, '--device', 'cpu']); "
            "assert rc == 0 and 'ray' not in sys.modules, sorted(m for m in sys.modules if 'ray' in m)")
    run = subprocess.run([sys.executable, "-c", code], env={**os.environ, "PYTHONPATH": str(ROOT / "backend")},
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    assert (tmp_path / "out" / "k_classes.tif").is_file()
    assert not (tmp_path / "out" / "coredino-batch-summary.json").exists()
