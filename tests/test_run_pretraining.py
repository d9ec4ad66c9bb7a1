"""run_pretraining.py end to end: real processes, real horovodrun, a tiny model and data.

Every run is a subprocess on a 2-layer, hidden-32 BERT with a 235-token vocab, sequences of
32 and a handful of steps. The ~17 independent runs start together from one module fixture
(`runs`) and share the two cores (a two-rank job takes both), so the module's wall time is
about half its CPU time; selecting one test still starts them all. Exact comparisons use no
dropout and --shuffle_input=False, and compare the exported bert_model.ckpt within 1e-5; the
resume test keeps Google's dropout and shuffling, which a resume must restore too.
`pytest -s` prints each run's seconds.
"""
import dataclasses
import json
import math
import pathlib
import re
import signal
import subprocess
import time

import numpy as np
import pretraining_helpers as h
import pytest
import tiny

TOLERANCE = 1e-5
MICRO_BATCH = 4
EXACT_STEPS = 6  # steps of the runs compared exactly
RESUME_STEPS = 24  # long enough that a checkpoint appears well before the end
RUN_TIMEOUT = 600  # a whole run, start-up included, on a busy 2-core machine
FAULT_MARKER = "injected failure on rank 1 at step 3"


@dataclasses.dataclass
class Data:
  root: pathlib.Path
  vocab_size: int
  config: pathlib.Path  # no dropout
  dropout_config: pathlib.Path  # Google's 0.1 dropout, for the resume test
  shard_a: pathlib.Path
  shard_b: pathlib.Path
  # shard_a and shard_b interleaved in blocks of MICRO_BATCH records: A[0:4] B[0:4] A[4:8]...
  interleaved: pathlib.Path
  records_a: list
  records_b: list


@pytest.fixture(scope="module")
def data(tmp_path_factory, tf) -> Data:
  """Two shards made by create_pretraining_data.py from different Austen documents."""
  root = tmp_path_factory.mktemp("pretraining")
  vocab, vocab_size, corpus = h.write_tiny_vocab_and_corpus(root)
  shard_a, shard_b = h.create_pretraining_data(
      corpus, [root / "shard_a.tfrecord", root / "shard_b.tfrecord"], vocab)
  records_a, records_b = h.read_records(tf, shard_a), h.read_records(tf, shard_b)
  blocks = []
  for start in range(0, 16 * MICRO_BATCH, MICRO_BATCH):
    blocks += records_a[start:start + MICRO_BATCH] + records_b[start:start + MICRO_BATCH]
  interleaved = root / "interleaved.tfrecord"
  with tf.io.TFRecordWriter(str(interleaved)) as writer:
    for record in blocks:
      writer.write(record)
  return Data(root=root, vocab_size=vocab_size,
              config=tiny.write_config(root / "bert_config.json", vocab_size, dropout=0.0),
              dropout_config=tiny.write_config(root / "bert_config_dropout.json", vocab_size,
                                               dropout=0.1),
              shard_a=shard_a, shard_b=shard_b, interleaved=interleaved,
              records_a=records_a, records_b=records_b)


@dataclasses.dataclass
class KilledAndResumed:
  finished_before_kill: bool
  killed_output: str
  resumed: h.Result


