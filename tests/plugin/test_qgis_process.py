"""Headless parity: `qgis_process run coredino:classify` with no backend running starts one (the
Python set in the profile's settings, as the desktop does), classifies, and stops it at exit."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
from pathlib import Path

import pytest
from osgeo import gdal

from plugin_test_helpers import free_port

ROOT = Path(__file__).resolve().parents[2]
QGIS_PROCESS = Path("/usr/bin/qgis_process.bin")  # the wrapper qgis_process fails (ENVIRONMENT.md, 7)
PYTHON = Path(os.environ.get("VIRTUAL_ENV", ROOT / ".venv")) / "bin" / "python"

pytestmark = pytest.mark.skipif(not QGIS_PROCESS.exists(), reason="needs /usr/bin/qgis_process.bin")


def headless_profile(base: Path, port: int) -> Path:
    """A profiles folder (QGIS_CUSTOM_CONFIG_PATH) with the plugin installed, enabled and given a Python."""
    plugin = base / "profiles" / "default" / "python" / "plugins" / "coredino_qgis"
    shutil.copytree(ROOT / "coredino_qgis", plugin, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "metadata.txt", plugin / "metadata.txt")
    ini = base / "profiles" / "default" / "QGIS" / "QGIS3.ini"
    ini.parent.mkdir(parents=True)
    ini.write_text(f"[PythonPlugins]\ncoredino_qgis=true\n\n[coredino]\npython={PYTHON}\n"
                   f"url=http://127.0.0.1:{port}\ntoken_file={base / 'token'}\n", encoding="utf-8")
    return base


def answers(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def test_qgis_process_starts_a_backend_classifies_and_stops_it(tmp_path, data):
    port = free_port()
    profiles = headless_profile(tmp_path / "qgis", port)
    runtime = tmp_path / "xdg"
    runtime.mkdir(mode=0o700)
    env = dict(os.environ, QGIS_CUSTOM_CONFIG_PATH=str(profiles), XDG_RUNTIME_DIR=str(runtime),
               COREDINO_CACHE=str(tmp_path / "cache"), QT_QPA_PLATFORM="offscreen")
    output = tmp_path / "collar_classes.tif"
    assert not answers(port)
    done = subprocess.run([str(QGIS_PROCESS), "run", "coredino:classify", "--",
                           f"INPUT={data / 'caranavi_collar_0p25m.tif'}", f"OUTPUT={output}", "EMBEDDINGS=true"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=400)
    (ROOT / "out").mkdir(exist_ok=True)
    (ROOT / "out" / "qgis_process_no_backend.txt").write_text(done.stdout + done.stderr)  # for a human to read
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "Starting the backend" in done.stdout
    assert "busy with another job" not in done.stdout  # the backend it started was idle
    assert f"OUTPUT:\t{output}" in done.stdout
    ds = gdal.Open(str(output))
    assert ds.GetMetadataItem("K") == "6000"
    ds = None
    assert (tmp_path / "collar_classes_embeddings.tif").is_file()
    assert not answers(port)  # the backend qgis_process started was stopped when it exited
