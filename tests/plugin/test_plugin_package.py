"""The plugin zip and the plugin's hard rules (no torch, no backend package, only qgis.PyQt)."""

from __future__ import annotations

import ast
import configparser
import subprocess
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PLUGIN = ROOT / "coredino_qgis"
FORBIDDEN = ("torch", "numpy", "PyQt5", "PyQt6", "coredino", "osgeo", "requests")


def test_plugin_imports_nothing_heavy_and_only_qgis_pyqt():
    for path in PLUGIN.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module or ""]
            else:
                continue
            for name in names:
                assert name.split(".")[0] not in FORBIDDEN, f"{path.relative_to(ROOT)} imports {name}"


def test_metadata_declares_the_supported_qgis_range():
    meta = configparser.ConfigParser()
    meta.read(ROOT / "metadata.txt", encoding="utf-8")
    general = meta["general"]
    assert general["name"] == "coredino"
    assert general["qgisMinimumVersion"] == "3.22" and general["qgisMaximumVersion"] == "4.99"
    assert general["version"] == "0.1.0" and general["author"] == "coredino-qgis developers"
    assert general["supportsQt6"] == "True" and general["hasProcessingProvider"] == "yes"
    assert (PLUGIN / general["icon"]).is_file()


def test_make_package_builds_the_zip_qgis_installs():
    subprocess.run(["make", "-s", "package"], cwd=ROOT, check=True, capture_output=True, timeout=60)
    zip_path = ROOT / "dist" / "coredino_qgis-0.1.0.zip"
    with zipfile.ZipFile(zip_path) as archive:
        names = archive.namelist()
        assert all(name.startswith("coredino_qgis/") for name in names)
        assert not any("__pycache__" in name or name.endswith(".pyc") for name in names)
        for required in ("metadata.txt", "__init__.py", "plugin.py", "icon.svg", "processing/provider.py"):
            assert f"coredino_qgis/{required}" in names
        assert archive.read("coredino_qgis/metadata.txt") == (ROOT / "metadata.txt").read_bytes()
