"""Helpers for the pre-training tests: a tiny vocab, config and data, and subprocess runs.

Every run is a real process (`python run_pretraining.py ...` or `horovodrun -np 2 ...`) with
one intra-op and one inter-op thread, the venv's bin first on PATH so horovodrun starts the
venv's python, and a timeout so a hang fails the test instead of blocking CI.
"""
import collections
import concurrent.futures
import contextlib
import dataclasses
import os
import pathlib
import re
import subprocess
import sys
import threading
import time

import numpy as np

REPO = pathlib.Path(__file__).resolve().parents[1]
VENV_BIN = pathlib.Path(sys.executable).parent
SAMPLE_TEXT = REPO / "sample_data" / "austen_sample.txt"

SEQ_LENGTH = 32
MAX_PREDICTIONS = 3  # every sequence of >= 13 tokens gets exactly 3 (masked_lm_prob 0.2)
MASKED_LM_PROB = 0.2
SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def subprocess_env(**extra: str) -> dict:
  """The environment of a test run: single-threaded TF (TF 2.21 honours these variables)."""
  env = dict(os.environ)
  env.update(PATH=f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}", OMP_NUM_THREADS="1",
             TF_NUM_INTRAOP_THREADS="1", TF_NUM_INTEROP_THREADS="1", TF_CPP_MIN_LOG_LEVEL="2",
             PYTHONUNBUFFERED="1", PYTHONPATH=str(REPO))  # the scripts, for instrumented runs
  env.update(extra)
  return env


@dataclasses.dataclass
class Result:
  """A finished process: exit status, stdout and stderr interleaved, and timings."""
  args: list
  returncode: int
  output: str
  seconds: float
  # Seconds from the first output line containing `marker` to the exit (None: not seen).
  seconds_after_marker: float | None = None

  def check(self) -> "Result":
    """Raises AssertionError with the output's tail unless the process exited 0."""
    assert self.returncode == 0, (f"{' '.join(map(str, self.args))}\nexited {self.returncode};"
                                  f" output tail:\n{self.output[-6000:]}")
    return self


def run_process(args: list, timeout: float, marker: str | None = None,
                marker_timeout: float | None = None, on_marker=None,
                full_env: dict | None = None, **env: str) -> Result:
  """Runs `args` from the repo root in a process group of its own.

  Raises AssertionError (with the output's tail) when it runs past `timeout` seconds, or past
  `marker_timeout` seconds after an output line containing `marker`: the whole group
  (horovodrun and its ranks) is killed, so a hang fails the test instead of blocking CI.
  on_marker(process) is called when `marker` first shows (to signal it, cut a link, ...);
  Result.seconds_after_marker then times what followed. full_env replaces subprocess_env.
  """
  args = [str(a) for a in args]
  start = time.perf_counter()
  proc = subprocess.Popen(args, cwd=REPO, env=full_env or subprocess_env(**env),
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          start_new_session=True)
  timed_out = threading.Event()

  def stop_hung_process():
    timed_out.set()
    kill_group(proc)
  watchdogs = [threading.Timer(timeout, stop_hung_process)]
  watchdogs[0].start()
  lines, marker_time = [], None
  try:
    for line in proc.stdout:
      lines.append(line)
      if marker is not None and marker_time is None and marker in line:
        if on_marker is not None:
          on_marker(proc)
        marker_time = time.perf_counter()
        if marker_timeout is not None:
          watchdogs.append(threading.Timer(marker_timeout, stop_hung_process))
          watchdogs[-1].start()
    proc.wait()
  finally:
    for watchdog in watchdogs:
      watchdog.cancel()
  end = time.perf_counter()
  output = "".join(lines)
  if timed_out.is_set():
    limit = f"{marker_timeout} s after {marker!r}" if marker_time else f"{timeout} s"
    raise AssertionError(f"{' '.join(args)}\ndid not finish within {limit} (killed); "
                         f"output tail:\n{output[-4000:]}")
  return Result(args, proc.returncode, output, end - start,
                None if marker_time is None else end - marker_time)


