# Shared by scripts/run_model_in_{cuda,rocm}[_hvd]_docker.sh (sourced, not run): the settings,
# the device flags of each GPU kind, building or pulling the image and running
# scripts/pretrain_sample.sh in a container with the repository mounted. A script sets NP and
# LAUNCHER (one GPU, or NP ranks under Horovod), sources this file and calls
# docker_main KIND "$@".
# shellcheck shell=bash

# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# Where the images (docker/Dockerfile.*) put the interpreter and the vocab, and where the
# repository is mounted.
readonly IMAGE_PYTHON=/opt/bert/venv/bin/python
readonly IMAGE_VOCAB=/opt/bert/vocab.txt
readonly CONTAINER_REPO=/workspace/bert

# docker_pretrain KIND: KIND is cuda or rocm (docker/Dockerfile.KIND).
docker_pretrain() {
  local kind="$1" repo
  repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
  # The container's environment for scripts/pretrain_sample.sh; the dry run replays it here.
  local container_env=(MODEL="$MODEL" SEQ="$SEQ" BATCH="$BATCH" STEPS="$STEPS"
                       PRECISION="$PRECISION" XLA="$XLA" NP="$NP" LAUNCHER="$LAUNCHER"
                       PYTHON="$IMAGE_PYTHON" VOCAB="$IMAGE_VOCAB")
  if [[ -n "${OUTPUT_DIR:-}" ]]; then container_env+=(OUTPUT_DIR="$OUTPUT_DIR"); fi
  local env_flags=() assignment
  for assignment in "${container_env[@]}"; do env_flags+=(-e "$assignment"); done

  local get_image
  if [[ "$PULL" == "1" ]]; then
    get_image=(docker pull "$IMAGE")
  else
    get_image=(docker build -f "$repo/docker/Dockerfile.$kind" -t "$IMAGE" "$repo")
  fi
  local run_container=(docker run --rm "${DEVICE_FLAGS[@]}"
                       -v "$repo:$CONTAINER_REPO" -w "$CONTAINER_REPO" "${env_flags[@]}"
                       "$IMAGE" scripts/pretrain_sample.sh)

  if [[ "$DRY_RUN" == "1" ]]; then
    quote_command "${get_image[@]}"
    quote_command "${run_container[@]}"
    echo "# inside the container, scripts/pretrain_sample.sh runs:"
    env "${container_env[@]}" "$repo/scripts/pretrain_sample.sh" --dry-run
    return
  fi
  if ! command -v docker >/dev/null 2>&1; then
    echo "$(basename "$0"): docker is not installed (try --dry-run to see the commands)" >&2
    exit 1
  fi
  run_or_print "${get_image[@]}"
  run_or_print "${run_container[@]}"
}

# docker_settings KIND: the settings every script shares; each can be overridden from the
# environment.
docker_settings() {
  local kind="$1"
  MODEL="${MODEL:-bert_base}"     # configs/$MODEL.json: bert_tiny ... bert_base, bert_large
  SEQ="${SEQ:-128}"               # max_seq_length
  BATCH="${BATCH:-32}"            # sequences per GPU per step
  STEPS="${STEPS:-100}"           # optimizer steps; the first one compiles and is not timed
  PRECISION="${PRECISION:-fp16}"  # fp32, fp16 or bf16
  XLA="${XLA:-1}"                 # 1: --use_xla
  IMAGE="${IMAGE:-bert-tf2:$kind}"
  PULL="${PULL:-0}"               # 1: docker pull $IMAGE instead of building it
  case "$kind" in
    cuda)
      DEVICE_FLAGS=(--gpus all --ipc=host --ulimit memlock=-1 --ulimit stack=67108864) ;;
    rocm)
      SHM_SIZE="${SHM_SIZE:-16G}"   # /dev/shm for the data pipeline and RCCL
      DEVICE_FLAGS=(--device=/dev/kfd --device=/dev/dri --group-add video --ipc=host
                    --shm-size="$SHM_SIZE" --security-opt seccomp=unconfined) ;;
    *) echo "docker_settings: unknown kind '$kind' (cuda or rocm)" >&2; exit 2 ;;
  esac
}

# docker_main KIND "$@": a run_model_in_KIND*_docker.sh script, once it has set NP and LAUNCHER.
docker_main() {
  local kind="$1"
  shift
  docker_settings "$kind"
  parse_dry_run "usage: $0 [--dry-run]  (settings by environment, see the header)" "$@"
  docker_pretrain "$kind"
}
