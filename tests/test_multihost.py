"""Pre-training across hosts, and what happens when a host fails (tests/multihost.py).

Two hosts (network namespaces with their own addresses and sshd) each run one rank of a
tiny-model job, launched from host 0 as on a cluster: scripts/run_pretraining_multinode.sh
(mpirun, NETWORK=tcp) and `horovodrun -H ... --gloo`. The runs are sequential: each takes
both cores.
"""
import dataclasses
import json
import os
import pathlib
import re
import signal
import subprocess
import sys

import multihost
import numpy as np
import pretraining_helpers as h
import pytest
import tiny

REPO = pathlib.Path(__file__).resolve().parents[1]
INSTRUMENTED = "tests/instrumented_run_pretraining.py"
RUN_TIMEOUT = 300
STEPS = 6
SIGNAL_STEPS = 24
HANG_TIMEOUT = 10  # --hang_timeout_secs of the network-cut runs


@dataclasses.dataclass
class Data:
  root: pathlib.Path
  config: pathlib.Path  # no dropout
  dropout_config: pathlib.Path
  shards: list  # rank 0 reads the first, rank 1 the second
  first_input_ids: list  # each shard's first batch of input_ids


@pytest.fixture(scope="module")
def cluster():
  reason = multihost.available()
  if reason:
    pytest.skip(reason)
  with multihost.Cluster(num_hosts=2) as started:
    yield started


@pytest.fixture(scope="module")
def data(tmp_path_factory, tf) -> Data:
  root = tmp_path_factory.mktemp("multihost")
  vocab, vocab_size, corpus = h.write_tiny_vocab_and_corpus(root)
  shards = h.create_pretraining_data(corpus, [root / "a.tfrecord", root / "b.tfrecord"], vocab)
  return Data(root=root, config=tiny.write_config(root / "config.json", vocab_size, dropout=0.0),
              dropout_config=tiny.write_config(root / "dropout.json", vocab_size, dropout=0.1),
              shards=shards,
              first_input_ids=[h.parse_input_ids(tf, h.read_records(tf, shard)[:4])
                               for shard in shards])


@dataclasses.dataclass
class Launched:
  result: h.Result
  output_dir: pathlib.Path
  event_seconds: float | None = None  # from the event (signal, cut, kill) to the exit


def rank_env(cluster, **extra) -> dict:
  return cluster.env(TF_CPP_MIN_LOG_LEVEL="2", OMP_NUM_THREADS="1", TF_NUM_INTRAOP_THREADS="1",
                     TF_NUM_INTEROP_THREADS="1", PYTHONUNBUFFERED="1", PYTHONPATH=str(REPO),
                     **extra)


def flag_list(flags: dict) -> list[str]:
  return [f"--{name}={value}" for name, value in flags.items()]


def multinode_command(cluster, data, output_dir, config, steps, flags, **settings):
  """scripts/run_pretraining_multinode.sh on both hosts, and its environment."""
  env = rank_env(cluster, **settings, HOSTS=",".join(cluster.hosts), SLOTS_PER_HOST="1",
                 NETWORK="tcp",
                 BERT_CONFIG=str(config), INPUT_FILE=",".join(map(str, data.shards)),
                 OUTPUT_DIR=str(output_dir), SEQ=str(h.SEQ_LENGTH),
                 MAX_PRED=str(h.MAX_PREDICTIONS), BATCH="4", STEPS=str(steps), WARMUP="0",
                 LR="1e-3", PRECISION="fp32", XLA="0", PYTHON=sys.executable,
                 PROGRAM=INSTRUMENTED)
  return ["bash", "scripts/run_pretraining_multinode.sh", "--", *flag_list(flags)], env


def horovodrun_command(cluster, data, output_dir, config, steps, flags):
  """horovodrun with Gloo on both hosts (one rank each), and its environment."""
  args = h.run_pretraining_args(config, data.shards, output_dir, num_train_steps=steps,
                                script=REPO / INSTRUMENTED, **flags)
  return ["horovodrun", "-np", "2", "-H", ",".join(f"{ip}:1" for ip in cluster.hosts),
          "--gloo", "--network-interface", multihost.IFACE, "--disable-cache",
          *args, "--use_horovod=True"], rank_env(cluster)


