"""`make offline-bundle`: a folder of wheels that installs the backend with no network.

Writes ``<out>/`` with the backend wheel (from ``make dist``), every dependency's wheel for this
platform and Python pinned by constraints.txt (``pip download``), ``constraints.txt`` and
``bundle.json`` (platform, Python, coredino version, file list). The plugin's set-up dialog (or
``pip install --no-index --find-links <out> -c <out>/constraints.txt coredino``) installs from it.
torch and its CUDA libraries make the folder several GB; ``--torch-index`` picks another torch
index (e.g. https://download.pytorch.org/whl/cpu for a CPU-only build, about 1 GB less).
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--wheel-dir", type=Path, required=True, help="where `make dist` put coredino-*.whl")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--torch-index", help="an extra index for torch/torchvision builds")
    args = p.parse_args()
    wheels = sorted(args.wheel_dir.glob("coredino-*-py3-none-any.whl"))
    if not wheels:
        sys.exit(f"offline-bundle: no coredino wheel in {args.wheel_dir}: run `make dist` first")
    wheel = wheels[-1]
    args.out.mkdir(parents=True, exist_ok=True)
    shutil.copy2(wheel, args.out / wheel.name)
    shutil.copy2(ROOT / "constraints.txt", args.out / "constraints.txt")
    command = [sys.executable, "-m", "pip", "download", "--only-binary=:all:", "-c", str(ROOT / "constraints.txt"),
               "-d", str(args.out), str(wheel)]
    if args.torch_index:
        command += ["--extra-index-url", args.torch_index]
    subprocess.run(command, check=True)
    files = sorted(f.name for f in args.out.glob("*.whl"))
    (args.out / "bundle.json").write_text(json.dumps({
        "coredino": wheel.name.split("-")[1], "platform": sysconfig.get_platform(),
        "python": platform.python_version(), "wheels": files}, indent=2) + "\n")
    size = sum(f.stat().st_size for f in args.out.iterdir()) / 2**30
    print(f"{args.out}: {len(files)} wheels, {size:.2f} GB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
