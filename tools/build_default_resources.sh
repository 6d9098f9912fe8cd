#!/usr/bin/env bash
# Rebuild the bundled default weights and codebook from the development data set (../shared/data),
# the exact recipe of docs/model-card.md (issue #15): three YOLO11-n stages on the unlabelled scenes
# (none of them is an image `coredino eval` scores on), then a 6000-cluster codebook.
#   1. dense distillation of the ImageNet MobileNetV2 prior (450 steps),
#   2. the self-supervised core-dino (DINO) objective from it (400 steps),
#   3. distillation with the context window from it (tools/train_default.sh, 2500 steps),
# then the codebook of its layer-16 features on the two 0.25 m scenes.
# Each stage resumes from its checkpoint when re-run. About 1.5-2 h on 2 CPU cores.
set -euo pipefail
cd "$(dirname "$0")/.."
D=${SHARED_DATA:-../shared/data}
export HF_HUB_OFFLINE=1 YOLO_OFFLINE=1 YOLO_VERBOSE=False
DATA="$D/scenes/oam_uruguay_montevideo_0p25m.tif $D/scenes/oam_bolivia_caranavi_drone_0p25m.tif
      $D/scenes/naip_north_dakota_2020_rgbn_5m.tif $D/scenes/naip_north_dakota_2009_rgbn_5m.tif
      $D/labelled/spacenet_roads/spacenet_las_vegas_pan_0p30m_image.tif"
resume() { [ -f "$1/checkpoint.pt" ] && echo --resume || true; }
# shellcheck disable=SC2086
.venv/bin/coredino train $DATA -o out/prior-stage1 --objective distill --gsds 0.6,1.2,4.8 --scale n \
  --layer 19 --steps 450 --batch-size 8 --crop 192 --lr 1e-3 --threads 2 --checkpoint-every 25 \
  --log-every 5 --calib-batches 32 --seed 0 $(resume out/prior-stage1)
# shellcheck disable=SC2086
.venv/bin/coredino train $DATA -o out/prior-stage2 --init out/prior-stage1/coredino-n-student.pt \
  --gsds 0.6,1.2,4.8 --scale n --layer 19 --steps 400 --batch-size 8 --crop 192 --lr 2e-4 \
  --out-dim 1024 --hidden-dim 512 --warmup-steps 40 --threads 2 --checkpoint-every 25 --log-every 5 \
  --calib-batches 32 --seed 0 $(resume out/prior-stage2)
THREADS=1 CROP=256 CONTEXT=0.5 tools/train_default.sh out/prior-stage3 out/prior-stage2/coredino-n-student.pt 2500
cp out/prior-stage3/coredino-n-student.pt backend/coredino/resources/coredino-n-default.pt
.venv/bin/coredino fit-codebook "$D/scenes/oam_uruguay_montevideo_0p25m.tif" \
  "$D/scenes/oam_bolivia_caranavi_drone_0p25m.tif" -o backend/coredino/resources/coredino-n-default.codebook.npz \
  --model core-dino:n --weights backend/coredino/resources/coredino-n-default.pt --layer 16 --tile 48 --border 6 \
  --gsd 0.25 --k 6000 --seed 0
