#!/usr/bin/env bash
# Pre-trains BERT across hosts: one Horovod rank per GPU, started by Open MPI's mpirun.
# Run it on the first host; every host needs the repository and PYTHON at the same paths
# (a shared filesystem, or the Docker images) and passwordless ssh between hosts.
#
# Usage: HOSTFILE=hosts.txt BERT_CONFIG=configs/bert_base.json INPUT_FILE='data/*.tfrecord' \
#          OUTPUT_DIR=/shared/out scripts/run_pretraining_multinode.sh [--dry-run] [-- FLAGS]
#   --dry-run  print the mpirun command; run nothing.
#   FLAGS      more run_pretraining.py flags, e.g. -- --save_checkpoints_steps=500
#
# Environment [default]:
#   HOSTFILE        Open MPI hostfile, one host per line ("node1 slots=8"); or HOSTS instead
#   HOSTS           comma-separated host names, e.g. node1,node2
#   SLOTS_PER_HOST  ranks (GPUs) per host [8]
#   NETWORK         ucx (InfiniBand/RoCE: -mca pml ucx) or tcp (-mca pml ob1 -mca btl tcp,self)
#                   [ucx]
#   BERT_CONFIG INPUT_FILE OUTPUT_DIR   required: run_pretraining.py's --bert_config_file,
#                   --input_file (comma-separated globs), --output_dir
#   SEQ [128]  MAX_PRED [20]  BATCH per rank [32]  ACCUM [1]  STEPS [1000000]  WARMUP [10000]
#   LR [1e-4]  OPTIMIZER adam|lamb|nadam|nlamb [adam]  PRECISION fp32|fp16|bf16 [fp16]  XLA [1]
#                   (Google's BERT-base recipe: global batch 256 = 8 ranks x 32)
#   PYTHON          the interpreter on every host [python]
#   MAX_RESTARTS    after a failure (a crash, a hang, a lost host), relaunch up to this many
#                   times on the hosts that still answer [0]; see "Restarts" below
#   PROBE_TIMEOUT_SECS  how long a host may take to answer the probe (ssh HOST true) [10]
# SIGTERM, SIGINT or SIGUSR1 sent to this script stops every rank at the same step, after rank
# 0 writes that step's checkpoint; the script then exits 143, 130 or 138 (see scripts/lib.sh).
#
# Restarts (MAX_RESTARTS > 0). Exit statuses 2 (a usage or configuration error) and 3 (a
# non-finite loss) are never retried, nor a stop asked for by a signal. After any other failure
# every host is probed; the job is relaunched on those that answer, resuming from the latest
# checkpoint in OUTPUT_DIR, with --num_accumulation_steps raised so that the global batch
# (BATCH x ranks x ACCUM) stays the same; when the ranks left do not divide it, the script stops
# and says which host counts would. Each restart is logged with its hosts, ranks and ACCUM.
# The input position is counted in global batches: the restarted ranks skip as many sequences
# as the job had consumed, each rank in its new share of the files (see README).
# Every NCCL_*, UCX_*, HOROVOD_* and TensorFlow (TF_CPP_*, TF_XLA_*, TF_GPU_*, TF_FORCE_*,
# TF_ENABLE_*, TF_NUM_*) variable set here is passed to all ranks (-x), with
# PATH, LD_LIBRARY_PATH and PYTHONPATH, e.g. NCCL_SOCKET_IFNAME=ib0 NCCL_IB_HCA=mlx5.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=scripts/lib.sh
source "$repo/scripts/lib.sh"
parse_launcher_args "usage: $0 [--dry-run] [-- run_pretraining.py flags]  (see the header)" "$@"
cd "$repo"

SLOTS_PER_HOST="${SLOTS_PER_HOST:-8}"
NETWORK="${NETWORK:-ucx}"
SEQ="${SEQ:-128}"
MAX_PRED="${MAX_PRED:-20}"
BATCH="${BATCH:-32}"
ACCUM="${ACCUM:-1}"
STEPS="${STEPS:-1000000}"
WARMUP="${WARMUP:-10000}"
LR="${LR:-1e-4}"
OPTIMIZER="${OPTIMIZER:-adam}"
PRECISION="${PRECISION:-fp16}"
XLA="${XLA:-1}"
PYTHON="${PYTHON:-python}"
USE_HOROVOD=True
require_positive_int SLOTS_PER_HOST "$SLOTS_PER_HOST"

MAX_RESTARTS="${MAX_RESTARTS:-0}"
PROBE_TIMEOUT_SECS="${PROBE_TIMEOUT_SECS:-10}"
[[ "$MAX_RESTARTS" =~ ^[0-9]+$ ]] || { echo "$0: MAX_RESTARTS must be >= 0" >&2; exit 2; }
require_positive_int PROBE_TIMEOUT_SECS "$PROBE_TIMEOUT_SECS"

# hosts_option HOST...: the mpirun option placing SLOTS_PER_HOST ranks on each host.
hosts_option() {
  hosts_flags=(-H "$(printf "%s:$SLOTS_PER_HOST," "$@" | sed 's/,$//')")
}