def launch(cluster, data, name, launcher, config=None, steps=STEPS, marker=None, event=None,
           settings=None, **flags) -> Launched:
  """Runs a 2-host job from host 0; when `marker` shows in its output, calls event(process).
  settings: more environment for the multinode script (mpirun)."""
  output_dir = data.root / name
  flags = {"log_freq": 1, "shuffle_input": False, **flags}
  if launcher == "mpirun":
    command, env = multinode_command(cluster, data, output_dir, config or data.config, steps,
                                     flags, **(settings or {}))
  else:
    command, env = horovodrun_command(cluster, data, output_dir, config or data.config, steps,
                                      flags)
  result = h.run_process(cluster.command_on(0, command), RUN_TIMEOUT, marker=marker,
                         on_marker=event, full_env=env)
  return Launched(result, output_dir, result.seconds_after_marker)


def read_trace(output_dir: pathlib.Path, rank: int) -> dict:
  return json.loads((output_dir / "trace" / f"rank{rank}.json").read_text())


# ---------------------------------------------------------------------------------- basic

@pytest.mark.parametrize("launcher", ["mpirun", "horovodrun"])
def test_two_hosts_train_together(cluster, data, launcher):
  """Ranks start and end identical, each host reads its own shard, the loss falls."""
  trace_dir = data.root / f"basic_{launcher}" / "trace"
  trace_dir.mkdir(parents=True)
  run = launch(cluster, data, f"basic_{launcher}", launcher, trace_dir=trace_dir)
  run.result.check()
  assert "2 ranks x 4 sequences x 1 accumulation steps = global batch 8" in run.result.output
  rank0, rank1 = read_trace(run.output_dir, 0), read_trace(run.output_dir, 1)
  assert [rank0["network_namespace"], rank1["network_namespace"]] == [
      cluster.netns_id(0), cluster.netns_id(1)]
  assert rank0["start_weights_sha256"] == rank1["start_weights_sha256"]
  assert rank0["end_weights_sha256"] == rank1["end_weights_sha256"]
  assert rank0["end_weights_sha256"] != rank0["start_weights_sha256"]
  np.testing.assert_array_equal(rank0["first_input_ids"], [data.first_input_ids[0]])
  np.testing.assert_array_equal(rank1["first_input_ids"], [data.first_input_ids[1]])
  losses = h.logged_losses(run.result.output)
  assert sorted(losses) == list(range(1, STEPS + 1))
  assert losses[STEPS] < losses[1] - 0.2, losses
  assert (run.output_dir / "bert_model.ckpt.index").exists()
  export_seconds = seconds_between(run.result.output, "Saved checkpoint", "Exported Google TF1")
  assert export_seconds < 5
  print(f"{launcher}: export {export_seconds:.2f} s after the last checkpoint")


def seconds_between(output: str, first: str, second: str) -> float:
  """Seconds between the absl log lines (HH:MM:SS.micro stamps) holding `first`, `second`."""
  def stamp(text):
    match = re.search(r"[IWE]\d{4} (\d\d):(\d\d):(\d\d\.\d+) .*" + re.escape(text), output)
    assert match, f"no log line with {text!r}"
    return int(match.group(1)) * 3600 + int(match.group(2)) * 60 + float(match.group(3))
  return stamp(second) - stamp(first)


def test_overlapped_and_grouped_allreduce_agree_across_hosts(cluster, data, tf):
  """The same 2-host job with per-layer all-reduces during the backward pass and with one
  grouped all-reduce after it: the same averaged gradients (logged norms) and weights."""
  runs = [launch(cluster, data, f"overlap_{overlap}", "horovodrun", overlap_allreduce=overlap)
          for overlap in (True, False)]
  for run in runs:
    run.result.check()
  norms = [h.tensorboard_scalars(tf, run.output_dir)["gradient_norm"] for run in runs]
  assert sorted(norms[0]) == list(range(1, STEPS + 1))
  np.testing.assert_allclose([norms[0][s] for s in sorted(norms[0])],
                             [norms[1][s] for s in sorted(norms[1])], rtol=1e-5)
  assert h.max_abs_difference(*(h.read_tf1_weights(tf, run.output_dir / "bert_model.ckpt")
                                for run in runs)) < 1e-5


