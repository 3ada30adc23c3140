#!/usr/bin/env bash
# Train the two bundled models from scratch on synthetic data, resumably: generate the data once on every core,
# then the region model (Mobile Parsing R-CNN (B), DensePose + parts) and the whole-body network, then score both
# on the held-out set and write the release copies. Run it again after an interruption: finished steps are
# skipped, an interrupted synth or training run resumes. On a GPU machine `densehuman train` uses CUDA by itself.
#
#   scripts/train_bundled_models.sh [WORK_DIR] [IMAGES] [REGION_ITERS] [WHOLEBODY_ITERS] [SIZE]
#
# Defaults (about what a GPU run of an hour or two needs): work/, 20000 images of 512 px, 30000 and 50000 iterations.
# The CPU runs behind the bundled models used 1000 images of 256 px, 2200 and 1000 iterations.
set -euo pipefail
WORK=${1:-work}
IMAGES=${2:-20000}
REGION_ITERS=${3:-30000}
WHOLEBODY_ITERS=${4:-50000}
SIZE=${5:-512}
DH=${DH:-densehuman}
HELDOUT_IMAGES=${HELDOUT_IMAGES:-240}  # the held-out set: seed 2026, 512 px, half of it scored
mkdir -p "$WORK"
DATA="$WORK/synth"

if [ ! -f "$DATA/dataset.json" ]; then
  if [ -d "$DATA" ]; then resume=--resume; else resume=; fi
  $DH synth --out "$DATA" --images "$IMAGES" --seed 42 --size "$SIZE" "$SIZE" --max-people 4 $resume
fi

train() {  # preset, run folder, iterations, extra --set values
  local preset=$1 run=$2 iters=$3
  shift 3
  local steps="[$((iters * 8 / 10)),$((iters * 95 / 100))]"
  if [ -f "$run/last_checkpoint" ]; then
    $DH train --preset "$preset" --data "$DATA" --out "$run" --resume \
      --set solver.max_iter="$iters" "solver.steps=$steps" "$@"
  elif [ ! -d "$run" ]; then
    $DH train --preset "$preset" --data "$DATA" --out "$run" --set solver.max_iter="$iters" "solver.steps=$steps" "$@"
  else
    echo "$run exists without a checkpoint: remove it to start again" >&2
    exit 1
  fi
}

if [ ! -f "$WORK/region/model_final.done" ]; then
  train mobile_parsing_rcnn_b_cpu "$WORK/region" "$REGION_ITERS" solver.checkpoint_period=1000
  touch "$WORK/region/model_final.done"
fi
if [ ! -f "$WORK/wholebody/model_final.done" ]; then
  train body135_cpu "$WORK/wholebody" "$WHOLEBODY_ITERS" solver.checkpoint_period=1000 solver.eval_period=5000
  touch "$WORK/wholebody/model_final.done"
fi

region=$WORK/region/$(cat "$WORK/region/last_checkpoint")
wholebody=$WORK/wholebody/$(cat "$WORK/wholebody/last_checkpoint")
${PYTHON:-python} "$(dirname "$0")/../benchmarks/heldout_eval.py" --data "$WORK/heldout512" --out "$WORK/heldout" \
  --images "$HELDOUT_IMAGES" \
  --region-model "$region" --wholebody-model "$wholebody"
echo "region model: $region"
echo "whole-body model: $wholebody"
