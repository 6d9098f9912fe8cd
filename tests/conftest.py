"""Shared fixtures: real imagery shipped in the repo (tests/data, resources)."""

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("YOLO_OFFLINE", "1")
os.environ.setdefault("YOLO_VERBOSE", "False")
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("GDAL_PAM_ENABLED", "NO")  # QGIS would write .aux.xml statistics beside test data

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "data"
RESOURCES = ROOT / "resources"


@pytest.fixture(scope="session")
def data() -> Path:
    return DATA


@pytest.fixture(scope="session")
def demo_raster() -> Path:
    return RESOURCES / "montevideo_0p25m_demo.tif"