# --------------------------------------------------------------------------- host failures

@pytest.mark.parametrize("launcher", ["horovodrun", "mpirun"])
def test_network_cut_ends_the_job(cluster, data, launcher):
  """One host's link is cut mid-run: the job ends within the hang timeout plus 60 s. Under
  horovodrun rank 0's watchdog ends it, naming what it waited for; under mpirun the lost ssh
  session to host 1's daemon may end it first."""
  try:
    run = launch(cluster, data, f"cut_{launcher}", launcher, steps=100000, marker="step 4/",
                 event=lambda proc: cluster.cut(1), hang_timeout_secs=HANG_TIMEOUT,
                 save_checkpoints_steps=100000)
  finally:
    cluster.restore(1)
  output = run.result.output
  assert run.result.returncode != 0
  assert run.event_seconds < HANG_TIMEOUT + 60, output[-3000:]
  if launcher == "horovodrun":
    assert re.search(rf"Hang: no optimizer step completed in {HANG_TIMEOUT} s "
                     rf"\(--hang_timeout_secs\)\. Rank 0 on host {re.escape(cluster.hosts[0])} "
                     r"is waiting for the (stop-check|gradient) all-reduce", output), output[-3000:]
    assert "Process 0 exit with status code 124" in output
  print(f"{launcher}: partition to exit {run.event_seconds:.1f} s")


def kill_rank_on_host(cluster, host_index: int) -> None:
  """SIGKILLs the training process running in that host's namespace."""
  pids = subprocess.run(["ip", "netns", "pids", cluster.namespaces[host_index]],
                        capture_output=True, text=True, check=True).stdout.split()
  for pid in pids:
    try:
      cmdline = pathlib.Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
      continue
    if b"instrumented_run_pretraining" in cmdline and b"horovodrun" not in cmdline:
      os.kill(int(pid), signal.SIGKILL)
      return
  raise AssertionError(f"no training process on host {host_index}")


def test_rank_killed_on_the_remote_host_ends_the_job(cluster, data):
  run = launch(cluster, data, "killed", "horovodrun", steps=100000, marker="step 4/",
               event=lambda proc: kill_rank_on_host(cluster, 1), save_checkpoints_steps=100000)
  assert run.result.returncode != 0
  assert "Process 1 exit with status code" in run.result.output, run.result.output[-3000:]
  assert run.event_seconds < 30
  print(f"remote kill to exit: {run.event_seconds:.1f} s")


# -------------------------------------------------------------------------------- signals

@pytest.mark.parametrize("launcher", ["mpirun", "horovodrun"])
def test_sigterm_across_hosts_then_resume_equals_uninterrupted(cluster, data, tf, launcher):
  """SIGTERM to the launcher on host 0: both ranks stop at one step, rank 0 checkpoints it,
  the same command resumes from there and ends with the weights of an uninterrupted run."""
  common = dict(config=data.dropout_config, steps=SIGNAL_STEPS, shuffle_input=True,
                save_checkpoints_steps=1000)
  stopped = launch(cluster, data, f"sigterm_{launcher}", launcher, marker="step 4/",
                   event=lambda proc: os.kill(proc.pid, signal.SIGTERM), **common)
  output = stopped.result.output
  match = re.search(r"stopped by SIG\w+ at step (\d+); checkpoint ckpt-(\d+)", output)
  assert match, output[-3000:]
  step = int(match.group(1))
  assert 0 < step < SIGNAL_STEPS and int(match.group(2)) == step
  assert (stopped.output_dir / f"ckpt-{step}.index").exists()
  if launcher == "mpirun":  # the script exits as the signal would have
    assert stopped.result.returncode == 143, output[-3000:]
    assert f"stopped by SIGTERM at step {step}; checkpoint ckpt-{step}" in output
  else:  # rank 0 got the signal and stopped everyone; horovodrun reports a failure
    assert stopped.result.returncode != 0
    assert re.search(rf"\[0\]<stderr>:.*stopped by SIGTERM at step {step}; checkpoint", output)
  assert stopped.event_seconds < 30
  print(f"{launcher}: signal to exit {stopped.event_seconds:.1f} s")
  resumed = launch(cluster, data, f"sigterm_{launcher}", launcher, **common)
  resumed.result.check()
  assert f"at step {step}" in resumed.result.output
  uninterrupted = launch(cluster, data, f"uninterrupted_{launcher}", launcher, **common)
  uninterrupted.result.check()
  difference = h.max_abs_difference(
      h.read_tf1_weights(tf, resumed.output_dir / "bert_model.ckpt"),
      h.read_tf1_weights(tf, uninterrupted.output_dir / "bert_model.ckpt"))
  assert difference < 1e-5


