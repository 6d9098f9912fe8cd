"""The REAL QGIS desktop under Xvfb: the packaged plugin loads, classifies from the dock, screenshot.

The screenshot lands in out/qgis_desktop.png (gitignored) for a human to look at.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOT = ROOT / "out" / "qgis_desktop.png"

pytestmark = [
    pytest.mark.desktop,
    pytest.mark.skipif(shutil.which("xvfb-run") is None or shutil.which("qgis") is None,
                       reason="needs xvfb-run and the qgis desktop"),
]


def make_profile(base: Path, backend) -> Path:
    """A fresh QGIS profile with the plugin installed (zip layout) and enabled, pointed at the backend."""
    profile = base / "profiles" / "default"
    plugin_dir = profile / "python" / "plugins" / "coredino_qgis"
    shutil.copytree(ROOT / "coredino_qgis", plugin_dir, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "metadata.txt", plugin_dir / "metadata.txt")
    ini = profile / "QGIS" / "QGIS3.ini"
    ini.parent.mkdir(parents=True)
    ini.write_text(
        "[PythonPlugins]\ncoredino_qgis=true\n\n"
        f"[coredino]\nurl={backend.url}\ntoken_file={backend.token_file}\npython=\n\n"
        "[qgis]\ncheckVersion=false\nshowTips=false\nallowVersionCheck=false\n\n"
        "[UI]\nUI\\hidedataplotlegend=true\n", encoding="utf-8")
    return base


def test_real_qgis_desktop_classifies_from_the_dock(backend, tmp_path):
    profiles = make_profile(tmp_path / "qgis", backend)
    runtime = tmp_path / "xdg"
    runtime.mkdir(mode=0o700)
    SCREENSHOT.parent.mkdir(exist_ok=True)
    SCREENSHOT.unlink(missing_ok=True)
    status_file = tmp_path / "status.json"
    env = dict(os.environ, XDG_RUNTIME_DIR=str(runtime),
               COREDINO_DESKTOP_SOURCE=str(ROOT / "resources" / "montevideo_0p25m_demo.tif"),
               COREDINO_DESKTOP_OUTPUT=str(tmp_path / "montevideo_classes.tif"),
               COREDINO_DESKTOP_SCREENSHOT=str(SCREENSHOT), COREDINO_DESKTOP_STATUS=str(status_file))
    for name in ("QT_QPA_PLATFORM", "QGIS_CUSTOM_CONFIG_PATH", "QGIS_OPTIONS_PATH"):
        env.pop(name, None)  # a windowed QGIS on the Xvfb display, with its own profile folder
    command = ["xvfb-run", "-a", "-s", "-screen 0 1600x1000x24", "qgis", "--nologo", "--noversioncheck",
               "--profiles-path", str(profiles), "--code", str(Path(__file__).with_name("desktop_script.py"))]
    qgis = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)  # its own process group: killable as a whole
    try:
        stdout, stderr = qgis.communicate(timeout=300)
    except subprocess.TimeoutExpired:
        os.killpg(qgis.pid, signal.SIGKILL)
        stdout, stderr = qgis.communicate()
    assert status_file.exists(), f"rc {qgis.returncode}\n{stdout[-3000:]}\n{stderr[-3000:]}"
    status = json.loads(status_file.read_text())
    assert status["ok"], json.dumps(status, indent=2)
    assert status["renderer"] == "paletted"
    assert 0 < status["classes"] < 6000
    assert status["group"] == "montevideo demo — coredino"
    assert status["message"].startswith("Done:")
    assert SCREENSHOT.stat().st_size > 50_000
    assert SCREENSHOT.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
