#!/usr/bin/env bash
# Screenshot sequence of a first-time user (docs/install.md): a clean QGIS profile, the plugin from
# its zip, the backend set up from a local folder of wheels with the network cut off (a network
# namespace with only loopback), the first classification. Output: out/setup-shots/ (PNGs,
# status.json with timings, setup_log.txt, diagnostics.txt). Needs `make package`, `make
# offline-bundle`, xvfb-run and root (unshare -n). Usage: tools/setup_screenshots.sh [BUNDLE_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
BUNDLE=$(realpath "${1:-$(ls -d dist/offline-*/ | head -1)}")
ZIP=$(realpath dist/coredino_qgis-*.zip)
WORK=$(mktemp -d /tmp/coredino-setup-XXXX)
SHOTS=$PWD/out/setup-shots
rm -rf "$SHOTS" && mkdir -p "$SHOTS" "$WORK/profiles/default/python/plugins" "$WORK/profiles/default/QGIS" "$WORK/xdg"
chmod 700 "$WORK/xdg"
python3 -c "import zipfile, sys; zipfile.ZipFile(sys.argv[1]).extractall(sys.argv[2])" "$ZIP" "$WORK/profiles/default/python/plugins"
printf '[PythonPlugins]\ncoredino_qgis=true\n\n[qgis]\ncheckVersion=false\nshowTips=false\nallowVersionCheck=false\n' \
  > "$WORK/profiles/default/QGIS/QGIS3.ini"
echo "profile $WORK, bundle $BUNDLE"
env -u QT_QPA_PLATFORM -u PYTHONPATH -u VIRTUAL_ENV HOME="$WORK/home" XDG_DATA_HOME="$WORK/data" \
  XDG_RUNTIME_DIR="$WORK/xdg" COREDINO_CACHE="$WORK/cache" PIP_CONFIG_FILE=/dev/null \
  COREDINO_SHOTS="$SHOTS" COREDINO_BUNDLE="$BUNDLE" COREDINO_DEMO="$PWD/resources/montevideo_0p25m_demo.tif" \
  unshare -n sh -c 'ip link set lo up; exec xvfb-run -a -s "-screen 0 1600x1000x24" qgis --nologo --noversioncheck \
    --profiles-path "$0" --code "$1"' "$WORK" "$PWD/tools/setup_desktop_script.py"
cat "$SHOTS/status.json"
