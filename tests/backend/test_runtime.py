"""Encoder runtimes (torch, ONNX Runtime), precisions, and the thread policy set before torch starts."""

import json
import os
import subprocess
import sys
import textwrap
import threading

import numpy as np
import pytest
import torch
from osgeo import gdal

from coredino.codebook import Assigner
from coredino.encoders import ModelSpec, build_encoder
from coredino.encoders import runtime
from coredino.atomic import temp_name
from coredino.encoders.onnx_export import export_key, real_tiles, sidecar
from coredino.engine import CHECK_RASTER, classify, load_codebook
from coredino.errors import Cancelled, UserError
from coredino.params import ClassifyOptions, ClassifyParams
from coredino.progress import Progress
from coredino.threads import split_map, split_rows

CPU = torch.device("cpu")
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _python(code: str, **env) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "OMP_NUM_THREADS")}
    environ.update(PYTHONPATH=os.path.join(ROOT, "backend"), **env)
    return subprocess.run([sys.executable, "-c", code], env=environ, capture_output=True, text=True)


def test_cli_sets_threads_and_passive_wait_before_torch():
    info = "from coredino.cli import main; import sys; sys.exit(main(['info', '--device', 'cpu']))"
    done = _python(info, COREDINO_THREADS="1")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["threads"] == 1 and json.loads(done.stdout)["runtimes"] == ["torch", "onnx"]
    probe = ("from coredino.cli import _threads_arg; from coredino.threads import configure_threads; "
             "p = configure_threads(_threads_arg(['classify', 'x.tif', '--threads', '1'])); import os, torch; "
             "print(torch.get_num_threads(), os.environ['OMP_WAIT_POLICY'], p.wait_policy)")
    assert _python(probe).stdout.split() == ["1", "PASSIVE", "PASSIVE"]
    # a wait policy the user set is honoured
    assert _python(probe, OMP_WAIT_POLICY="ACTIVE").stdout.split() == ["1", "ACTIVE", "ACTIVE"]
    bad = _python(info, COREDINO_THREADS="many")
    assert bad.returncode == 2 and bad.stderr.strip().startswith("coredino: error: COREDINO_THREADS")
    assert "Traceback" not in bad.stderr


def test_runtime_choice():
    assert runtime.resolve_runtime("auto", "fp32", CPU) == "onnx"
    assert runtime.resolve_runtime("auto", "fp32", CPU, compile=True) == "torch"
    assert runtime.resolve_runtime("auto", "bf16", CPU) == "torch"
    assert runtime.resolve_runtime("auto", "int8", CPU) == "onnx"
    assert runtime.resolve_runtime("auto", "fp32", torch.device("cuda")) == "torch"
    with pytest.raises(UserError, match="on cuda use --runtime torch"):
        runtime.resolve_runtime("onnx", "fp32", torch.device("cuda"))
    with pytest.raises(UserError, match="bf16 runs on the torch runtime"):
        runtime.resolve_runtime("onnx", "bf16", CPU)
    with pytest.raises(UserError, match="unknown runtime 'openvino'"):
        runtime.resolve_runtime("openvino", "fp32", CPU)


