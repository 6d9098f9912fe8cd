"""The backend as a package: `make dist` builds a wheel that works outside the repository."""

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

from osgeo import gdal


def test_the_wheel_holds_both_packages_the_command_and_the_default_model(backend_wheel):
    names = set(zipfile.ZipFile(backend_wheel).namelist())
    assert {"coredino/cli.py", "coredino_contract/params.py", "coredino/resources/coredino-n-default.pt",
            "coredino/resources/coredino-n-default.codebook.npz"} <= names
    info = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
    assert "coredino = coredino.cli:main" in zipfile.ZipFile(backend_wheel).read(info).decode()


def test_installed_wheel_runs_from_outside_the_repository(backend_wheel, tmp_path, data):
    site = tmp_path / "site"
    done = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "--target", str(site),
                           str(backend_wheel), "-q"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    env = {k: v for k, v in os.environ.items() if k not in ("COREDINO_RESOURCES",)}
    env["PYTHONPATH"] = str(site)  # the installed copy, not the checkout's backend/
    work = tmp_path / "elsewhere"
    work.mkdir()
    info = subprocess.run([sys.executable, "-m", "coredino.cli", "info"], cwd=work, env=env,
                          capture_output=True, text=True, timeout=300)
    assert info.returncode == 0, info.stderr
    about = json.loads(info.stdout)
    assert about["package"] == str(site / "coredino")
    assert about["codebook"]["path"] == str(site / "coredino" / "resources" / "coredino-n-default.codebook.npz")
    out = work / "collar_classes.tif"
    run = subprocess.run([sys.executable, "-m", "coredino.cli", "classify", str(data / "caranavi_collar_0p25m.tif"),
                          "-o", str(out)], cwd=work, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    ds = gdal.Open(str(out))
    assert ds.GetMetadataItem("MODEL") == "core-dino:n@16" and ds.GetMetadataItem("K") == "6000"
    assert (out.with_suffix(".qml")).is_file()
