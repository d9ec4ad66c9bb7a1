"""How run_pretraining.py ends when something goes wrong (bert/guards.py), end to end.

Real processes on the tiny model: a huge learning rate (NaN in fp32), float16 that overflows
for good, truncated TFRecords (plain and gzip), SIGTERM / SIGINT / SIGUSR1 (alone and under
horovodrun) followed by a resume, and a full disk (a small tmpfs). The independent runs start
together from one module fixture and share the two cores.
"""
import dataclasses
import os
import pathlib
import re
import shutil
import signal
import struct
import subprocess

import numpy as np
import pretraining_helpers as h
import pytest
import tiny

RUN_TIMEOUT = 600
SIGNAL_STEPS = 30  # the signalled runs and the uninterrupted one they are compared with


@dataclasses.dataclass
class Data:
  root: pathlib.Path
  config: pathlib.Path  # no dropout
  dropout_config: pathlib.Path
  overflow_config: pathlib.Path  # weights so large that float16 overflows even unscaled
  shards: list
  truncated: pathlib.Path
  truncated_gzip: pathlib.Path


def truncate_inside_a_record(path: pathlib.Path, fraction: float) -> None:
  """Cuts a plain TFRecord file 40 bytes into the payload of the record found at `fraction`
  of it, as a partly copied file. (Cut at a record boundary, or inside the first 8 bytes of a
  record's header, TensorFlow reads the file as a shorter one: nothing can tell.)"""
  data = path.read_bytes()
  offset = 0
  while offset < len(data) * fraction:
    offset += 12 + struct.unpack("<Q", data[offset:offset + 8])[0] + 4
  path.write_bytes(data[:offset + 12 + 40])


def truncate(path: pathlib.Path, fraction: float) -> None:
  """Cuts a gzip file: the compressed stream ends early."""
  data = path.read_bytes()
  path.write_bytes(data[:int(len(data) * fraction)])


@pytest.fixture(scope="module")
def data(tmp_path_factory, tf) -> Data:
  root = tmp_path_factory.mktemp("failures")
  vocab, vocab_size, corpus = h.write_tiny_vocab_and_corpus(root)
  shards = h.create_pretraining_data(corpus, [root / "a.tfrecord", root / "b.tfrecord"], vocab)
  truncated = root / "truncated.tfrecord"
  shutil.copy(shards[0], truncated)
  truncate_inside_a_record(truncated, 0.6)
  truncated_gzip = root / "truncated.tfrecord.gz"
  with tf.io.TFRecordWriter(str(truncated_gzip), options="GZIP") as writer:
    for record in h.read_records(tf, shards[0]):
      writer.write(record)
  truncate(truncated_gzip, 0.6)
  return Data(root=root, config=tiny.write_config(root / "config.json", vocab_size, dropout=0.0),
              dropout_config=tiny.write_config(root / "dropout.json", vocab_size, dropout=0.1),
              overflow_config=tiny.write_config(root / "overflow.json", vocab_size, dropout=0.0,
                                                initializer_range=1000.0),
              shards=shards, truncated=truncated, truncated_gzip=truncated_gzip)


@dataclasses.dataclass
class Signalled:
  """A run signalled once its log showed `marker`, and (optionally) its rerun."""
  stopped: h.Result
  resumed: h.Result | None


def signal_after(args: list, sig: int, marker: str, timeout: float,
                 rerun: bool = False) -> Signalled:
  """Runs `args`, sending `sig` to its first process when `marker` shows in the output; then,
  with rerun, runs the same command again to the end."""
  stopped = h.run_process(args, timeout, marker=marker,
                          on_marker=lambda proc: os.kill(proc.pid, sig))
  return Signalled(stopped, h.run_process(args, timeout=timeout) if rerun else None)


def disk_full_run(data: Data, tf) -> tuple[h.Result, list, str, int]:
  """A run whose --output_dir is a tmpfs with room for one checkpoint and a half: the first
  save fits, the second does not. Returns (result, the files left, the latest checkpoint,
  a checkpoint's bytes)."""
  calibration = data.root / "calibration"
  h.run_process(h.run_pretraining_args(data.config, data.shards, calibration,
                                       num_train_steps=2, save_checkpoints_steps=2),
                timeout=RUN_TIMEOUT).check()
  checkpoint_bytes = sum(p.stat().st_size for p in calibration.glob("ckpt-2.*"))
  mount_point = data.root / "small_disk"
  mount_point.mkdir()
  size = int(checkpoint_bytes * 1.5) + 64 * 1024  # + the events file and state files
  subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mount_point)],
                 check=True)
  try:
    output_dir = mount_point / "out"
    result = h.run_process(h.run_pretraining_args(
        data.config, data.shards, output_dir, num_train_steps=8, save_checkpoints_steps=3,
        log_freq=100, keep_checkpoint_max=5), timeout=RUN_TIMEOUT)
    listing = sorted(p.name for p in output_dir.iterdir())
    latest = tf.train.latest_checkpoint(str(output_dir))
    return result, listing, latest, checkpoint_bytes
  finally:
    subprocess.run(["umount", str(mount_point)], check=False)


