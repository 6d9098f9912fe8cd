"""The backend environment the set-up dialog manages: where it lives, which Python makes it, and the
commands that create, install and verify it.

The environment is a virtual environment in the user's data folder
(``QStandardPaths.AppDataLocation/coredino/venv``: ``~/.local/share/QGIS/QGIS3/coredino/venv`` on
Linux), made with ``--system-site-packages`` from a Python that imports GDAL (Debian's
``/usr/bin/python3`` on Linux; QGIS's own Python on Windows and macOS), so the backend shares that
GDAL. Run here: Linux. The Windows and macOS paths below follow the layouts of the OSGeo4W / QGIS
standalone installers and of QGIS.app; they were NOT run.
"""

from __future__ import annotations

import os
import platform
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from qgis.PyQt.QtCore import QStandardPaths

PLUGIN_DIR = Path(__file__).resolve().parent
#: torch builds for machines without an NVIDIA GPU (Linux, Windows); PyPI's Linux torch is a CUDA build
CPU_TORCH_INDEX = "https://download.pytorch.org/whl/cpu"
#: CUDA builds for Windows (PyPI's Windows torch is CPU-only); not run
WINDOWS_CUDA_TORCH_INDEX = "https://download.pytorch.org/whl/cu128"
DEMO_NAME = "montevideo_0p25m_demo.tif"
#: the verification: imports, then a one-tile classify (384 x 384 px of the demo) with the default model
VERIFY_SCRIPT = (
    "import sys\n"
    "import coredino, torch\n"
    "from osgeo import gdal, gdal_array\n"
    "from coredino.cli import main\n"
    "print('coredino', coredino.__version__, 'from', coredino.__file__, '| torch', torch.__version__, "
    "'| GDAL', gdal.__version__)\n"
    "window = sys.argv[2] + '.vrt'\n"
    "gdal.Translate(window, sys.argv[1], format='VRT', srcWin=[0, 0, 384, 384])\n"
    "sys.exit(main(['classify', window, '-o', sys.argv[2]]))\n"
)


def shipped_file(name: str) -> Optional[Path]:
    """A file ``make package`` puts in the plugin zip, or its original in a source checkout."""
    for candidate in (PLUGIN_DIR / name, PLUGIN_DIR.parent / "resources" / name, PLUGIN_DIR.parent / name):
        if candidate.is_file():
            return candidate
    return None


def plugin_version() -> str:
    """The plugin's version (metadata.txt): the backend version it installs."""
    for path in (PLUGIN_DIR / "metadata.txt", PLUGIN_DIR.parent / "metadata.txt"):
        if path.is_file():
            for line in path.read_text(encoding="utf-8").splitlines():
                if line.startswith("version="):
                    return line.split("=", 1)[1].strip()
    return "0"


def env_root() -> Path:
    """``<user data folder>/coredino`` (QGIS's AppDataLocation), never the profile's plugin folder."""
    return Path(QStandardPaths.writableLocation(QStandardPaths.StandardLocation.AppDataLocation)) / "coredino"


def venv_python(venv: Path, system: Optional[str] = None) -> Path:
    if (system or platform.system()) == "Windows":
        return venv / "Scripts" / "python.exe"
    return venv / "bin" / "python"


def base_python_candidates(system: Optional[str] = None) -> list[Path]:
    """Pythons that can make the environment, best first (the first that imports GDAL is used)."""
    system = system or platform.system()
    if system == "Windows":  # OSGeo4W / standalone: <prefix>\apps\Python3x\python.exe (not run)
        return [Path(sys.exec_prefix) / "python.exe", Path(sys.prefix) / "python3.exe"]
    if system == "Darwin":  # QGIS.app/Contents/MacOS/bin/python3 (not run)
        return [Path(sys.prefix) / "bin" / "python3", Path(sys.exec_prefix) / "bin" / "python3"]
    found = shutil.which("python3")
    return [Path("/usr/bin/python3")] + ([Path(found)] if found else [])


