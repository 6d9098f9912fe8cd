"""The service against hostile clients and neighbours (issue #10 R1-R3, D3): real `coredino serve`
processes on loopback, raw HTTP."""

import http.client
import json
import os
import signal
import subprocess
import time
from pathlib import Path

from test_service import COREDINO, free_port

from coredino.params import SimilarParams
from coredino.service.jobs import JobQueue


def start(cache: Path) -> tuple[subprocess.Popen, int]:
    """A backend with default token and discovery files (no --token-file), once it answers."""
    port = free_port()
    log = open(cache / f"server-{port}.log", "w")
    proc = subprocess.Popen([COREDINO, "serve", "--port", str(port)], stdout=log, stderr=subprocess.STDOUT,
                            env={**os.environ, "COREDINO_CACHE": str(cache)})
    deadline = time.monotonic() + 90
    while raw(port, "GET", "/v1/health")[0] != 200:
        assert proc.poll() is None and time.monotonic() < deadline, (cache / f"server-{port}.log").read_text()
        time.sleep(0.3)
    return proc, port


def raw(port: int, method: str, path: str, body=None, headers=None, chunked=False) -> tuple[int, dict]:
    """One request with exactly the given headers (Host included); (status, JSON body) or (0, {})."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request(method, path, body=body, headers=headers or {}, encode_chunked=chunked)
        answer = conn.getresponse()
        return answer.status, json.loads(answer.read() or b"{}")
    except (ConnectionError, OSError):
        return 0, {}
    finally:
        conn.close()


def test_host_body_limit_per_port_files_and_failed_jobs(tmp_path, data):
    cache = tmp_path / "cache"
    cache.mkdir()
    (a, port_a), (b, port_b) = start(cache), start(cache)
    try:
        service = cache / "service"
        info = {port: json.loads((service / f"service-{port}.json").read_text()) for port in (port_a, port_b)}
        tokens = {port: (service / f"token-{port}").read_text().strip() for port in (port_a, port_b)}
        # R3: a second backend on another port leaves the first one's token and discovery file alone
        assert info[port_a]["token_file"] == str(service / f"token-{port_a}") and info[port_a]["pid"] == a.pid
        assert info[port_b]["token_file"] == str(service / f"token-{port_b}") and tokens[port_a] != tokens[port_b]
        for port in (port_a, port_b):
            auth = {"Authorization": f"Bearer {tokens[port]}", "Host": f"127.0.0.1:{port}"}
            assert raw(port, "GET", "/v1/capabilities", headers=auth)[0] == 200

        # R1: a rebinding page's Host is refused on every route, loopback names are served
        for host in (f"evil.example:{port_a}", "evil.example", f"127.0.0.1.evil.example:{port_a}"):
            status, answer = raw(port_a, "GET", "/v1/health", headers={"Host": host})
            assert status == 400 and "is not this backend's" in answer["detail"], (host, status)
            assert raw(port_a, "GET", "/openapi.json", headers={"Host": host})[0] == 400
        for host in (f"127.0.0.1:{port_a}", f"localhost:{port_a}", "localhost", f"[::1]:{port_a}"):
            assert raw(port_a, "GET", "/v1/health", headers={"Host": host})[0] == 200, host

        # R2: bodies over 1 MB are refused, declared or streamed, before the token is even checked
        auth = {"Authorization": f"Bearer {tokens[port_a]}", "Host": f"127.0.0.1:{port_a}",
                "Content-Type": "application/json"}
        spec = json.dumps({"kind": "classify", "params": {"input": "x" * 2_000_000, "output": "y.tif"}}).encode()
        status, answer = raw(port_a, "POST", "/v1/jobs", spec, auth)
        assert status == 413 and "request body over 1048576 bytes" in answer["detail"]
        status, answer = raw(port_a, "POST", "/v1/jobs", (spec[i:i + 65536] for i in range(0, len(spec), 65536)),
                             auth, chunked=True)
        assert status == 413, answer
        assert raw(port_a, "GET", "/v1/jobs", headers=auth) == (200, {"jobs": []})

        # D3: a truncated raster fails its job with the CLI's one line (no "internal error")
        truncated = tmp_path / "truncated.tif"
        truncated.write_bytes((data / "caranavi_collar_0p25m.tif").read_bytes()[:200_000])
        body = json.dumps({"kind": "classify", "params": {"input": str(truncated),
                                                          "output": str(tmp_path / "out" / "t.tif")}}).encode()
        status, job = raw(port_a, "POST", "/v1/jobs", body, auth)
        assert status == 202, job
        deadline = time.monotonic() + 180
        while job["state"] not in ("done", "failed", "cancelled"):
            assert time.monotonic() < deadline, job
            time.sleep(0.3)
            job = raw(port_a, "GET", f"/v1/jobs/{job['id']}", headers=auth)[1]
        assert job["state"] == "failed" and "\n" not in job["error"], job
        assert job["error"].startswith(f"{truncated}: GDAL cannot read it (") and "internal error" not in job["error"]
        assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())
    finally:
        for proc in (a, b):
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=60)
    assert not list((cache / "service").glob("service-*.json"))  # each removed its own on exit


def test_finished_jobs_are_pruned(tmp_path):
    jobs = JobQueue(keep=3, keep_s=3600)
    jobs.start()
    try:
        ids = [jobs.submit("similar", SimilarParams(str(tmp_path / f"missing{i}.tif"), str(tmp_path / "s.tif"),
                                                    [(0.0, 0.0)]))["id"] for i in range(6)]
        deadline = time.monotonic() + 60
        while jobs.get(ids[-1]) is None or jobs.get(ids[-1])["state"] != "failed":
            assert time.monotonic() < deadline
            time.sleep(0.05)
        kept = [record["id"] for record in jobs.records()]
        assert kept == ids[-1:-4:-1]  # the 3 newest, newest first
        assert jobs.get(ids[-1])["error"].endswith("missing5.tif: no such file")
        old = JobQueue(keep=100, keep_s=0.0)  # and by age
        old.start()
        first = old.submit("similar", SimilarParams(str(tmp_path / "m.tif"), str(tmp_path / "s.tif"), [(0, 0)]))
        while (record := old.get(first["id"])) is not None and record["state"] in ("queued", "running"):
            time.sleep(0.05)
        old.submit("similar", SimilarParams(str(tmp_path / "n.tif"), str(tmp_path / "s.tif"), [(0, 0)]))
        assert old.get(first["id"]) is None
        old.close()
    finally:
        jobs.close()
