"""The backend service as the QGIS plugin meets it: a real `coredino serve` process over HTTP."""

import http.client
import json
import os
import signal
import socket
import stat
import subprocess
import sys
import time
import urllib.error
import urllib.request
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
from osgeo import gdal

from coredino.service.app import create_app

ROOT = Path(__file__).resolve().parents[2]
COREDINO = str(Path(sys.executable).with_name("coredino"))
OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback, never a proxy
FINISHED = ("done", "failed", "cancelled")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Backend:
    """A `coredino serve` subprocess with its own cache folder, and a small client for it."""

    def __init__(self, cache: Path, codebook_dir: Path):
        cache.mkdir(parents=True, exist_ok=True)
        self.cache, self.port, self.token = cache, free_port(), None
        self.url, self.log = f"http://127.0.0.1:{self.port}", cache / "server.log"
        with open(self.log, "w") as log:
            self.proc = subprocess.Popen(
                [COREDINO, "serve", "--port", str(self.port), "--token-file", str(cache / "token"),
                 "--codebooks", str(codebook_dir)],
                env={**os.environ, "COREDINO_CACHE": str(cache)}, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while True:
            try:
                if self.call("GET", "/v1/health")[0] == 200:
                    break
            except urllib.error.URLError:
                assert self.proc.poll() is None and time.monotonic() < deadline, self.log.read_text()
                time.sleep(0.2)
        self.token = (cache / "token").read_text().strip()

    def call(self, method: str, path: str, body=None, token=...):
        token = self.token if token is ... else token
        headers = {"Content-Type": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.url + path, data, headers, method=method)
        try:
            with OPENER.open(request, timeout=30) as answer:
                return answer.status, json.loads(answer.read())
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read())

    def submit(self, kind: str, params: dict) -> dict:
        status, job = self.call("POST", "/v1/jobs", {"kind": kind, "params": params})
        assert status == 202, job
        return job

    def wait(self, job_id: str, until=lambda job: job["state"] in FINISHED, timeout=120.0) -> list:
        """Poll a job until ``until(record)``; returns every record seen."""
        seen, deadline = [], time.monotonic() + timeout
        while True:
            status, job = self.call("GET", f"/v1/jobs/{job_id}")
            assert status == 200, job
            seen.append(job)
            if until(job):
                return seen
            assert time.monotonic() < deadline, f"{job} after {timeout} s"
            time.sleep(0.05)

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=30)


@pytest.fixture(scope="module")
def backend(tmp_path_factory, codebook):
    books = tmp_path_factory.mktemp("books")  # the test codebook and a broken one
    (books / "test.codebook.npz").symlink_to(codebook)
    (books / "broken.codebook.npz").write_bytes(b"not a codebook")
    server = Backend(tmp_path_factory.mktemp("service"), books)
    yield server
    server.stop()


def classify(codebook, source, output, **options) -> dict:
    return {"input": str(source), "output": str(output), "options": {"codebook": codebook, **options}}


def test_health_is_open_everything_else_needs_the_token(backend, codebook):
    assert backend.call("GET", "/v1/health", token=None) == (200, {"ok": True, "protocol": 1})
    for token in (None, "wrong-token"):
        status, answer = backend.call("GET", "/v1/capabilities", token=token)
        assert status == 401 and answer["detail"].startswith("missing or wrong token")
    status, caps = backend.call("GET", "/v1/capabilities")
    assert status == 200 and caps["protocol"] == 1 and caps["device"] == "cpu" and caps["gpu"] is None
    assert caps["queue"] == {"running": None, "queued": 0} and "core-dino" in caps["model_families"]
    books = {book["name"]: book for book in caps["codebooks"]}
    assert books["coredino-n-default.codebook.npz"]["k"] == 6000
    assert books["coredino-n-default.codebook.npz"]["default"] is True
    assert books["test.codebook.npz"] == {
        "name": "test.codebook.npz", "path": str(Path(codebook).resolve()), "k": 48, "metric": "cosine",
        "model": "core-dino:n@16", "gsd": 0.25, "patch": 8, "tile": 40, "border": 4, "default": False,
        "license": "none (random weights)"}
    assert books["coredino-n-default.codebook.npz"]["license"].startswith("GPL-2.0-or-later")
    assert {e["name"]: e["codebook"] for e in caps["catalogue"]} == {
        "default": "bundled", "geocentroids-sa": "import", "core-dino-x": "fit"}
    assert "broken.codebook.npz" not in books and "broken.codebook.npz is not a coredino codebook" in (
        backend.log.read_text())
    assert stat.S_IMODE((backend.cache / "token").stat().st_mode) == 0o600
    service = backend.cache / "service"
    assert stat.S_IMODE(service.stat().st_mode) == 0o700
    assert stat.S_IMODE((service / f"service-{backend.port}.json").stat().st_mode) == 0o600
    assert json.loads((service / f"service-{backend.port}.json").read_text()) == {
        "url": backend.url, "pid": backend.proc.pid, "token_file": str(backend.cache / "token"), "protocol": 1}
    checked_in = json.loads((ROOT / "docs" / "openapi.json").read_text())
    assert backend.call("GET", "/openapi.json", token=None) == (200, checked_in)