class CorePool:
  """Runs jobs in background threads, each holding some of the machine's cores.

  Independent runs of the test module start together and share the cores: a two-rank
  horovodrun job takes two, a single process one. `submit` returns a Future.
  """

  def __init__(self, cores: int = 2):
    self.cores = cores
    self._free = cores
    self._condition = threading.Condition()
    self._executor = concurrent.futures.ThreadPoolExecutor(max_workers=8)

  def submit(self, cores: int, fn, *args, **kwargs) -> concurrent.futures.Future:
    cores = min(cores, self.cores)

    def job():
      with self._condition:
        self._condition.wait_for(lambda: self._free >= cores)
        self._free -= cores
      try:
        return fn(*args, **kwargs)
      finally:
        with self._condition:
          self._free += cores
          self._condition.notify_all()
    return self._executor.submit(job)

  def shutdown(self) -> None:
    self._executor.shutdown(wait=True, cancel_futures=True)


def kill_group(proc: subprocess.Popen, sig: int = 9) -> None:
  """Kills a process started with start_new_session=True and everything it started."""
  with contextlib.suppress(ProcessLookupError):
    os.killpg(proc.pid, sig)


INSTRUMENTED_RUN_PRETRAINING = REPO / "tests" / "instrumented_run_pretraining.py"


def run_pretraining_args(config: pathlib.Path, input_files: list[pathlib.Path],
                         output_dir: pathlib.Path, script: pathlib.Path | None = None,
                         **flags) -> list[str]:
  """`python run_pretraining.py` with the tiny settings; `flags` override or add flags.

  script: INSTRUMENTED_RUN_PRETRAINING for its --trace_dir and --fail_at test hooks.
  """
  values = dict(bert_config_file=config, input_file=",".join(map(str, input_files)),
                output_dir=output_dir, max_seq_length=SEQ_LENGTH,
                max_predictions_per_seq=MAX_PREDICTIONS, do_train=True, train_batch_size=4,
                learning_rate=1e-3, num_train_steps=4, num_warmup_steps=0,
                save_checkpoints_steps=1000, log_freq=1, shuffle_input=False)
  values.update(flags)
  return [sys.executable, str(script or REPO / "run_pretraining.py")] + [
      f"--{name}={value}" for name, value in values.items() if value is not None]


def horovodrun_args(num_ranks: int, python_args: list[str]) -> list[str]:
  """`horovodrun -np N --gloo` on this host, running the venv's python."""
  return [str(VENV_BIN / "horovodrun"), "-np", str(num_ranks), "-H", f"localhost:{num_ranks}",
          "--gloo"] + python_args + ["--use_horovod=True"]


# ------------------------------------------------------------------------------- data

def write_tiny_vocab(path: pathlib.Path, text_file: pathlib.Path = SAMPLE_TEXT,
                     num_words: int = 150) -> pathlib.Path:
  """A WordPiece vocab: specials, every character of the text (also as ##piece) and the most
  frequent lower-cased words, so nothing becomes [UNK] and the vocab stays a few hundred."""
  text = text_file.read_text(encoding="utf-8").lower()
  words = collections.Counter(re.findall(r"[a-z]+", text))
  chars = sorted({c for c in text if not c.isspace()})
  tokens = SPECIAL + chars + [f"##{c}" for c in chars if c.isalnum()]
  tokens += [w for w, _ in words.most_common(num_words) if w not in tokens]
  path.write_text("\n".join(tokens) + "\n", encoding="utf-8")
  return path


def write_corpus(path: pathlib.Path, first_line: int, num_lines: int,
                 lines_per_document: int = 40) -> pathlib.Path:
  """Lines of the Austen sample as documents of `lines_per_document` sentences."""
  lines = [line for line in SAMPLE_TEXT.read_text(encoding="utf-8").splitlines()
           if line.strip()]
  lines = lines[first_line:first_line + num_lines]
  docs = [lines[i:i + lines_per_document] for i in range(0, len(lines), lines_per_document)]
  path.write_text("".join("\n".join(d) + "\n\n" for d in docs), encoding="utf-8")
  return path


