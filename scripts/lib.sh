# Shared by the launch scripts in scripts/ (sourced, not run): --dry-run handling, printing
# commands as they would be typed, and the Horovod launcher prefix. Keeping it in one place is
# what makes a printed dry-run command identical to the command a real run executes.
# shellcheck shell=bash

# Set by parse_dry_run: 1 when the script was given --dry-run.
DRY_RUN=0
# Set by run_forwarding_signals: the stop signal it passed on, if any.
# shellcheck disable=SC2034  # read by the scripts that source this file
STOPPED_BY=""

# parse_dry_run USAGE "$@": accepts only --dry-run and -h/--help.
parse_dry_run() {
  local usage="$1"
  shift
  local arg
  for arg in "$@"; do
    case "$arg" in
      --dry-run) DRY_RUN=1 ;;
      -h|--help) echo "$usage"; exit 0 ;;
      *) echo "$(basename "$0"): unknown argument '$arg'" >&2; echo "$usage" >&2; exit 2 ;;
    esac
  done
}

# quote_command WORD...: prints the words as one shell line; words with characters outside a
# safe set are single-quoted, so the line can be pasted back into a shell.
quote_command() {
  local out=() word
  for word in "$@"; do
    if [[ -n "$word" && "$word" =~ ^[A-Za-z0-9_./:=,+@%^-]+$ ]]; then
      out+=("$word")
    else
      out+=("'${word//\'/\'\\\'\'}'")
    fi
  done
  echo "${out[*]}"
}

# run_or_print WORD...: with --dry-run prints the command on stdout; otherwise echoes it on
# stderr (prefixed with "+ ") and runs it.
run_or_print() {
  if [[ "$DRY_RUN" == "1" ]]; then
    quote_command "$@"
  else
    echo "+ $(quote_command "$@")" >&2
    "$@"
  fi
}

# run_forwarding_signals OUTPUT_DIR WORD...: runs the launcher command (mpirun or horovodrun)
# as a child and turns SIGTERM, SIGINT and SIGUSR1 sent to this script (by a scheduler, kill
# or Ctrl-C) into a stop request for every rank. mpirun gets SIGUSR1 for SIGUSR1 and SIGUSR2
# for the others: the two signals it forwards to all ranks without killing the job (on SIGTERM
# it kills the ranks within a second, before they can checkpoint). horovodrun gets SIGTERM
# (SIGINT for SIGINT), which it passes on to its ranks, killing them 5 s later. Any rank's signal stops
# all: they agree on a step, rank 0 checkpoints it, all exit. Then this prints "stopped by
# SIG... at step N; checkpoint ckpt-N" from OUTPUT_DIR's checkpoint state file and returns
# 128 + the signal received (143, 130, 138), else the command's exit status. Sets STOPPED_BY
# to the signal's name (TERM, INT, USR1), or empty.
run_forwarding_signals() {
  local output_dir="$1" child status received="" stop_as=TERM interrupt_as=INT usr1_as=TERM
  shift
  if [[ "$(basename "$1")" == "mpirun" ]]; then stop_as=USR2 interrupt_as=USR2 usr1_as=USR1; fi
  "$@" &
  child=$!
  trap 'received=TERM; kill -"$stop_as" "$child" 2>/dev/null' TERM
  trap 'received=INT; kill -"$interrupt_as" "$child" 2>/dev/null' INT
  trap 'received=USR1; kill -"$usr1_as" "$child" 2>/dev/null' USR1
  # wait returns early (> 128) when a trapped signal arrives: wait again until the child exits.
  while true; do
    status=0
    wait "$child" || status=$?
    kill -0 "$child" 2>/dev/null || break
  done
  trap - TERM INT USR1
  # shellcheck disable=SC2034  # read by the scripts that source this file
  STOPPED_BY="$received"
  if [[ -z "$received" ]]; then
    return "$status"
  fi
  local checkpoint
  checkpoint="$(sed -n 's/^model_checkpoint_path: "\(.*\)"$/\1/p' "$output_dir/checkpoint" \
                2>/dev/null || true)"
  echo "stopped by SIG$received at step ${checkpoint#ckpt-}; checkpoint ${checkpoint:-none}" >&2
  return $(( 128 + $(kill -l "$received") ))
}