# Hosts: from HOSTFILE (comments and blank lines skipped; the first word of a line is the
# host) or HOSTS.
if [[ -n "${HOSTFILE:-}" ]]; then
  if [[ ! -f "$HOSTFILE" ]]; then echo "$0: HOSTFILE=$HOSTFILE does not exist" >&2; exit 2; fi
  mapfile -t host_list < <(grep -Ev '^[[:space:]]*(#|$)' "$HOSTFILE" | awk '{print $1}')
  num_hosts="${#host_list[@]}"
  hosts_flags=(--hostfile "$HOSTFILE")
elif [[ -n "${HOSTS:-}" ]]; then
  IFS=, read -r -a host_list <<< "$HOSTS"
  num_hosts="${#host_list[@]}"
  hosts_option "${host_list[@]}"
else
  echo "$0: set HOSTFILE (Open MPI hostfile) or HOSTS (comma-separated hosts)" >&2
  exit 2
fi
if (( num_hosts < 1 )); then echo "$0: no host in ${HOSTFILE:-HOSTS}" >&2; exit 2; fi
np=$(( num_hosts * SLOTS_PER_HOST ))

case "$NETWORK" in
  ucx) network_flags=(-mca pml ucx -mca btl ^openib) ;;
  tcp) network_flags=(-mca pml ob1 -mca btl "tcp,self") ;;
  *) echo "$0: NETWORK must be ucx or tcp, got '$NETWORK'" >&2; exit 2 ;;
esac
env_flags=(-x PATH -x LD_LIBRARY_PATH -x PYTHONPATH)
while IFS= read -r name; do
  env_flags+=(-x "$name")
done < <(compgen -e | grep -E '^(NCCL|UCX|HOROVOD)_|^TF_(CPP|XLA|GPU|FORCE|ENABLE|NUM)_' | sort)

pretraining_args
launch=(mpirun -np "$np" "${hosts_flags[@]}" -map-by "ppr:$SLOTS_PER_HOST:node" -bind-to none
        "${network_flags[@]}" "${env_flags[@]}")
if [[ "$DRY_RUN" == "1" ]]; then
  quote_command "${launch[@]}" "${PRETRAIN_ARGS[@]}"
  exit 0
fi

# reachable_hosts HOST...: prints the hosts that answer `ssh HOST true` in time, one a line.
reachable_hosts() {
  local host agent="${OMPI_MCA_plm_rsh_agent:-ssh}"
  for host in "$@"; do
    if timeout "$PROBE_TIMEOUT_SECS" "$agent" -o BatchMode=yes \
        -o ConnectTimeout="$PROBE_TIMEOUT_SECS" "$host" true >/dev/null 2>&1; then
      echo "$host"
    fi
  done
}

rank_batches=$(( np * ACCUM ))  # ranks x ACCUM: the global batch in units of BATCH
restarts=0
while true; do
  echo "+ $(quote_command "${launch[@]}" "${PRETRAIN_ARGS[@]}")" >&2
  status=0
  run_forwarding_signals "$OUTPUT_DIR" "${launch[@]}" "${PRETRAIN_ARGS[@]}" || status=$?
  case "$status" in
    0) exit 0 ;;
    2) echo "$0: a usage or configuration error (exit 2): not retried" >&2; exit 2 ;;
    3) echo "$0: a non-finite loss (exit 3): not retried" >&2; exit 3 ;;
  esac
  if [[ -n "$STOPPED_BY" ]]; then exit "$status"; fi  # stopped on purpose by a signal
  if (( restarts >= MAX_RESTARTS )); then
    (( MAX_RESTARTS == 0 )) || echo "$0: giving up after $restarts restarts (exit $status)" >&2
    exit "$status"
  fi
  restarts=$(( restarts + 1 ))
  mapfile -t alive < <(reachable_hosts "${host_list[@]}")
  if (( ${#alive[@]} == 0 )); then
    echo "$0: no host answers (${host_list[*]}): cannot restart" >&2
    exit "$status"
  fi
  new_np=$(( ${#alive[@]} * SLOTS_PER_HOST ))
  if (( rank_batches % new_np )); then
    echo "$0: ${#alive[@]} host(s) x $SLOTS_PER_HOST ranks cannot keep the global batch of" \
         "$(( rank_batches * BATCH )) sequences (BATCH=$BATCH): the ranks must divide" \
         "$rank_batches; relaunch by hand with a host count that does, or another BATCH" >&2
    exit "$status"
  fi
  old_hosts="${host_list[*]}" old_np="$np" old_accum="$ACCUM"
  host_list=("${alive[@]}")
  np="$new_np"
  ACCUM=$(( rank_batches / np ))
  echo "$0: restart $restarts of $MAX_RESTARTS after exit $status: hosts ${old_hosts// /,}" \
       "-> $(IFS=,; echo "${host_list[*]}"); ranks $old_np -> $np; --num_accumulation_steps" \
       "$old_accum -> $ACCUM (global batch $(( rank_batches * BATCH )) kept); resuming from" \
       "the latest checkpoint in $OUTPUT_DIR" >&2
  hosts_option "${host_list[@]}"
  pretraining_args
  launch=(mpirun -np "$np" "${hosts_flags[@]}" -map-by "ppr:$SLOTS_PER_HOST:node"
          -bind-to none "${network_flags[@]}" "${env_flags[@]}")
done
