#!/usr/bin/env bash
# Every benchmark, one command: installs the peers (bench/requirements.txt: PyTorch CPU,
# Hugging Face transformers and tokenizers) into the project's venv, runs tokenization,
# pre-training data, pre-training step, inference, fine-tuning and features on real text, and
# scaling, and prints one Markdown table
# (bench/summary.py) of each benchmark's last `key=value` line, with the date and machine.
# Logs go to output/bench/NAME.log, the table to output/bench/table.md.
#
# Usage: bench/run_all.sh [--dry-run] [--skip-install]
#   --dry-run       print the commands; run nothing.
#   --skip-install  use the venv as it is.
# Environment: BERT_VENV, the venv scripts/setup.sh made [<repo>/.venv].
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=scripts/lib.sh
source "$repo/scripts/lib.sh"
usage="usage: $0 [--dry-run] [--skip-install]"
skip_install=0
for arg in "$@"; do
  case "$arg" in
    --dry-run) DRY_RUN=1 ;;
    --skip-install) skip_install=1 ;;
    -h|--help) echo "$usage"; exit 0 ;;
    *) echo "$0: unknown argument '$arg'" >&2; echo "$usage" >&2; exit 2 ;;
  esac
done
cd "$repo"
venv="${BERT_VENV:-$repo/.venv}"
python="$venv/bin/python"
if [[ "$DRY_RUN" != "1" && ! -x "$python" ]]; then
  echo "$0: no $python: run scripts/setup.sh first" >&2
  exit 2
fi
if [[ "$DRY_RUN" != "1" && ! -f bench/requirements.txt ]]; then
  echo "$0: bench/requirements.txt is missing" >&2
  exit 2
fi

if [[ "$skip_install" == "0" ]]; then
  # PyTorch first and on its own, the CPU build at the pinned version (a local wheel when pip
  # has one through PIP_FIND_LINKS), so resolving transformers never pulls a CUDA build.
  torch_pin="$(grep -sE '^torch==' bench/requirements.txt || echo torch==2.13.0)"
  run_or_print "$venv/bin/pip" install --quiet --disable-pip-version-check "$torch_pin"
  run_or_print "$venv/bin/pip" install --quiet --disable-pip-version-check \
    -r bench/requirements.txt
fi

logs=output/bench
benchmarks=(tokenization:bench/bench_tokenization.py
            pretraining_data:bench/bench_pretraining_data.py
            pretraining_step:bench/bench_pretraining.py
            inference:bench/bench_inference.py
            finetuning:bench/bench_finetuning.py
            features:bench/bench_features.py
            scaling:bench/bench_scaling.py)
summary_args=()
[[ "$DRY_RUN" == "1" ]] || mkdir -p "$logs"
for entry in "${benchmarks[@]}"; do
  name="${entry%%:*}" script="${entry#*:}"
  summary_args+=("$name=$logs/$name.log")
  if [[ "$DRY_RUN" == "1" ]]; then
    quote_command "$python" "$script"
    continue
  fi
  echo "=== $name: $script (log: $logs/$name.log)" >&2
  # A failing benchmark is reported in the table (and the exit status), not fatal here.
  "$python" "$script" 2>&1 | tee "$logs/$name.log" || true
done
if [[ "$DRY_RUN" == "1" ]]; then
  quote_command "$python" bench/summary.py --gemm "${summary_args[@]}"
  exit 0
fi
status=0
"$python" bench/summary.py --gemm "${summary_args[@]}" | tee "$logs/table.md" || status=$?
exit "$status"