# require_positive_int NAME VALUE: exits with a message naming the variable otherwise.
require_positive_int() {
  if ! [[ "$2" =~ ^[1-9][0-9]*$ ]]; then
    echo "$(basename "$0"): $1 must be a positive integer, got '$2'" >&2
    exit 2
  fi
}

# horovod_launcher NP LAUNCHER: fills the array LAUNCH with the prefix that starts NP local
# ranks. LAUNCHER=horovodrun (Gloo or MPI, whichever Horovod picks) or mpirun (Open MPI; the
# form the ROCm fork and NVIDIA's scripts use, with the environment the ranks need).
# shellcheck disable=SC2034  # LAUNCH is this function's output
horovod_launcher() {
  local np="$1" launcher="$2"
  case "$launcher" in
    horovodrun) LAUNCH=(horovodrun -np "$np" -H "localhost:$np") ;;
    mpirun)
      LAUNCH=(mpirun -np "$np" -H "localhost:$np" -bind-to none -map-by slot
              -x NCCL_DEBUG -x LD_LIBRARY_PATH -x PATH
              -mca pml ob1 -mca btl ^openib) ;;
    *) echo "$(basename "$0"): LAUNCHER must be horovodrun or mpirun, got '$launcher'" >&2
       exit 2 ;;
  esac
}

# pretraining_args: fills the array PRETRAIN_ARGS with run_pretraining.py and its flags from
# the variables BERT_CONFIG INPUT_FILE OUTPUT_DIR (required) and SEQ MAX_PRED BATCH ACCUM STEPS
# WARMUP LR OPTIMIZER PRECISION XLA USE_HOROVOD PYTHON (and PROGRAM, a script that takes
# run_pretraining.py's flags, e.g. the tests' instrumented one), for the real-data launchers
# (multinode, SLURM, two-phase). Flags after them come from the array EXTRA_FLAGS.
# shellcheck disable=SC2034  # PRETRAIN_ARGS is this function's output
pretraining_args() {
  local name
  for name in BERT_CONFIG INPUT_FILE OUTPUT_DIR; do
    if [[ -z "${!name:-}" ]]; then
      echo "$(basename "$0"): set $name (see the header of $0)" >&2
      exit 2
    fi
  done
  for name in SEQ MAX_PRED BATCH ACCUM STEPS; do require_positive_int "$name" "${!name}"; done
  local use_xla
  case "$XLA" in 0) use_xla=False ;; 1) use_xla=True ;; *)
    echo "$(basename "$0"): XLA must be 0 or 1, got '$XLA'" >&2; exit 2 ;;
  esac
  PRETRAIN_ARGS=("$PYTHON" "${PROGRAM:-run_pretraining.py}" --bert_config_file="$BERT_CONFIG"
    --input_file="$INPUT_FILE" --output_dir="$OUTPUT_DIR" --do_train=True
    --max_seq_length="$SEQ" --max_predictions_per_seq="$MAX_PRED" --train_batch_size="$BATCH"
    --num_accumulation_steps="$ACCUM" --num_train_steps="$STEPS" --num_warmup_steps="$WARMUP"
    --learning_rate="$LR" --optimizer_type="$OPTIMIZER" --precision="$PRECISION"
    --use_xla="$use_xla" --use_horovod="$USE_HOROVOD" ${EXTRA_FLAGS[@]+"${EXTRA_FLAGS[@]}"})
}

# parse_launcher_args USAGE "$@": --dry-run, -h, and run_pretraining.py flags after "--"
# (into the array EXTRA_FLAGS).
EXTRA_FLAGS=()
parse_launcher_args() {
  local usage="$1"
  shift
  while (( $# )); do
    case "$1" in
      --dry-run) DRY_RUN=1 ;;
      -h|--help) echo "$usage"; exit 0 ;;
      --) shift; EXTRA_FLAGS=("$@"); return ;;
      *) echo "$(basename "$0"): unknown argument '$1' (run_pretraining.py flags go after --)" >&2
         echo "$usage" >&2; exit 2 ;;
    esac
    shift
  done
}
