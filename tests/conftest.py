"""Shared fixtures: real imagery shipped in the repo (tests/data, resources)."""

import atexit
import os
import shutil
import tempfile
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("YOLO_OFFLINE", "1")
os.environ.setdefault("YOLO_VERBOSE", "False")
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("GDAL_PAM_ENABLED", "NO")  # QGIS would write .aux.xml statistics beside test data
if "COREDINO_CACHE" not in os.environ:  # ONNX exports, service files: never in the user's ~/.cache
    os.environ["COREDINO_CACHE"] = tempfile.mkdtemp(prefix="coredino-tests-cache-")
    atexit.register(shutil.rmtree, os.environ["COREDINO_CACHE"], ignore_errors=True)

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "data"
RESOURCES = ROOT / "resources"


@pytest.fixture(scope="session")
def data() -> Path:
    return DATA


@pytest.fixture(scope="session")
def backend_wheel(tmp_path_factory) -> Path:
    """The backend wheel as `make dist` builds it (in a session folder)."""
    import subprocess
    import sys

    dist = tmp_path_factory.mktemp("dist")
    done = subprocess.run(["make", "-s", "dist", f"DIST_DIR={dist}", f"VENV={Path(sys.executable).parents[1]}"],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    (built,) = dist.glob("coredino-*-py3-none-any.whl")
    return built


@pytest.fixture(scope="session")
def demo_raster() -> Path:
    return RESOURCES / "montevideo_0p25m_demo.tif"