def nvidia_gpu() -> str:
    """``NVIDIA H100, driver 550.54`` from nvidia-smi, or "" (no NVIDIA GPU or driver)."""
    program = shutil.which("nvidia-smi")
    if not program:
        return ""
    try:
        done = subprocess.run([program, "--query-gpu=name,driver_version", "--format=csv,noheader"],
                              capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return ""
    line = done.stdout.strip().splitlines()[0] if done.returncode == 0 and done.stdout.strip() else ""
    name, _, driver = line.partition(",")
    return f"{name.strip()}, driver {driver.strip()}" if line else ""


def torch_index(gpu: str, system: Optional[str] = None) -> Optional[str]:
    """The extra index for the right torch build; None: PyPI's default build is the right one.

    Linux: PyPI's torch is CUDA-enabled (runs on the CPU too, but weighs GBs more): the CPU index
    when there is no NVIDIA GPU. Windows: PyPI's torch is CPU-only: the CUDA index with a GPU.
    macOS: PyPI's torch runs on the CPU and on Apple GPUs (MPS, used with device ``auto``).
    """
    system = system or platform.system()
    if system == "Darwin":
        return None
    if gpu:
        return WINDOWS_CUDA_TORCH_INDEX if system == "Windows" else None
    return CPU_TORCH_INDEX


@dataclass
class Step:
    """One command of the set-up; ``title`` is shown while it runs."""

    title: str
    program: str
    args: list[str] = field(default_factory=list)


@dataclass
class SetupPlan:
    """What the set-up dialog runs: ``steps`` in order, then it saves ``python`` in Settings."""

    base_python: Path
    venv: Path
    bundle: Optional[Path] = None  # a folder of wheels (offline); None: PyPI
    torch_index: Optional[str] = None
    with_dependencies: bool = True  # False: the base Python already has torch & co (--no-deps)

    @property
    def python(self) -> Path:
        return venv_python(self.venv)

    @property
    def work(self) -> Path:
        """Where the verification writes its small classification (beside the environment)."""
        return self.venv.parent / "verify"

    def constraints(self) -> Optional[Path]:
        """The pins: the bundle's constraints.txt, else the plugin's copy."""
        if self.bundle is not None and (self.bundle / "constraints.txt").is_file():
            return self.bundle / "constraints.txt"
        return shipped_file("constraints.txt")

    def install_args(self) -> list[str]:
        args = ["-m", "pip", "install", "--disable-pip-version-check", "--progress-bar", "off"]
        constraints = self.constraints()
        if constraints is not None:
            args += ["-c", str(constraints)]
        if self.bundle is not None:
            args += ["--no-index", "--find-links", str(self.bundle)]
        elif self.torch_index:
            args += ["--extra-index-url", self.torch_index]
        if not self.with_dependencies:
            args += ["--no-deps", "--force-reinstall"]
        return args + [f"coredino=={plugin_version()}"]

    def steps(self) -> list[Step]:
        base = str(self.base_python)
        steps = [Step("Checking the Python", base, ["-c", "import sys; from osgeo import gdal; "
                                                          "print(sys.version.split()[0], 'GDAL', gdal.__version__)"])]
        if not self.python.is_file():
            steps.append(Step("Creating the environment", base, ["-m", "venv", "--system-site-packages",
                                                                  str(self.venv)]))
        steps.append(Step("Installing coredino and its dependencies" if self.with_dependencies
                          else "Installing coredino", str(self.python), self.install_args()))
        demo = shipped_file(DEMO_NAME)
        if demo is not None:
            steps.append(Step("Verifying: a small classification", str(self.python),
                              ["-c", VERIFY_SCRIPT, str(demo), str(self.work / "verify_classes.tif")]))
        return steps


def find_base_python(system: Optional[str] = None) -> Optional[Path]:
    """The first candidate that exists (the set-up's first step checks that it imports GDAL)."""
    return next((p for p in base_python_candidates(system) if p.is_file() and os.access(p, os.X_OK)), None)


def quoted(program: str, args: list[str]) -> str:
    """The command as a user would type it, for the log (Windows quoting on Windows)."""
    parts = [p if "\n" not in p else "<script>" for p in [program] + args]
    if platform.system() == "Windows":  # not run
        return subprocess.list2cmdline(parts)
    return " ".join(shlex.quote(p) for p in parts)
