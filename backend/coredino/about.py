"""Where this backend runs: Python, GDAL, platform and package folder (``coredino info``, capabilities)."""

from __future__ import annotations

import platform
import sys
from pathlib import Path


def environment() -> dict:
    """Facts a bug report needs about the backend's interpreter and libraries."""
    from osgeo import gdal

    return {
        "python": sys.executable,
        "python_version": platform.python_version(),
        "platform": platform.platform(terse=True),
        "gdal": gdal.__version__,
        "package": str(Path(__file__).resolve().parent),
    }
