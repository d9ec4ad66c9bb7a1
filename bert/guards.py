"""How a training run ends when something goes wrong: nothing lost, no silent hang.

* `StopSignals`: SIGTERM (SLURM and Kubernetes before preemption), SIGINT, SIGUSR1 (SLURM's
  --signal=USR1@120) and SIGUSR2 (what scripts/run_pretraining_multinode.sh sends through
  mpirun, which forwards only SIGUSR1/2 without killing the job) become a request to stop at
  the next step boundary; the loop agrees on that step with every rank, rank 0 writes its
  checkpoint, and the process exits 128 + the signal's number (143, 130, 138, 140), as if the
  signal had ended it.
* `HangWatchdog`: armed after the first step; when no optimizer step completes within the
  timeout, the rank logs what it was waiting for (the input or the gradient all-reduce) with
  its step, rank and host, and the process exits EXIT_HANG at once. The launcher then ends
  the job (horovodrun and mpirun stop every rank when one exits non-zero).
* `NonFiniteError`: a non-finite loss or gradient norm (fp32, bf16), or float16 loss scaling
  that cannot recover; raised before any checkpoint of that state is written.
* `InputError`, `CheckpointWriteError`: the input failed (naming the file and the record
  offset) or the disk is full (naming the checkpoint and the latest complete one).

* `ConfigurationError` (`configuration_errors()`), a bad flag (`parse_flags`) or an
  app.UsageError: the run cannot start as asked; retrying cannot help.

Exit statuses (the launch scripts tell what is worth a retry by them):
  EXIT_FAILED 1 (an error: input, disk, a crash), EXIT_USAGE 2 (a usage or configuration
  error), EXIT_NON_FINITE 3, EXIT_HANG 124 (as timeout(1)), 128 + signal after a requested
  stop.
"""
import contextlib
import functools
import logging as py_logging
import os
import signal
import socket
import sys
import threading
import time

from absl import app
from absl import flags
from absl import logging

EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_NON_FINITE = 3
EXIT_HANG = 124
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1, signal.SIGUSR2)


class NonFiniteError(RuntimeError):
  """A non-finite metric at a step: the run stops before saving anything of it."""


class InputError(RuntimeError):
  """The input pipeline failed: a corrupt or truncated file, named with the record offset."""


class CheckpointWriteError(RuntimeError):
  """A checkpoint could not be written (e.g. a full disk); nothing partial is left."""


class ConfigurationError(ValueError):
  """The flags, config or data do not fit together: found before training starts."""


@contextlib.contextmanager
def configuration_errors():
  """Turns the ValueErrors and missing files of a script's set-up (config, flags against the
  data) into ConfigurationError: exit EXIT_USAGE, never retried by the launch scripts."""
  try:
    yield
  except (ValueError, FileNotFoundError) as error:
    raise ConfigurationError(str(error)) from error


def parse_flags(argv):
  """app.run's flags_parser: absl's, but a bad flag exits EXIT_USAGE (absl's exits 1, which
  would look like a failure worth a retry)."""
  try:
    return flags.FLAGS(argv)
  except flags.Error as error:
    sys.stderr.write(f"FATAL Flags parsing error: {error}\n"
                     "Pass --helpshort or --helpfull to see help on flags.\n")
    sys.exit(EXIT_USAGE)


def exit_codes(main):
  """Decorates a script's main: these errors end the process with their exit status and a
  one-line error instead of a traceback (the message says everything there is to say)."""
  @functools.wraps(main)
  def main_with_exit_codes(*args, **kwargs):
    try:
      return main(*args, **kwargs)
    except app.UsageError as error:
      error.exitcode = EXIT_USAGE
      raise
    except ConfigurationError as error:
      logging.error("%s", error)
      _flush_logs()
      sys.exit(EXIT_USAGE)
    except NonFiniteError as error:
      logging.error("%s", error)
      _flush_logs()
      sys.exit(EXIT_NON_FINITE)
    except (InputError, CheckpointWriteError) as error:
      logging.error("%s", error)
      _flush_logs()
      sys.exit(EXIT_FAILED)
  return main_with_exit_codes


def host_name() -> str:
  """The host as the launcher names it (horovodrun's -H entry), else the machine's name."""
  return os.environ.get("HOROVOD_HOSTNAME") or socket.gethostname()


def signal_name(signum: int) -> str:
  return signal.Signals(signum).name


class StopSignals:
  """Turns STOP_SIGNALS into `received` (the first signal's number) while active.

  Install from the main thread (Python runs handlers there). The previous handlers come back
  on exit, so a second signal after the stop was handled acts as usual.
  """

  def __init__(self):
    self.received = None
    self._previous = {}

  def _handle(self, signum, frame):
    del frame
    if self.received is None:
      self.received = signum
      logging.warning("%s received: stopping at the next step boundary", signal_name(signum))

  def __enter__(self):
    if threading.current_thread() is threading.main_thread():
      for signum in STOP_SIGNALS:
        self._previous[signum] = signal.signal(signum, self._handle)
    return self

  def __exit__(self, *exc_info):
    for signum, handler in self._previous.items():
      signal.signal(signum, handler)
    self._previous.clear()


class HangWatchdog:
  """Ends the process when no optimizer step completes within `timeout_secs` (0: off).

  The loop calls `waiting_for(what, step)` before each blocking part of a step and
  `step_done()` after it; the first `step_done()` arms the watchdog, so tracing and
  compilation, however long, never count.
  """

  def __init__(self, timeout_secs: float, rank: int, poll_secs: float | None = None):
    self.timeout_secs = timeout_secs
    self.rank = rank
    self._poll_secs = poll_secs or max(0.05, min(5.0, timeout_secs / 20))
    self._what, self._step = "the first step", 0
    self._last_progress = None  # Not armed.
    self._stop = threading.Event()
    self._thread = None

  def __enter__(self):
    if self.timeout_secs > 0:
      self._thread = threading.Thread(target=self._watch, name="hang_watchdog", daemon=True)
      self._thread.start()
    return self

  def __exit__(self, *exc_info):
    self._stop.set()
    if self._thread is not None:
      self._thread.join()

  def waiting_for(self, what: str, step: int) -> None:
    self._what, self._step = what, step

  def step_done(self) -> None:
    self._last_progress = time.monotonic()

  def _watch(self):
    while not self._stop.wait(self._poll_secs):
      last = self._last_progress
      if last is None or time.monotonic() - last < self.timeout_secs:
        continue
      logging.error(
          "Hang: no optimizer step completed in %g s (--hang_timeout_secs). Rank %d on host "
          "%s is waiting for %s of step %d. Another rank or host may have stopped or lost "
          "its network; ending this rank so that the launcher ends the job.",
          self.timeout_secs, self.rank, host_name(), self._what, self._step)
      _flush_logs()
      os._exit(EXIT_HANG)


def _flush_logs() -> None:
  for handler in py_logging.getLogger().handlers + logging.get_absl_logger().handlers:
    handler.flush()
  sys.stdout.flush()
  sys.stderr.flush()