def can_mount_tmpfs() -> str | None:
  if os.geteuid() != 0:
    return "mounting a tmpfs needs root (CI runs as root)"
  return None


@pytest.fixture(scope="module")
def runs(data, tf):
  root = data.root

  def args(name, config=data.config, files=data.shards, **flags):
    return h.run_pretraining_args(config, files, root / name, **flags)

  pool = h.CorePool(cores=2)
  futures = {}

  def start(name, cores, fn, *fn_args, **fn_kwargs):
    futures[name] = pool.submit(cores, fn, *fn_args, **fn_kwargs)

  signalled = dict(config=data.dropout_config, shuffle_input=True,
                   num_train_steps=SIGNAL_STEPS, save_checkpoints_steps=1000, log_freq=1)
  start("horovodrun_sigterm", 2, signal_after,
        h.horovodrun_args(2, args("horovodrun_sigterm", **signalled)), signal.SIGTERM,
        "step 4/", RUN_TIMEOUT, rerun=True)
  start("horovodrun_uninterrupted", 2, h.run_process,
        h.horovodrun_args(2, args("horovodrun_uninterrupted", **signalled)),
        timeout=RUN_TIMEOUT)
  start("sigterm", 1, signal_after, args("sigterm", **signalled), signal.SIGTERM, "step 4/",
        RUN_TIMEOUT, rerun=True)
  start("uninterrupted", 1, h.run_process, args("uninterrupted", **signalled),
        timeout=RUN_TIMEOUT)
  for sig in (signal.SIGINT, signal.SIGUSR1):
    start(sig.name, 1, signal_after, args(sig.name, **signalled), sig, "step 2/", RUN_TIMEOUT)
  start("nan", 1, h.run_process,
        args("nan", learning_rate=1e4, num_train_steps=60, save_checkpoints_steps=2,
             keep_checkpoint_max=100), timeout=RUN_TIMEOUT)
  start("fp16_overflow", 1, h.run_process,
        args("fp16_overflow", config=data.overflow_config, precision="fp16",
             num_train_steps=40), timeout=RUN_TIMEOUT)
  for name, path in (("truncated", data.truncated), ("truncated_gzip", data.truncated_gzip)):
    start(name, 1, h.run_process,
          args(name, files=[path], num_train_steps=1000, save_checkpoints_steps=1000,
               log_freq=10), timeout=RUN_TIMEOUT)
  if can_mount_tmpfs() is None:
    start("disk_full", 1, disk_full_run, data, tf)
  yield futures
  pool.shutdown()


def output_dir(run: h.Result) -> pathlib.Path:
  return pathlib.Path(re.search(r"--output_dir=(\S+)", " ".join(map(str, run.args))).group(1))


# ------------------------------------------------------------------------------- signals

@pytest.mark.parametrize("launcher", ["single", "horovodrun"])
def test_sigterm_checkpoints_the_step_and_the_restart_resumes_exactly(runs, tf, launcher):
  prefix = "" if launcher == "single" else "horovodrun_"
  run = runs[f"{prefix}sigterm"].result()
  stopped = run.stopped
  match = re.search(r"stopped by SIGTERM at step (\d+); checkpoint ckpt-(\d+)", stopped.output)
  assert match, stopped.output[-3000:]
  step = int(match.group(1))
  assert int(match.group(2)) == step and 0 < step < SIGNAL_STEPS
  assert stopped.seconds_after_marker < 30
  if launcher == "single":
    assert stopped.returncode == 143
  else:
    # Every rank stops at the same step and exits 143; horovodrun reports the job failed.
    assert stopped.output.count(f"stopped by SIGTERM at step {step}") >= 1
    assert "exit with status code 143" in stopped.output
    assert stopped.returncode != 0
  assert (output_dir(stopped) / f"ckpt-{step}.index").exists()
  resumed = run.resumed.check()
  assert f"Resuming from {output_dir(stopped) / f'ckpt-{step}'} at step {step}" in resumed.output
  uninterrupted = runs[f"{prefix}uninterrupted"].result().check()
  difference = h.max_abs_difference(
      h.read_tf1_weights(tf, output_dir(resumed) / "bert_model.ckpt"),
      h.read_tf1_weights(tf, output_dir(uninterrupted) / "bert_model.ckpt"))
  assert difference < 1e-5


