#!/usr/bin/env bash
# Two-phase pre-training (NVIDIA's recipe): phase 1 at sequence length 128, then phase 2 at 512
# starting from phase 1's weights with a fresh optimizer and step
# (--init_checkpoint=OUTPUT_DIR/phase1/bert_model.ckpt). Each phase has its own output folder,
# OUTPUT_DIR/phase1 and OUTPUT_DIR/phase2, so each resumes on its own after an interruption.
#
# Usage: BERT_CONFIG=configs/bert_base.json INPUT_FILE_PHASE1='data/seq128/*.tfrecord' \
#          INPUT_FILE_PHASE2='data/seq512/*.tfrecord' OUTPUT_DIR=out \
#          scripts/run_pretraining_two_phase.sh [--dry-run] [-- FLAGS for both phases]
#   --dry-run  print both run_pretraining.py commands; run nothing.
#
# Environment [default]: NP ranks on this host [1], under LAUNCHER horovodrun|mpirun
# [horovodrun]; OPTIMIZER [lamb], PRECISION [fp16], XLA [1], PYTHON [.venv/bin/python or python3];
# per phase (steps, warmup and learning rates: NVIDIA's BERT LAMB recipe, which assumes a global
# batch NP x BATCH x ACCUM of 65536 then 32768, e.g. 8 x 64 x 128 then 8 x 8 x 512):
#   phase 1: SEQ1 [128] MAX_PRED1 [20] BATCH1 [64] ACCUM1 [1] STEPS1 [7038] WARMUP1 [2000]
#            LR1 [6e-3]
#   phase 2: SEQ2 [512] MAX_PRED2 [80] BATCH2 [8] ACCUM2 [1] STEPS2 [1563] WARMUP2 [200]
#            LR2 [4e-3]
# The data of each phase must be made with its SEQ and MAX_PRED (create_pretraining_data.py).
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=scripts/lib.sh
source "$repo/scripts/lib.sh"
parse_launcher_args "usage: $0 [--dry-run] [-- run_pretraining.py flags]  (see the header)" "$@"
cd "$repo"

NP="${NP:-1}"
LAUNCHER="${LAUNCHER:-horovodrun}"
OPTIMIZER="${OPTIMIZER:-lamb}"
PRECISION="${PRECISION:-fp16}"
XLA="${XLA:-1}"
if [[ -z "${PYTHON:-}" ]]; then
  if [[ -x .venv/bin/python ]]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi
if [[ "$PYTHON" == */* ]]; then PATH="$(dirname "$PYTHON"):$PATH"; fi
for name in INPUT_FILE_PHASE1 INPUT_FILE_PHASE2 OUTPUT_DIR; do
  if [[ -z "${!name:-}" ]]; then echo "$0: set $name (see the header of $0)" >&2; exit 2; fi
done
require_positive_int NP "$NP"
LAUNCH=()
USE_HOROVOD=False
if (( NP > 1 )); then
  horovod_launcher "$NP" "$LAUNCHER"
  USE_HOROVOD=True
fi
phases_dir="$OUTPUT_DIR"

# Phase 1: sequence length 128.
SEQ="${SEQ1:-128}" MAX_PRED="${MAX_PRED1:-20}" BATCH="${BATCH1:-64}" ACCUM="${ACCUM1:-1}"
STEPS="${STEPS1:-7038}" WARMUP="${WARMUP1:-2000}" LR="${LR1:-6e-3}"
INPUT_FILE="$INPUT_FILE_PHASE1" OUTPUT_DIR="$phases_dir/phase1"
pretraining_args
phase1=("${LAUNCH[@]}" "${PRETRAIN_ARGS[@]}")

# Phase 2: sequence length 512, from phase 1's exported weights.
SEQ="${SEQ2:-512}" MAX_PRED="${MAX_PRED2:-80}" BATCH="${BATCH2:-8}" ACCUM="${ACCUM2:-1}"
STEPS="${STEPS2:-1563}" WARMUP="${WARMUP2:-200}" LR="${LR2:-4e-3}"
INPUT_FILE="$INPUT_FILE_PHASE2" OUTPUT_DIR="$phases_dir/phase2"
EXTRA_FLAGS=(--init_checkpoint="$phases_dir/phase1/bert_model.ckpt"
             ${EXTRA_FLAGS[@]+"${EXTRA_FLAGS[@]}"})
pretraining_args
phase2=("${LAUNCH[@]}" "${PRETRAIN_ARGS[@]}")

run_or_print "${phase1[@]}"
run_or_print "${phase2[@]}"