# ------------------------------------------------------------------------------- restarts

def checkpoint_fingerprint(tf, config: pathlib.Path, prefix: pathlib.Path) -> str:
  """Trainer.weights_fingerprint of the model weights in one of our checkpoints."""
  import hashlib

  import modeling
  model = modeling.BertPretrainingModel(modeling.BertConfig.from_json_file(str(config)))
  tf.train.Checkpoint(model=model).restore(str(prefix)).expect_partial()
  digest = hashlib.sha256()
  for variable in model.weights:
    digest.update(variable.numpy().tobytes())
  return digest.hexdigest()


def test_lost_host_restart_continues_on_the_rest_with_the_same_global_batch(cluster, data, tf):
  """Host 1's link is cut for good at step 12 (checkpoints every 5 steps): the run fails, the
  multinode script probes the hosts, relaunches on host 0 alone with --num_accumulation_steps
  doubled, and reaches the last step from ckpt-10, its weights exactly the checkpoint's."""
  trace_dir = data.root / "restart" / "trace"
  trace_dir.mkdir(parents=True)
  try:
    run = launch(cluster, data, "restart", "mpirun", steps=30, marker="step 12/",
                 event=lambda proc: cluster.cut(1),
                 settings=dict(MAX_RESTARTS="1", PROBE_TIMEOUT_SECS="3"),
                 hang_timeout_secs=HANG_TIMEOUT, save_checkpoints_steps=5, trace_dir=trace_dir)
  finally:
    cluster.restore(1)
  output = run.result.output
  run.result.check()
  assert re.search(rf"restart 1 of 1 after exit \d+: hosts {re.escape(cluster.hosts[0])},"
                   rf"{re.escape(cluster.hosts[1])} -> {re.escape(cluster.hosts[0])}; ranks "
                   r"2 -> 1; --num_accumulation_steps 1 -> 2 \(global batch 8 kept\)", output), (
                       output[-3000:])
  resumed = re.search(r"Resuming from (\S+ckpt-(\d+)) at step (\d+)", output)
  assert resumed and resumed.group(2) == resumed.group(3) == "10", output[-3000:]
  assert "1 ranks x 4 sequences x 2 accumulation steps = global batch 8" in output
  assert h.logged_losses(output)[30]
  trace = read_trace(run.output_dir, 0)  # the restarted rank 0 wrote it last
  assert trace["start_step"] == 10
  assert trace["start_weights_sha256"] == checkpoint_fingerprint(
      tf, data.config, pathlib.Path(resumed.group(1)))
  assert (run.output_dir / "bert_model.ckpt.index").exists()
  print(f"lost host to finished run: {run.event_seconds:.1f} s")


def test_usage_error_is_not_retried(cluster, data):
  run = launch(cluster, data, "usage", "mpirun", settings=dict(MAX_RESTARTS="3"),
               no_such_flag=1)
  assert run.result.returncode == 2, run.result.output[-3000:]
  assert "a usage or configuration error (exit 2): not retried" in run.result.output
  assert run.result.output.count("+ mpirun ") == 1
