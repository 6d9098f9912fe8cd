"""Copy the contract (backend/coredino_contract) into the plugin as coredino_qgis/contract.

The plugin runs in QGIS's own Python and cannot import the backend, so it carries this copy; it
is made by `make vendor` (run by install and package) and by the plugin tests, never edited.
"""

from __future__ import annotations

import filecmp
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT / "backend" / "coredino_contract"
TARGET = ROOT / "coredino_qgis" / "contract"


def sources(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.glob("*.py"))


def is_current(target: Path = TARGET) -> bool:
    """Whether ``target`` holds exactly the contract's source files."""
    names = sources(SOURCE)
    if not target.is_dir() or sources(target) != names:
        return False
    _, mismatch, errors = filecmp.cmpfiles(SOURCE, target, names, shallow=False)
    return not mismatch and not errors


def vendor(target: Path = TARGET) -> None:
    if is_current(target):
        return
    staging = target.with_name(f".{target.name}.staging")
    shutil.rmtree(staging, ignore_errors=True)
    shutil.copytree(SOURCE, staging, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    shutil.rmtree(target, ignore_errors=True)
    staging.rename(target)


if __name__ == "__main__":
    vendor(Path(sys.argv[1]) if len(sys.argv) > 1 else TARGET)
