#!/usr/bin/env bash
# Pre-trains MODEL on the sample corpus on NP NVIDIA GPUs under mpirun (Horovod, NCCL) in the CUDA image
# (docker/Dockerfile.cuda) and prints the throughput: builds the image (or pulls IMAGE with
# PULL=1), then runs scripts/pretrain_sample.sh in a container with this repository mounted.
#
# Usage: scripts/run_model_in_cuda_hvd_docker.sh [--dry-run]
#   --dry-run  print the docker commands and the training commands run inside; run nothing.
# Settings by environment (defaults in docker_settings, scripts/docker_lib.sh): MODEL, SEQ, BATCH,
# STEPS, PRECISION, XLA, IMAGE, PULL; NP and LAUNCHER below.
set -euo pipefail

NP="${NP:-8}"                   # GPUs, one rank each
LAUNCHER="${LAUNCHER:-mpirun}"  # or horovodrun

# shellcheck source=scripts/docker_lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/docker_lib.sh"
docker_main cuda "$@"