@pytest.mark.parametrize("name,code", [("SIGINT", 130), ("SIGUSR1", 138)])
def test_sigint_and_sigusr1_stop_with_their_exit_codes(runs, name, code):
  stopped = runs[name].result().stopped
  assert stopped.returncode == code, stopped.output[-3000:]
  match = re.search(rf"stopped by {name} at step (\d+); checkpoint ckpt-(\d+)", stopped.output)
  assert match, stopped.output[-3000:]
  assert (output_dir(stopped) / f"ckpt-{match.group(1)}.index").exists()


# ----------------------------------------------------------------------------- non-finite

def test_nan_in_fp32_stops_at_once_and_saves_nothing_of_it(runs, tf):
  run = runs["nan"].result()
  assert run.returncode == 3, run.output[-3000:]
  match = re.search(r"the (loss|gradient norm) is (nan|inf|-inf) at step (\d+): stopping; no "
                    r"checkpoint of it is written, the latest is (ckpt-\d+|none)", run.output)
  assert match, run.output[-3000:]
  bad_step = int(match.group(3))
  assert "Traceback" not in run.output
  directory = output_dir(run)
  assert not (directory / "bert_model.ckpt.index").exists()  # no export of a NaN model
  saved = sorted(int(p.name[5:-6]) for p in directory.glob("ckpt-*.index"))
  assert saved and max(saved) < bad_step
  assert f"ckpt-{max(saved)}" == match.group(4)
  assert tf.train.latest_checkpoint(str(directory)).endswith(f"ckpt-{max(saved)}")
  for number in saved:
    reader = tf.train.load_checkpoint(str(directory / f"ckpt-{number}"))
    for name, dtype in reader.get_variable_to_dtype_map().items():
      if dtype.is_floating:
        assert np.isfinite(reader.get_tensor(name)).all(), (number, name)


def test_fp16_that_keeps_overflowing_stops_with_a_clear_error(runs):
  run = runs["fp16_overflow"].result()
  assert run.returncode == 3, run.output[-3000:]
  assert re.search(r"float16 gradients are not finite at step \d+ and the loss scale would "
                   r"fall below 1", run.output), run.output[-3000:]
  assert "loss_scale 1" in run.output or "loss_scale 2" in run.output


# ---------------------------------------------------------------------------------- input

@pytest.mark.parametrize("name", ["truncated", "truncated_gzip"])
def test_truncated_tfrecord_names_the_file_and_offset_after_checkpointing(runs, data, name):
  run = runs[name].result()
  assert run.returncode == 1, run.output[-3000:]
  path = data.truncated if name == "truncated" else data.truncated_gzip
  match = re.search(rf"the input failed before step (\d+) on rank 0: {re.escape(str(path))}: "
                    r"truncated record at byte offset \d+.*; checkpoint ckpt-(\d+)", run.output)
  assert match, run.output[-3000:]
  assert int(match.group(2)) == int(match.group(1)) - 1 > 0
  assert (output_dir(run) / f"ckpt-{match.group(2)}.index").exists()
  assert "Traceback" not in run.output


# ------------------------------------------------------------------------------ disk full

def test_disk_full_names_the_checkpoint_and_leaves_nothing_partial(runs):
  reason = can_mount_tmpfs()
  if reason:
    pytest.skip(reason)
  run, listing, latest, checkpoint_bytes = runs["disk_full"].result()
  assert checkpoint_bytes > 0
  assert run.returncode == 1, run.output[-3000:]
  directory = output_dir(run)
  match = re.search(rf"disk full: could not write checkpoint ckpt-(\d+) in "
                    rf"{re.escape(str(directory))} \(No space left on device\); the latest "
                    r"complete checkpoint is ckpt-(\d+)", run.output)
  assert match, run.output[-3000:]
  failed, previous = int(match.group(1)), int(match.group(2))
  assert failed == previous + 3 or (failed == 8 and previous == 6)  # every 3 steps, and the end
  assert latest.endswith(f"ckpt-{previous}")
  assert not [name for name in listing if "temp" in name or name.startswith(f"ckpt-{failed}")], (
      listing)
  assert "Traceback" not in run.output
