"""The plugin zip and the plugin's hard rules (no torch, no backend package, only qgis.PyQt)."""

from __future__ import annotations

import ast
import configparser
import subprocess
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PLUGIN = ROOT / "coredino_qgis"
FORBIDDEN = ("torch", "numpy", "PyQt5", "PyQt6", "coredino", "coredino_contract", "osgeo", "requests")
CONTRACT = ROOT / "backend" / "coredino_contract"


def top_level_names(path: Path) -> set:
    """Functions, classes and constants a module defines at its top level."""
    names = set()
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names.update(t.id for t in node.targets if isinstance(t, ast.Name))
    return names - {"__all__"}


def test_the_plugin_keeps_no_copy_of_a_contract_rule():
    """Every rule the backend shares (params, results, naming, classes file, protocol, styles) comes from
    the vendored contract: no plugin module defines a name the contract defines, and the copy is exact."""
    contract = set().union(*(top_level_names(p) for p in CONTRACT.glob("*.py")))
    for path in PLUGIN.rglob("*.py"):
        if "contract" not in path.relative_to(PLUGIN).parts:
            clash = top_level_names(path) & contract
            assert not clash, f"{path.relative_to(ROOT)} redefines {sorted(clash)}: import it from .contract"
    vendored = PLUGIN / "contract"
    for source in CONTRACT.glob("*.py"):
        assert (vendored / source.name).read_bytes() == source.read_bytes(), f"run `make vendor` ({source.name})"


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
        for shipped in ("constraints.txt", "montevideo_0p25m_demo.tif"):  # for the backend set-up dialog
            assert f"coredino_qgis/{shipped}" in names
        for source in CONTRACT.glob("*.py"):  # the zip carries the contract, byte for byte
            assert archive.read(f"coredino_qgis/contract/{source.name}") == source.read_bytes()