def write_tiny_vocab_and_corpus(root: pathlib.Path) -> tuple[pathlib.Path, int, pathlib.Path]:
  """(vocab.txt, its size, corpus.txt of the sample's first 600 lines) in root: what the
  pre-training test modules make their data from."""
  vocab = write_tiny_vocab(root / "vocab.txt")
  vocab_size = len(vocab.read_text(encoding="utf-8").splitlines())
  return vocab, vocab_size, write_corpus(root / "corpus.txt", first_line=0, num_lines=600)


def create_pretraining_data(corpus: pathlib.Path, outputs: list[pathlib.Path],
                            vocab: pathlib.Path, seq_length: int = SEQ_LENGTH,
                            max_predictions: int = MAX_PREDICTIONS, dupe_factor: int = 1,
                            timeout: float = 120) -> list[pathlib.Path]:
  """Runs create_pretraining_data.py (TF-free, about a second); records round-robin."""
  run_process([sys.executable, REPO / "create_pretraining_data.py", f"--input_file={corpus}",
               f"--output_file={','.join(map(str, outputs))}", f"--vocab_file={vocab}",
               f"--max_seq_length={seq_length}", f"--max_predictions_per_seq={max_predictions}",
               f"--masked_lm_prob={MASKED_LM_PROB}", f"--dupe_factor={dupe_factor}",
               "--short_seq_prob=0", "--num_workers=1"], timeout=timeout).check()
  return outputs


def read_records(tf, path: pathlib.Path) -> list:
  """The serialized records of a TFRecord file, in order."""
  return [r.numpy() for r in tf.data.TFRecordDataset(str(path))]


def parse_input_ids(tf, records: list) -> np.ndarray:
  """input_ids of serialized records: int64 [num_records, seq_length]."""
  return np.array([tf.train.Example.FromString(r).features.feature["input_ids"].int64_list.value
                   for r in records])


def masked_weight_sums(tf, records: list) -> np.ndarray:
  """sum(masked_lm_weights) per record: float [num_records]."""
  return np.array([sum(tf.train.Example.FromString(r).features.feature["masked_lm_weights"]
                       .float_list.value) for r in records])


# ------------------------------------------------------------------------------ results

def read_tf1_weights(tf, prefix: pathlib.Path) -> dict[str, np.ndarray]:
  """{Google name: array} of a TF1 checkpoint such as output_dir/bert_model.ckpt."""
  reader = tf.train.load_checkpoint(str(prefix))
  return {name: reader.get_tensor(name) for name in reader.get_variable_to_shape_map()}


def max_abs_difference(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> float:
  """Largest |a - b| over all weights; the two must hold the same names."""
  assert sorted(a) == sorted(b), f"different weights: {sorted(set(a) ^ set(b))}"
  return max(float(np.max(np.abs(a[k].astype(np.float64) - b[k]))) for k in a)


def logged_metrics(output: str) -> dict[int, dict[str, float]]:
  """{step: {name: value}} from the training log lines `step N/M | name value | ...`."""
  metrics = {}
  for match in re.finditer(r"\bstep (\d+)/\d+((?: \| [a-z_]+ [^ |\n]+)+)", output):
    pairs = (part.split(" ") for part in match.group(2).split(" | ")[1:])
    metrics[int(match.group(1))] = {name: float(value) for name, value in pairs}
  return metrics


def logged_losses(output: str) -> dict[int, float]:
  """{step: loss} from the training log."""
  return {step: values["loss"] for step, values in logged_metrics(output).items()}


def tensorboard_scalars(tf, output_dir: pathlib.Path) -> dict[str, dict[int, float]]:
  """{tag: {step: value}} of the scalar summaries in output_dir's event files."""
  scalars = {}
  for path in sorted(output_dir.glob("events.out.tfevents.*")):
    for event in tf.compat.v1.train.summary_iterator(str(path)):
      for value in event.summary.value:
        number = (tf.make_ndarray(value.tensor) if value.HasField("tensor")
                  else value.simple_value)
        scalars.setdefault(value.tag, {})[event.step] = float(number)
  return scalars
