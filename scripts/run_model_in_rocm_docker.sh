#!/usr/bin/env bash
# Pre-trains MODEL on the sample corpus on one AMD GPU in the ROCm image
# (docker/Dockerfile.rocm) and prints the throughput: builds the image (or pulls IMAGE with
# PULL=1), then runs scripts/pretrain_sample.sh in a container with this repository mounted.
#
# Usage: scripts/run_model_in_rocm_docker.sh [--dry-run]
#   --dry-run  print the docker commands and the training commands run inside; run nothing.
# Settings by environment (defaults in docker_settings, scripts/docker_lib.sh): MODEL, SEQ, BATCH,
# STEPS, PRECISION, XLA, IMAGE, PULL, SHM_SIZE.
set -euo pipefail

NP=1                            # one GPU
LAUNCHER=horovodrun             # unused with NP=1

# shellcheck source=scripts/docker_lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/docker_lib.sh"
docker_main rocm "$@"
