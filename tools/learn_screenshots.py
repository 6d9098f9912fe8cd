"""Screenshots of the explore dock's click-learn-reclick loop and of the 16-group legend, in the
REAL QGIS desktop under Xvfb with a real backend.

    PYTHONPATH=backend .venv/bin/python tools/learn_screenshots.py [--out out/learn_shots]

Classifies the demo scene with embeddings (once), starts `coredino serve` on a free port, installs
the plugin in a fresh QGIS profile pointed at it, and runs tools/learn_desktop_script.py in
`xvfb-run qgis`: out/learn_shots/learn.png (learned map, legend, Learn tab with the accuracies) and
out/learn_shots/levels16.png (the map at 16 groups and its legend); status.json says what happened.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import vendor_contract  # noqa: E402

SOURCE = ROOT / "resources" / "montevideo_0p25m_demo.tif"
# demo classification cells (column, row) of 2 m: examples per class, then the corrective clicks
CLICKS = {"roof": [(95, 45), (110, 80), (130, 108), (150, 20), (165, 85), (155, 160)],
          "grass": [(30, 40), (60, 105), (10, 155), (40, 110), (50, 60)],
          "trees": [(128, 60), (125, 12), (170, 45), (25, 145)],
          "paved": [(85, 150), (82, 75), (55, 30), (115, 160)],
          "bare soil": [(50, 130), (50, 160)]}
MORE = {"paved": [(70, 135), (100, 150)], "roof": [(100, 10)]}


def to_map(classes: Path, cells: dict) -> dict:
    from osgeo import gdal
    gt = gdal.Open(str(classes)).GetGeoTransform()
    return {name: [[gt[0] + (c + 0.5) * gt[1], gt[3] + (r + 0.5) * gt[5]] for c, r in xys]
            for name, xys in cells.items()}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", default=str(ROOT / "out" / "learn_shots"))
    args = parser.parse_args()
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, PYTHONPATH=str(ROOT / "backend"), HF_HUB_OFFLINE="1", YOLO_OFFLINE="1")
    python = str(ROOT / ".venv" / "bin" / "python")
    classes = out / "demo_classes.tif"
    if not classes.exists():
        subprocess.run([python, "-m", "coredino.cli", "classify", str(SOURCE), "-o", str(classes), "--embeddings"],
                       env=env, check=True)
    shutil.rmtree(out / "demo_classes_levels", ignore_errors=True)
    (out / "clicks.json").write_text(json.dumps(to_map(classes, CLICKS)))
    (out / "more.json").write_text(json.dumps(to_map(classes, MORE)))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    token = out / "token"
    serve = subprocess.Popen([python, "-m", "coredino.cli", "serve", "--port", str(port), "--token-file", str(token)],
                             env=env, stdout=open(out / "serve.log", "wb"), stderr=subprocess.STDOUT)
    try:
        for _ in range(600):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/health", timeout=1)
                break
            except OSError:
                time.sleep(0.5)
        profiles = out / "qgis"
        shutil.rmtree(profiles, ignore_errors=True)
        plugin = profiles / "profiles" / "default" / "python" / "plugins" / "coredino_qgis"
        vendor_contract.vendor()
        shutil.copytree(ROOT / "coredino_qgis", plugin, ignore=shutil.ignore_patterns("__pycache__"))
        shutil.copy(ROOT / "metadata.txt", plugin / "metadata.txt")
        ini = profiles / "profiles" / "default" / "QGIS" / "QGIS3.ini"
        ini.parent.mkdir(parents=True)
        ini.write_text(f"[PythonPlugins]\ncoredino_qgis=true\n\n[coredino]\nurl=http://127.0.0.1:{port}\n"
                       f"token_file={token}\npython=\n\n[qgis]\ncheckVersion=false\nshowTips=false\n"
                       "allowVersionCheck=false\n", encoding="utf-8")
        runtime = out / "xdg"
        runtime.mkdir(mode=0o700, exist_ok=True)
        status = out / "status.json"
        status.unlink(missing_ok=True)
        qenv = dict(os.environ, XDG_RUNTIME_DIR=str(runtime), COREDINO_SHOT_SOURCE=str(SOURCE),
                    COREDINO_SHOT_CLASSES=str(classes), COREDINO_SHOT_CLICKS=str(out / "clicks.json"),
                    COREDINO_SHOT_MORE=str(out / "more.json"), COREDINO_SHOT_OUT=str(out),
                    COREDINO_SHOT_STATUS=str(status))
        for name in ("QT_QPA_PLATFORM", "QGIS_CUSTOM_CONFIG_PATH", "PYTHONPATH"):
            qenv.pop(name, None)
        subprocess.run(["xvfb-run", "-a", "-s", "-screen 0 1600x1000x24", "qgis", "--nologo", "--noversioncheck",
                        "--profiles-path", str(profiles), "--code", str(ROOT / "tools" / "learn_desktop_script.py")],
                       env=qenv, timeout=600, capture_output=True)
        print(status.read_text() if status.exists() else "no status written")
    finally:
        serve.terminate()
        serve.wait(15)
    return 0


if __name__ == "__main__":
    sys.exit(main())