@pytest.fixture()
def fresh_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("COREDINO_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(runtime, "_PREPARED", {})
    return tmp_path / "cache"


def _prepare(encoder, codebook, side, precision="fp32", rt="onnx"):
    runtime._PREPARED.clear()  # a new process: nothing prepared yet
    return runtime.prepare_encoder(encoder, rt, precision, side, Assigner(codebook, CPU), CHECK_RASTER)


def test_onnx_export_is_checked_cached_reused_and_rebuilt(fresh_cache, codebook):
    book = load_codebook(codebook)
    encoder = build_encoder(ModelSpec("core-dino", "n", "random", 16), CPU)
    side = int(book.recipe["tile"]) * encoder.patch
    fast, notes = _prepare(encoder, book, side)
    key = export_key(encoder, side, "fp32")
    assert isinstance(fast, runtime.OnnxEncoder) and notes == [] and fast.path == key.path
    meta = json.loads(sidecar(key.path).read_text())
    assert meta["passed"] and meta["cosine_min"] >= 0.9999 and meta["ids_identical"] >= 0.999
    assert meta["check_tiles"] == 8 and meta["key"]["weights_sha256"] == "random-seed0"
    x = torch.rand(3, 3, side, side)
    with torch.inference_mode():
        ref, out = encoder(x), fast(x)
    assert out.shape == ref.shape and torch.nn.functional.cosine_similarity(ref, out, dim=1).min() > 0.9999

    stamp = key.path.stat().st_mtime_ns
    assert _prepare(encoder, book, side)[0].path == key.path and key.path.stat().st_mtime_ns == stamp

    key.path.write_bytes(b"not an onnx file")  # corrupt: rebuilt, never trusted
    rebuilt, _ = _prepare(encoder, book, side)
    assert key.path.read_bytes()[:16] != b"not an onnx file"[:16]
    assert json.loads(sidecar(key.path).read_text())["passed"]
    with torch.inference_mode():
        torch.testing.assert_close(rebuilt(x), out, rtol=1e-4, atol=1e-4)

    stale = json.loads(sidecar(key.path).read_text())
    stale["key"]["torch"] = "0.0"  # exported by another torch: stale
    sidecar(key.path).write_text(json.dumps(stale))
    _prepare(encoder, book, side)
    assert json.loads(sidecar(key.path).read_text())["key"]["torch"] == torch.__version__
    assert not [p for p in key.path.parent.iterdir() if ".tmp" in p.name]


def test_batches_split_among_compute_workers_match_one_thread(fresh_cache, codebook, monkeypatch):
    """Each worker runs its share of a batch single-threaded: the features and ids are those of
    one thread running the whole batch, bit for bit (no worker gets a lone tile)."""
    book = load_codebook(codebook)
    encoder = build_encoder(ModelSpec("core-dino", "n", "random", 16), CPU)
    side = int(book.recipe["tile"]) * encoder.patch
    fast, _ = _prepare(encoder, book, side)
    tiles = real_tiles(CHECK_RASTER, side, 5)
    assert [s.stop - s.start for s in split_rows(5, 2, least=2)] == [2, 3]
    assert split_rows(3, 2, least=2) == [slice(0, 3)] and split_rows(0, 2) == [slice(0, 0)]
    assigner, runs = Assigner(book, CPU), {}
    for threads in ("2", "1"):
        monkeypatch.setenv("OMP_NUM_THREADS", threads)
        workers = set(split_map(lambda _: threading.current_thread().name, range(4)))
        assert all(name.startswith("coredino-compute") for name in workers) == (threads == "2")
        with torch.inference_mode():
            feats = fast(tiles)
        runs[threads] = feats, assigner(feats.permute(0, 2, 3, 1).reshape(-1, encoder.dim))
    assert torch.equal(runs["2"][0], runs["1"][0]) and torch.equal(runs["2"][1], runs["1"][1])


# A process preparing core-dino n (random weights) on ONNX Runtime once a go file exists, printing its
# progress messages, logging coredino's INFO lines and saving its features on a fixed input.
PREPARER = textwrap.dedent("""
    import logging, pathlib, sys, time
    from coredino.threads import configure_threads
    configure_threads(1)
    import numpy as np, torch
    from coredino.encoders import ModelSpec, build_encoder
    from coredino.encoders.runtime import prepare_encoder
    from coredino.engine import CHECK_RASTER
    from coredino.progress import Progress
    logging.basicConfig(format="log: %(message)s")
    logging.getLogger("coredino").setLevel(logging.INFO)
    side, go, out = int(sys.argv[1]), pathlib.Path(sys.argv[2]), sys.argv[3]
    encoder = build_encoder(ModelSpec("core-dino", "n", "random", 16), torch.device("cpu"))
    print("ready", flush=True)
    while not go.exists():
        time.sleep(0.01)
    progress = Progress(lambda fraction, message: print(message, flush=True))
    fast, _ = prepare_encoder(encoder, "onnx", "fp32", side, None, CHECK_RASTER, progress=progress)
    with torch.inference_mode():
        np.save(out, fast(torch.rand(2, 3, side, side, generator=torch.Generator().manual_seed(1))).numpy())
""")
# A process holding the export lock of that model until it is killed.
HOLDER = textwrap.dedent("""
    import sys, time, torch
    from coredino.encoders import ModelSpec, build_encoder
    from coredino.encoders.onnx_export import export_key, export_lock
    encoder = build_encoder(ModelSpec("core-dino", "n", "random", 16), torch.device("cpu"))
    with export_lock(export_key(encoder, int(sys.argv[1]), "fp32")):
        print("held", flush=True)
        time.sleep(120)
""")
LOCK_SIDE = 64  # 4 x 4 cells: the export, not the features, is under test


def _spawn(code: str, *args) -> subprocess.Popen:
    environ = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "OMP_NUM_THREADS")}
    environ.update(PYTHONPATH=os.path.join(ROOT, "backend"))
    return subprocess.Popen([sys.executable, "-c", code, *map(str, args)], env=environ, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _lock_key():
    return export_key(build_encoder(ModelSpec("core-dino", "n", "random", 16), CPU), LOCK_SIDE, "fp32")


def _assert_published_alone(key) -> None:
    """The entry is published and checked, with no temporary and no lock file left beside it."""
    assert json.loads(sidecar(key.path).read_text())["passed"]
    assert sorted(p.name for p in key.path.parent.iterdir()) == sorted([key.path.name, sidecar(key.path).name])


def test_processes_preparing_one_export_together_export_it_once(fresh_cache, tmp_path):
    go = tmp_path / "go"
    workers = [_spawn(PREPARER, LOCK_SIDE, go, tmp_path / f"{name}.npy") for name in "ab"]
    try:
        assert [w.stdout.readline().strip() for w in workers] == ["ready", "ready"]
        go.touch()  # both look up the cache at the same moment
        outputs = [w.communicate(timeout=120) for w in workers]
    finally:
        for w in workers:
            w.kill()
    assert [w.returncode for w in workers] == [0, 0], outputs
    key = _lock_key()
    exported = [err.count(f"log: exported core-dino:n@16 to {key.path} in ") for _, err in outputs]
    assert sorted(exported) == [0, 1], outputs  # one export in all
    out, err = outputs[exported.index(0)]
    waiting = f"waiting for another process's export of {key.path.name} (pid {workers[exported.index(1)].pid})"
    assert waiting in out.splitlines() and f"log: {waiting}" in err.splitlines()
    np.testing.assert_array_equal(np.load(tmp_path / "a.npy"), np.load(tmp_path / "b.npy"))
    _assert_published_alone(key)


def test_a_killed_exporter_releases_the_export_to_the_next_process(fresh_cache, tmp_path):
    key, go = _lock_key(), tmp_path / "go"
    holder = _spawn(HOLDER, LOCK_SIDE)
    worker = _spawn(PREPARER, LOCK_SIDE, go, tmp_path / "features.npy")
    try:
        assert holder.stdout.readline().strip() == "held" and worker.stdout.readline().strip() == "ready"
        leftover = temp_name(key.path, ".tmp.onnx")  # what an exporter killed mid-way leaves
        leftover.write_bytes(b"half an export")
        cancel = Progress()
        cancel.cancel.set()  # a job cancelled while it waits stops waiting
        with pytest.raises(Cancelled):
            runtime.prepare_encoder(build_encoder(ModelSpec("core-dino", "n", "random", 16), CPU),
                                    "onnx", "fp32", LOCK_SIDE, None, CHECK_RASTER, progress=cancel)
        go.touch()
        waiting = f"waiting for another process's export of {key.path.name} (pid {holder.pid})"
        assert worker.stdout.readline().strip() == waiting
        holder.kill()  # SIGKILL: no clean-up runs, the kernel releases the lock
        out, err = worker.communicate(timeout=120)
    finally:
        holder.kill()
        worker.kill()
    assert worker.returncode == 0, err
    assert err.count(f"log: exported core-dino:n@16 to {key.path} in ") == 1, err
    assert not leftover.exists()
    _assert_published_alone(key)


def test_classify_onnx_matches_torch_and_reduced_precision_reports_agreement(fresh_cache, codebook,
                                                                              data, tmp_path):
    src = str(data / "caranavi_collar_0p25m.tif")
    maps, results = {}, {}
    for name, rt, precision in (("torch", "torch", "fp32"), ("onnx", "auto", "fp32"),
                                ("int8", "auto", "int8"), ("bf16", "auto", "bf16")):
        out = tmp_path / f"{name}.tif"
        results[name] = classify(ClassifyParams(src, str(out), ClassifyOptions(
            codebook=codebook, device="cpu", runtime=rt, precision=precision)))
        ds = gdal.Open(str(out))
        maps[name] = ds.ReadAsArray()
        ds = None
    assert results["torch"].runtime.startswith("torch ") and "fp32" in results["torch"].runtime
    assert results["onnx"].runtime.startswith("onnxruntime ") and not results["onnx"].warnings
    assert (maps["onnx"] == maps["torch"]).mean() >= 0.999
    for name in ("int8", "bf16"):
        note = [w for w in results[name].warnings if w.startswith(f"precision {name}: ")]
        assert note and "% of the ids identical to fp32" in note[0], results[name].warnings
        same = float(note[0].split(": ")[1].split(" %")[0])
        assert 0 <= same <= 100
    assert results["bf16"].runtime.startswith("torch ") and "bf16" in results["bf16"].runtime
    assert "int8" in results["int8"].runtime and len(np.unique(maps["int8"])) > 2


@pytest.mark.parametrize("kind", ["registers", "plain"])
def test_dinov2_exports_with_and_without_registers(fresh_cache, dinov2_folders, kind):
    encoder = build_encoder(ModelSpec("dinov2", str(dinov2_folders[kind]), "", None), CPU)
    fast, notes = runtime.prepare_encoder(encoder, "onnx", "fp32", 224, None, CHECK_RASTER)
    assert isinstance(fast, runtime.OnnxEncoder) and not notes
    meta = json.loads(sidecar(fast.path).read_text())
    assert meta["passed"] and meta["cosine_min"] >= 0.9999 and meta["key"]["layer"] is None
    x = torch.rand(3, 3, 224, 224)
    with torch.inference_mode():
        torch.testing.assert_close(fast(x), encoder(x), rtol=1e-4, atol=1e-4)


def test_processor_encoder_stays_on_torch(geo):
    """dinov2-processor's uint8 PIL-exact resize has no exact ONNX form: auto keeps torch, onnx refuses."""
    from coredino.encoders.processor import ProcessorDinoV2Encoder

    encoder = build_encoder(ModelSpec("dinov2-processor", str(geo["model"]), "", None), CPU)
    assert isinstance(encoder, ProcessorDinoV2Encoder)
    assert runtime.prepare_encoder(encoder, "auto", "fp32", 224, None, CHECK_RASTER) == (encoder, [])
    with pytest.raises(UserError, match="dinov2-processor encoders run on torch only"):
        runtime.prepare_encoder(encoder, "onnx", "fp32", 224, None, CHECK_RASTER)
