# Shared by the launch scripts in scripts/ (sourced, not run): --dry-run handling, printing
# commands as they would be typed, and the Horovod launcher prefix. Keeping it in one place is
# what makes a printed dry-run command identical to the command a real run executes.
# shellcheck shell=bash

# Set by parse_dry_run: 1 when the script was given --dry-run.
DRY_RUN=0

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
