#!/bin/bash
# Issue #15, stage 3 of the bundled default: dense distillation of the ImageNet MobileNetV2
# prior into YOLO11-n, starting from the stage-2 student (stage 1 distillation + stage 2 DINO; see
# docs/model-card.md for those two commands). Exact command of the shipped run; resumable
# (re-run the script after an interruption). Usage: [SCALE=n] [THREADS=2] [LR=5e-4] [CONTEXT=0.5] [CROP=256]
# tools/train_default.sh OUTDIR INIT|none STEPS
set -e
OUT=${1:-out/prior-stage3}; INIT=${2:-out/prior-stage2/coredino-n-student.pt}; STEPS=${3:-2500}; SCALE=${SCALE:-n}
S=${COREDINO_DATA:-../shared/data}
DATA="$S/scenes/oam_uruguay_montevideo_0p25m.tif $S/scenes/oam_bolivia_caranavi_drone_0p25m.tif
      $S/scenes/naip_north_dakota_2020_rgbn_5m.tif $S/scenes/naip_north_dakota_2009_rgbn_5m.tif
      $S/labelled/spacenet_roads/spacenet_las_vegas_pan_0p30m_image.tif"
INIT_OPT=""; [ "$INIT" != none ] && INIT_OPT="--init $INIT"
RESUME=""; [ -f "$OUT/checkpoint.pt" ] && RESUME=--resume
export HF_HUB_OFFLINE=1 YOLO_OFFLINE=1 YOLO_VERBOSE=False
exec nice -n 5 .venv/bin/coredino train $DATA -o "$OUT" --objective distill $INIT_OPT \
  --gsds 0.6,1.2,4.8 --scale "$SCALE" --layer 19 --steps "$STEPS" --batch-size 8 --crop "${CROP:-256}" --lr "${LR:-5e-4}" \
  --warmup-steps 100 --context-window "${CONTEXT:-0.5}" --threads "${THREADS:-2}" --checkpoint-every 50 --log-every 10 --calib-batches 32 --seed 1 $RESUME