def test_checked_in_openapi_matches_the_app():
    checked_in = json.loads((ROOT / "docs" / "openapi.json").read_text())
    assert checked_in == create_app("token", []).openapi(), "regenerate docs/openapi.json"


def test_classify_job_reports_progress_and_writes_a_cog(backend, codebook, demo_raster, tmp_path):
    out = tmp_path / "demo_classes.tif"
    job = backend.submit("classify", classify(codebook, demo_raster, out, batch_size=1))
    seen = backend.wait(job["id"])
    assert seen[-1]["state"] == "done", seen[-1]
    fractions = [record["progress"] for record in seen if record["state"] == "running"]
    assert fractions == sorted(fractions) and len(set(fractions)) >= 3
    result = seen[-1]["result"]
    # blended tiles of 40 patches every 27 on 192 x 192 cells: 7 x 7
    assert result["output"] == str(out) and result["device"] == "cpu" and result["tiles"] == 49
    ds = gdal.Open(result["output"])
    assert ds.GetMetadataItem("LAYOUT", "IMAGE_STRUCTURE") == "COG"
    band = ds.GetRasterBand(1)
    ids = band.ReadAsArray()
    valid = ids != band.GetNoDataValue()
    assert sum(result["classes"].values()) == valid.sum() > 0
    assert sorted(map(int, result["classes"])) == np.unique(ids[valid]).tolist()


def test_jobs_run_one_at_a_time_and_outlive_their_client(backend, codebook, demo_raster, tmp_path):
    # The first job's client sends it and hangs up without reading the answer.
    before = {job["id"] for job in backend.call("GET", "/v1/jobs")[1]["jobs"]}
    client = http.client.HTTPConnection("127.0.0.1", backend.port, timeout=30)
    client.request("POST", "/v1/jobs", json.dumps({"kind": "classify", "params": classify(
        codebook, demo_raster, tmp_path / "a.tif", batch_size=1)}),
        {"Authorization": f"Bearer {backend.token}", "Content-Type": "application/json"})
    deadline = time.monotonic() + 10
    while not (new := [j for j in backend.call("GET", "/v1/jobs")[1]["jobs"] if j["id"] not in before]):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    client.close()
    first = new[0]
    second = backend.submit("classify", classify(codebook, demo_raster, tmp_path / "b.tif"))
    assert second["state"] == "queued"
    backend.wait(first["id"], lambda job: job["state"] != "queued")
    status, caps = backend.call("GET", "/v1/capabilities")
    assert caps["queue"] == {"running": first["id"], "queued": 1}
    assert [job["id"] for job in backend.call("GET", "/v1/jobs")[1]["jobs"][:2]] == [second["id"], first["id"]]
    a, b = backend.wait(first["id"])[-1], backend.wait(second["id"])[-1]
    assert a["state"] == b["state"] == "done" and (tmp_path / "a.tif").exists() and (tmp_path / "b.tif").exists()
    assert datetime.fromisoformat(b["started"]) >= datetime.fromisoformat(a["finished"])


def test_cancel_a_queued_and_a_running_job(backend, codebook, demo_raster, tmp_path):
    running = backend.submit("classify", classify(codebook, demo_raster, tmp_path / "a.tif", batch_size=1))
    queued = backend.submit("classify", classify(codebook, demo_raster, tmp_path / "b.tif"))
    status, record = backend.call("POST", f"/v1/jobs/{queued['id']}/cancel")
    assert status == 200 and record["state"] == "cancelled" and record["started"] is None
    backend.wait(running["id"], lambda job: job["progress"] > 0.1)  # tiles are being written
    asked = time.monotonic()
    status, record = backend.call("POST", f"/v1/jobs/{running['id']}/cancel")
    assert status == 200 and record["state"] in ("running", "cancelled")
    assert backend.wait(running["id"], timeout=5)[-1]["state"] == "cancelled"
    assert time.monotonic() - asked < 5
    assert backend.wait(queued["id"])[-1]["started"] is None
    assert os.listdir(tmp_path) == []  # no output, no temporary file


