#!/usr/bin/env bash
# Rebuild the bundled default weights and codebook from the development data set (../shared/data).
# Stand-ins until the training issue ships trained core-dino weights; see resources/ATTRIBUTION.md.
set -euo pipefail
cd "$(dirname "$0")/.."
D=${SHARED_DATA:-../shared/data}
B=$D/labelled/oam_osm_buildings
SCENES="$D/scenes/oam_uruguay_montevideo_0p25m.tif $D/scenes/oam_bolivia_caranavi_drone_0p25m.tif
  $B/nairobi_kenya_patch1_0p30m_image.tif $B/kathmandu_valley_nepal_patch1_0p30m_image.tif"
.venv/bin/python tools/build_default_model.py resources/coredino-n-default.pt $SCENES
.venv/bin/coredino fit-codebook $SCENES $B/nairobi_kenya_patch2_0p30m_image.tif \
  $B/kathmandu_valley_nepal_patch2_0p30m_image.tif $B/kampala_uganda_patch1_0p30m_image.tif \
  -o resources/coredino-n-default.codebook.npz --model core-dino:n \
  --weights resources/coredino-n-default.pt --layer 19 --k 6000 --seed 0
