#!/usr/bin/env bash
# Pre-trains MODEL on the sample corpus on one NVIDIA GPU in the CUDA image
# (docker/Dockerfile.cuda) and prints the throughput: builds the image (or pulls IMAGE with
# PULL=1), then runs scripts/pretrain_sample.sh in a container with this repository mounted.
#
# Usage: scripts/run_model_in_cuda_docker.sh [--dry-run]
#   --dry-run  print the docker commands and the training commands run inside; run nothing.
set -euo pipefail

# Settings; each can be overridden from the environment.
MODEL="${MODEL:-bert_base}"     # configs/$MODEL.json: bert_tiny ... bert_base, bert_large
SEQ="${SEQ:-128}"               # max_seq_length
BATCH="${BATCH:-32}"            # sequences per GPU per step
STEPS="${STEPS:-100}"           # optimizer steps; the first one compiles and is not timed
PRECISION="${PRECISION:-fp16}"  # fp32, fp16 or bf16
XLA="${XLA:-1}"                 # 1: --use_xla
NP=1                            # one GPU
LAUNCHER=horovodrun             # unused with NP=1
IMAGE="${IMAGE:-bert-tf2:cuda}"
PULL="${PULL:-0}"               # 1: docker pull $IMAGE instead of building it

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=scripts/lib.sh
source "$repo/scripts/lib.sh"
# shellcheck source=scripts/docker_lib.sh
source "$repo/scripts/docker_lib.sh"
parse_dry_run "usage: $0 [--dry-run]  (settings by environment, see the header)" "$@"

DEVICE_FLAGS=(--gpus all --ipc=host --ulimit memlock=-1 --ulimit stack=67108864)
docker_pretrain cuda