def kill_after_first_checkpoint(args: list, output_dir: pathlib.Path, log: pathlib.Path,
                                timeout: float) -> KilledAndResumed:
  """Starts `args`, SIGKILLs it once output_dir holds a checkpoint, then reruns `args`."""
  with open(log, "w") as log_file:
    proc = subprocess.Popen([str(a) for a in args], cwd=h.REPO, env=h.subprocess_env(),
                            stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.perf_counter() + timeout
    # CheckpointManager writes the "checkpoint" state file last, atomically.
    while not (output_dir / "checkpoint").exists() and proc.poll() is None:
      if time.perf_counter() > deadline:
        h.kill_group(proc)
        raise AssertionError(f"no checkpoint in {output_dir} after {timeout} s")
      time.sleep(0.02)
    finished_before_kill = proc.poll() is not None
    h.kill_group(proc, signal.SIGKILL)
    proc.wait()
  return KilledAndResumed(finished_before_kill, log.read_text(),
                          h.run_process(args, timeout=timeout))


def write_init_checkpoints(data: Data) -> tuple[pathlib.Path, pathlib.Path, dict]:
  """A tiny model's weights (random, not what --seed would give) as a Google TF1 checkpoint
  and a Hugging Face folder. Returns (tf1 prefix, hf folder, {Google name: array})."""
  import modeling
  from bert import checkpoints
  config = modeling.BertConfig.from_json_file(str(data.config))
  shapes = {name: value.shape for name, value in
            checkpoints.model_tensors(modeling.BertPretrainingModel(config)).items()}
  rng = np.random.default_rng(7)
  tensors = {name: rng.normal(1.0 if name.endswith("gamma") else 0.0, 0.05, shape)
             .astype(np.float32) for name, shape in shapes.items()}
  prefix = data.root / "init_tf1" / "bert_model.ckpt"
  checkpoints.write_tf1_checkpoint(tensors, str(prefix))
  hf_dir = data.root / "init_hf"
  checkpoints.write_hf_checkpoint(tensors, config, str(hf_dir))
  return prefix, hf_dir, tensors


@pytest.fixture(scope="module")
def init_checkpoints(data):
  return write_init_checkpoints(data)


@pytest.fixture(scope="module")
def runs(data, init_checkpoints):
  """Starts every independent run of this module at once; {name: Future of its result}."""
  root = data.root
  tf1_prefix, hf_dir, _ = init_checkpoints
  both_shards = [data.shard_a, data.shard_b]

  def args(name, config=data.config, files=both_shards, **flags):
    return h.run_pretraining_args(config, files, root / name, **flags)

  def traced_args(name, **flags):
    trace_dir = root / f"{name}_trace"
    trace_dir.mkdir()
    return args(name, script=h.INSTRUMENTED_RUN_PRETRAINING, trace_dir=trace_dir, **flags)

  pool = h.CorePool(cores=2)
  futures = {}

  def start(name, cores, fn, *fn_args, **fn_kwargs):
    futures[name] = pool.submit(cores, fn, *fn_args, **fn_kwargs)

  # The exact comparisons start from --init_checkpoint: only rank 0 loads it, so the ranks
  # start identical only if rank 0's state is broadcast (the seed alone would also agree).
  exact = dict(num_train_steps=EXACT_STEPS, init_checkpoint=tf1_prefix)
  # Two-rank jobs first: they wait for both cores.
  start("two_ranks", 2, h.run_process, h.horovodrun_args(2, traced_args("two_ranks", **exact)),
        timeout=RUN_TIMEOUT)
  start("two_ranks_grouped", 2, h.run_process,
        h.horovodrun_args(2, args("two_ranks_grouped", overlap_allreduce=False, **exact)),
        timeout=RUN_TIMEOUT)
  start("failure", 2, h.run_process,
        h.horovodrun_args(2, args("failure", script=h.INSTRUMENTED_RUN_PRETRAINING,
                                  fail_at="1:3", num_train_steps=8)),
        timeout=RUN_TIMEOUT, marker=FAULT_MARKER, marker_timeout=60)
  start("accumulation", 1, h.run_process,
        traced_args("accumulation", num_accumulation_steps=2, **exact), timeout=RUN_TIMEOUT)
  start("double_batch", 1, h.run_process,
        args("double_batch", files=[data.interleaved], train_batch_size=2 * MICRO_BATCH,
             **exact), timeout=RUN_TIMEOUT)
  # The resume pair: Google's dropout and shuffled input, which a resume must also restore.
  resume_flags = dict(config=data.dropout_config, shuffle_input=True, num_train_steps=RESUME_STEPS,
                      save_checkpoints_steps=4, log_freq=4, do_eval=True, max_eval_steps=2)
  start("uninterrupted", 1, h.run_process, args("uninterrupted", **resume_flags),
        timeout=RUN_TIMEOUT)
  start("resumed", 1, kill_after_first_checkpoint, args("resumed", **resume_flags),
        root / "resumed", root / "killed.log", timeout=RUN_TIMEOUT)
  start("fp16", 1, h.run_process, args("fp16", precision="fp16", num_train_steps=3),
        timeout=RUN_TIMEOUT)
  # TF's C++ INFO log says when a cluster is XLA-compiled.
  start("xla", 1, h.run_process, args("xla", use_xla=True, num_train_steps=3),
        timeout=RUN_TIMEOUT, TF_CPP_MIN_LOG_LEVEL="0", TF_CPP_MAX_VLOG_LEVEL="0")
  start("bf16", 1, h.run_process, args("bf16", precision="bf16", num_train_steps=3),
        timeout=RUN_TIMEOUT)
  for name, path in (("init_tf1", tf1_prefix), ("init_hf", hf_dir)):
    # learning_rate 0: the exported weights must be exactly the initial ones.
    start(name, 1, h.run_process,
          args(name, init_checkpoint=path, learning_rate=0.0, num_train_steps=1),
          timeout=RUN_TIMEOUT)
  small_vocab = tiny.write_config(root / "bert_config_vocab100.json", 100, dropout=0.0)
  short_positions = tiny.write_config(root / "bert_config_pos16.json", data.vocab_size,
                                      dropout=0.0, max_position_embeddings=16)
  for name, kwargs in (("bad_vocab", dict(config=small_vocab)),
                       ("bad_positions", dict(config=short_positions)),
                       ("bad_seq_length", dict(max_seq_length=h.SEQ_LENGTH - 8)),
                       ("bad_predictions", dict(max_predictions_per_seq=h.MAX_PREDICTIONS + 2))):
    start(name, 1, h.run_process, args(name, **kwargs), timeout=RUN_TIMEOUT)
  yield futures
  pool.shutdown()
  # Shown with `pytest -s`: where the module's time goes.
  for name, future in futures.items():
    if future.done() and not future.cancelled() and future.exception() is None:
      done = future.result()
      seconds = done.seconds if isinstance(done, h.Result) else done.resumed.seconds
      print(f"{name}: {seconds:.1f} s")


def result(runs, name) -> h.Result:
  return runs[name].result()


def output_dir(run: h.Result) -> pathlib.Path:
  return pathlib.Path(re.search(r"--output_dir=(\S+)", " ".join(run.args)).group(1))


def exported(tf, run: h.Result) -> dict[str, np.ndarray]:
  return h.read_tf1_weights(tf, output_dir(run) / "bert_model.ckpt")


def gradient_norms(tf, run: h.Result) -> list[float]:
  """The logged global norm of the averaged gradient, step by step (log_freq 1)."""
  norms = h.tensorboard_scalars(tf, output_dir(run))["gradient_norm"]
  return [norms[step] for step in sorted(norms)]


# ----------------------------------------------------------------------------- two ranks

def read_trace(data: Data, name: str, rank: int) -> dict:
  return json.loads((data.root / f"{name}_trace" / f"rank{rank}.json").read_text())


def test_two_ranks_start_and_end_identical(runs, data):
  run = result(runs, "two_ranks").check()
  assert "2 ranks x 4 sequences x 1 accumulation steps = global batch 8" in run.output
  assert "Weights from " in run.output  # rank 0 loaded --init_checkpoint; rank 1 did not
  rank0, rank1 = read_trace(data, "two_ranks", 0), read_trace(data, "two_ranks", 1)
  assert rank0["start_weights_sha256"] == rank1["start_weights_sha256"]
  assert rank0["end_weights_sha256"] == rank1["end_weights_sha256"]
  assert rank0["end_weights_sha256"] != rank0["start_weights_sha256"], "nothing trained"


def test_two_ranks_read_different_shards(runs, data, tf):
  result(runs, "two_ranks").check()
  first_a = h.parse_input_ids(tf, data.records_a[:MICRO_BATCH])
  first_b = h.parse_input_ids(tf, data.records_b[:MICRO_BATCH])
  assert not np.array_equal(first_a, first_b)
  # first_input_ids: [accumulation steps 1, batch, seq]
  np.testing.assert_array_equal(read_trace(data, "two_ranks", 0)["first_input_ids"], [first_a])
  np.testing.assert_array_equal(read_trace(data, "two_ranks", 1)["first_input_ids"], [first_b])


def test_two_ranks_loss_falls(runs):
  losses = h.logged_losses(result(runs, "two_ranks").check().output)
  assert sorted(losses) == list(range(1, EXACT_STEPS + 1)), losses
  assert losses[EXACT_STEPS] < losses[1] - 0.2, losses


def test_overlapped_and_grouped_allreduce_train_the_same(runs, tf):
  """--overlap_allreduce (per-layer all-reduces during the backward pass, the default) and one
  grouped all-reduce after it: the same averaged gradients, so the same weights."""
  overlapped = result(runs, "two_ranks").check()
  grouped = result(runs, "two_ranks_grouped").check()
  assert h.max_abs_difference(exported(tf, overlapped), exported(tf, grouped)) < TOLERANCE
  np.testing.assert_allclose(gradient_norms(tf, overlapped), gradient_norms(tf, grouped),
                             rtol=1e-5)


def test_two_ranks_equal_one_process_with_same_global_batch(runs, data, tf):
  """2 ranks x batch 4 (shard A on rank 0, B on rank 1) == 1 process x 2 accumulated
  micro-batches of 4 (A then B): proves the all-reduce averages and counts nothing twice.

  Adam's update hardly depends on the gradient's scale (a sum instead of a mean would train
  the same weights), so the averaged gradient's logged norm is compared too."""
  accumulation = result(runs, "accumulation").check()
  # The single process's micro-batches are A's first block, then B's: the interleave order.
  first_a = h.parse_input_ids(tf, data.records_a[:MICRO_BATCH])
  first_b = h.parse_input_ids(tf, data.records_b[:MICRO_BATCH])
  np.testing.assert_array_equal(read_trace(data, "accumulation", 0)["first_input_ids"],
                                [first_a, first_b])
  two_ranks = result(runs, "two_ranks").check()
  assert h.max_abs_difference(exported(tf, two_ranks), exported(tf, accumulation)) < TOLERANCE
  np.testing.assert_allclose(gradient_norms(tf, two_ranks), gradient_norms(tf, accumulation),
                             rtol=1e-5)


# --------------------------------------------------------------------------- accumulation

def test_accumulation_equals_double_batch(runs, data, tf):
  # Each micro-batch's MLM loss is normalised by its own weight sum; the equality is exact
  # only when every micro-batch holds as many masked tokens, which the data guarantees.
  weight_sums = h.masked_weight_sums(tf, h.read_records(tf, data.interleaved))
  assert np.all(weight_sums == h.MAX_PREDICTIONS)
  accumulation = result(runs, "accumulation").check()
  double_batch = result(runs, "double_batch").check()
  assert h.max_abs_difference(exported(tf, accumulation), exported(tf, double_batch)) < TOLERANCE
  # The accumulator must average the micro-batches' gradients, not sum them.
  np.testing.assert_allclose(gradient_norms(tf, accumulation), gradient_norms(tf, double_batch),
                             rtol=1e-5)


# --------------------------------------------------------------------------------- resume

def test_resume_after_sigkill_equals_uninterrupted_run(runs, tf):
  killed = result(runs, "resumed")
  assert not killed.finished_before_kill, "the run ended before it could be killed"
  resumed = killed.resumed.check()
  match = re.search(r"Resuming from (\S+) at step (\d+)", resumed.output)
  assert match, resumed.output[-3000:]
  step = int(match.group(2))
  assert 0 < step < RESUME_STEPS
  assert f"Skipping the {step} steps of input already consumed" in resumed.output
  # Only the steps after the checkpoint were run again.
  assert min(h.logged_losses(resumed.output)) > step
  uninterrupted = exported(tf, result(runs, "uninterrupted").check())
  assert h.max_abs_difference(exported(tf, resumed), uninterrupted) < TOLERANCE


# -------------------------------------------------------------------------------- failure

def test_one_rank_crashing_ends_the_job(runs):
  run = result(runs, "failure")
  assert run.returncode != 0
  assert run.seconds_after_marker is not None, run.output[-3000:]
  assert f"RuntimeError: {FAULT_MARKER}" in run.output
  assert run.seconds_after_marker < 60
  assert "bert_model.ckpt" not in run.output  # it did not carry on to the export


# ---------------------------------------------------------------------- precision and XLA

def test_fp16_with_loss_scaling(runs, tf):
  run = result(runs, "fp16").check()
  assert "precision fp16" in run.output
  metrics = h.logged_metrics(run.output)
  assert sorted(metrics) == [1, 2, 3], run.output[-3000:]
  # Dynamic loss scaling starts high and halves on overflow; it must stay a usable scale.
  assert all(m["loss_scale"] >= 1 and math.isfinite(m["loss"]) for m in metrics.values())
  assert all(np.all(np.isfinite(v)) for v in exported(tf, run).values())


def test_xla(runs, tf):
  run = result(runs, "xla").check()
  assert ", XLA;" in run.output
  assert "Compiled cluster using XLA" in run.output
  assert all(np.all(np.isfinite(v)) for v in exported(tf, run).values())


def test_bf16(runs, tf):
  run = result(runs, "bf16").check()
  assert "precision bf16" in run.output
  assert all(math.isfinite(v) for v in h.logged_losses(run.output).values())
  assert all(np.all(np.isfinite(v)) for v in exported(tf, run).values())


# ------------------------------------------------------------------------ bad configuration

def assert_fails_before_training(run: h.Result, *expected: str):
  assert run.returncode == 2, run.output[-3000:]  # a configuration error: not worth a retry
  assert "***** Training:" not in run.output
  for text in expected:
    assert text in run.output, run.output[-3000:]


def test_vocab_smaller_than_the_data(runs, data):
  assert_fails_before_training(result(runs, "bad_vocab"), f"{data.shard_a}: record 0",
                               "vocab_size is 100")


def test_max_seq_length_above_max_position_embeddings(runs):
  assert_fails_before_training(result(runs, "bad_positions"),
                               f"max_seq_length={h.SEQ_LENGTH} is above the model's "
                               "max_position_embeddings=16", "bert_config_pos16.json")


def test_data_written_with_another_max_seq_length(runs, data):
  assert_fails_before_training(
      result(runs, "bad_seq_length"), f"{data.shard_a}: record 0",
      f"the data was written with --max_seq_length={h.SEQ_LENGTH}")


def test_data_written_with_another_max_predictions_per_seq(runs, data):
  assert_fails_before_training(
      result(runs, "bad_predictions"), f"{data.shard_a}: record 0",
      f"the data was written with --max_predictions_per_seq={h.MAX_PREDICTIONS}")


# ---------------------------------------------------------------------- eval and summaries

def test_eval_results(runs, data):
  result(runs, "uninterrupted").check()
  results = {k: float(v) for k, v in
             tiny.read_results(data.root / "uninterrupted" / "eval_results.txt").items()}
  assert sorted(results) == ["global_step", "loss", "masked_lm_accuracy", "masked_lm_loss",
                             "next_sentence_accuracy", "next_sentence_loss"]
  assert results["global_step"] == RESUME_STEPS
  assert 0 <= results["masked_lm_accuracy"] <= 1 and 0 <= results["next_sentence_accuracy"] <= 1
  assert results["loss"] == pytest.approx(
      results["masked_lm_loss"] + results["next_sentence_loss"], rel=1e-5)


def test_tensorboard_scalars(runs, data, tf):
  run = result(runs, "uninterrupted").check()
  scalars = h.tensorboard_scalars(tf, data.root / "uninterrupted")
  logged_steps = list(range(4, RESUME_STEPS + 1, 4))
  for tag in ("loss", "learning_rate", "masked_lm_accuracy"):
    assert sorted(scalars.get(tag, {})) == logged_steps, (tag, sorted(scalars))
  # The summaries hold what the log printed, and the learning rate follows the schedule
  # (no warmup, linear decay to 0; logged for the next step).
  for step, loss in h.logged_losses(run.output).items():
    assert scalars["loss"][step] == pytest.approx(loss, rel=1e-3)
  for step in logged_steps:
    assert scalars["learning_rate"][step] == pytest.approx(1e-3 * (1 - step / RESUME_STEPS),
                                                           abs=1e-9)


# ----------------------------------------------------------------------- init checkpoints

@pytest.mark.parametrize("name", ["init_tf1", "init_hf"])
def test_init_checkpoint(runs, init_checkpoints, tf, name):
  run = result(runs, name).check()
  assert re.search(r"Weights from \S+", run.output), run.output[-3000:]
  _, _, expected = init_checkpoints
  assert h.max_abs_difference(exported(tf, run), expected) == 0.0
