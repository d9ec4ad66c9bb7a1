# Shared by scripts/run_model_in_{cuda,rocm}[_hvd]_docker.sh (sourced, not run): builds or
# pulls the image and runs scripts/pretrain_sample.sh in a container with the repository
# mounted. The caller sets MODEL SEQ BATCH STEPS PRECISION XLA NP LAUNCHER IMAGE PULL and the
# array DEVICE_FLAGS, sources scripts/lib.sh, then calls docker_pretrain KIND.
# shellcheck shell=bash

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
