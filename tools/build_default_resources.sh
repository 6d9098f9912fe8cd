#!/usr/bin/env bash
# Rebuild the bundled default weights and codebook from the development data set (../shared/data):
# a short self-supervised core-dino run (YOLO11-n) on two scenes, then a 6000-cluster codebook on
# the same two scenes; neither is a building scene `coredino eval` scores on (docs/model-card.md).
set -euo pipefail
cd "$(dirname "$0")/.."
D=${SHARED_DATA:-../shared/data}
.venv/bin/coredino train "$D/scenes/oam_uruguay_montevideo_0p25m.tif" \
  "$D/scenes/oam_bolivia_caranavi_drone_0p25m.tif" -o out/train --scale n --steps 1200 \
  --batch-size 16 --crop 256 --layer 19 --out-dim 1024 --hidden-dim 512 --threads 2 \
  --checkpoint-every 100 --log-every 10 --calib-batches 32 --seed 0
cp out/train/coredino-n-student.pt backend/coredino/resources/coredino-n-default.pt
.venv/bin/coredino fit-codebook "$D/scenes/oam_uruguay_montevideo_0p25m.tif" \
  "$D/scenes/oam_bolivia_caranavi_drone_0p25m.tif" -o backend/coredino/resources/coredino-n-default.codebook.npz \
  --model core-dino:n --weights backend/coredino/resources/coredino-n-default.pt --layer 16 --tile 48 --border 6 \
  --gsd 0.25 --k 6000 --seed 0