def test_failed_jobs_and_invalid_specs(backend, codebook, tmp_path):
    missing = tmp_path / "missing.tif"
    job = backend.submit("classify", classify(codebook, missing, tmp_path / "out.tif"))
    final = backend.wait(job["id"])[-1]
    assert final["state"] == "failed" and final["result"] is None
    assert final["error"].startswith(f"{missing}: ") and "no such file" in final["error"]
    assert "\n" not in final["error"]
    job = backend.submit("classify", classify(codebook, missing, tmp_path / "out.tif", device="no-such-device"))
    final = backend.wait(job["id"])[-1]
    assert final["state"] == "failed" and final["error"].startswith("unknown device 'no-such-device'")
    assert "Traceback" not in final["error"]
    good = classify(codebook, missing, tmp_path / "out.tif")
    for spec, where in (({"kind": "segment", "params": good}, "kind"),
                        ({"kind": "classify", "params": {"output": "o.tif"}}, "input"),
                        ({"kind": "classify", "params": {**good, "options": {"batchsize": 2}}}, "batchsize"),
                        ({"kind": "batch", "params": good}, "input_dir")):
        status, answer = backend.call("POST", "/v1/jobs", spec)
        assert status == 422 and where in json.dumps(answer["detail"]), (spec, answer)
    assert backend.call("GET", "/v1/jobs/no-such-job")[0] == 404
    assert backend.call("POST", "/v1/jobs/no-such-job/cancel")[0] == 404


def test_explore_jobs_similar_reclassify_polygonize(backend, codebook, data, tmp_path):
    out = tmp_path / "k_classes.tif"
    job = backend.submit("classify", classify(codebook, data / "kampala_0p30m_3857.tif", out, embeddings=True))
    result = backend.wait(job["id"])[-1]["result"]
    assert result["embeddings"] == str(tmp_path / "k_classes_embeddings.tif")
    ds = gdal.Open(str(out))
    gt = ds.GetGeoTransform()
    point = [gt[0] + 20.5 * gt[1], gt[3] + 20.5 * gt[5]]
    job = backend.submit("similar", {"embeddings": str(out), "output": str(tmp_path / "sim.tif"),
                                     "positives": [point], "negatives": []})
    final = backend.wait(job["id"])[-1]
    assert final["state"] == "done", final
    assert final["result"]["max"] == pytest.approx(1.0, abs=1e-5) and len(final["result"]["histogram"]) == 200
    top = max(result["classes"], key=result["classes"].get)
    job = backend.submit("reclassify", {"input": str(out), "output": str(tmp_path / "named.tif"),
                                        "classes": {"main": [int(top)]}})
    final = backend.wait(job["id"])[-1]
    assert final["state"] == "done", final
    assert [(c["name"], c["cells"]) for c in final["result"]["classes"]][1] == ("main", result["classes"][top])
    job = backend.submit("polygonize", {"input": str(tmp_path / "named.tif"), "output": str(tmp_path / "m.gpkg"),
                                        "class_name": "main"})
    final = backend.wait(job["id"])[-1]
    assert final["state"] == "done" and final["result"]["area_m2"] == pytest.approx(
        result["classes"][top] * gt[1] ** 2), final
    job = backend.submit("similar", {"embeddings": str(out), "output": str(tmp_path / "x.tif"), "positives": [[0, 0]]})
    final = backend.wait(job["id"])[-1]
    assert final["state"] == "failed" and "is outside" in final["error"] and "\n" not in final["error"]
    status, answer = backend.call("POST", "/v1/jobs", {"kind": "polygonize", "params": {"input": "a", "output": "b",
                                                                                        "klass": "x"}})
    assert status == 422 and "klass" in json.dumps(answer["detail"])


def test_busy_port_is_refused_and_sigterm_stops_a_busy_backend_cleanly(backend, codebook, demo_raster,
                                                                       tmp_path):
    files = [backend.cache / "token", backend.cache / "service" / f"service-{backend.port}.json"]
    before = [f.read_text() for f in files]
    busy = subprocess.run([COREDINO, "serve", "--port", str(backend.port), "--token-file", str(files[0])],
                          env={**os.environ, "COREDINO_CACHE": str(backend.cache)},
                          capture_output=True, text=True, timeout=60)
    assert busy.returncode == 2 and "Traceback" not in busy.stderr
    assert busy.stderr.strip().splitlines()[-1] == (
        f"coredino: error: port {backend.port} is in use: is a backend already running? "
        f"(see {files[1]}) or pass --port")
    assert [f.read_text() for f in files] == before  # the running backend is untouched

    other = Backend(tmp_path / "cache", Path(codebook).parent)
    out = tmp_path / "out"
    out.mkdir()
    job = other.submit("classify", classify(codebook, demo_raster, out / "a.tif", batch_size=1))
    other.wait(job["id"], lambda record: record["progress"] > 0.05)
    assert other.stop() == 0
    assert not (other.cache / "service" / f"service-{other.port}.json").exists()
    assert os.listdir(out) == []  # the running job was cancelled and cleaned up
    with pytest.raises(urllib.error.URLError) as refused:
        other.call("GET", f"/v1/jobs/{job['id']}")
    assert isinstance(refused.value.reason, ConnectionRefusedError)
    assert "Traceback" not in other.log.read_text()
