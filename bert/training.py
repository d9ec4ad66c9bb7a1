"""The training loop every run_* script shares: a Keras 3 model, our optimizers, Horovod.

One optimizer step consumes `num_accumulation_steps` micro-batches in a single `tf.function`:
forward/backward per micro-batch (XLA-compiled with --use_xla), gradients summed in float32,
one grouped all-reduce (or one per micro-batch without --allreduce_post_accumulation), then the
optimizer's unscale -> finite check -> clip -> update. Horovod's ops are not XLA-compilable,
so --use_xla jit-compiles the forward/backward only. The optimizer update is always
jit-compiled, on its own, after the all-reduce.

Checkpoints hold the model, the optimizer (slots, iterations, loss scale) and the step, which
is also the input position: a restart skips the batches already consumed. Only rank 0
writes; every rank starts from rank 0's state, broadcast after restore.
"""
import dataclasses
import errno
import hashlib
import math
import os
import re
import time
from collections.abc import Callable
from collections.abc import Sequence

import tensorflow as tf
from absl import logging

import optimization
from bert import checkpoints
from bert import guards

_POLICIES = {"fp32": "float32", "fp16": "mixed_float16", "bf16": "mixed_bfloat16"}
# float16: skipped (overflowing) steps are normal, this many in a row are not.
MAX_SKIPPED_STEPS_IN_A_ROW = 100


def resolve_precision(precision: str, auto_mixed_precision: bool) -> str:
  """--precision, or fp16 when --auto_mixed_precision is set (NVIDIA's meaning on GPU)."""
  if precision not in _POLICIES:
    raise ValueError(f"--precision must be one of {', '.join(_POLICIES)}, got {precision!r}")
  if auto_mixed_precision:
    if precision not in ("fp32", "fp16"):
      raise ValueError(f"--auto_mixed_precision means fp16; it conflicts with "
                       f"--precision={precision}")
    return "fp16"
  return precision


def set_precision(precision: str) -> None:
  """Sets the Keras dtype policy; call before building the model."""
  import keras
  keras.mixed_precision.set_global_policy(_POLICIES[precision])


@dataclasses.dataclass
class LoopConfig:
  """What the loop needs from the flags."""
  output_dir: str
  num_train_steps: int
  num_accumulation_steps: int = 1
  allreduce_post_accumulation: bool = True
  use_xla: bool = False
  log_freq: int = 100
  save_checkpoints_steps: int = 1000
  keep_checkpoint_max: int = 5
  # No optimizer step in this long (after the first) ends the run; 0: never.
  hang_timeout_secs: float = 600
  # All-reduce each layer's gradients as soon as the backward pass has them (not with XLA).
  overlap_allreduce: bool = True
  # For throughput logs: sequences per micro-batch on one rank, and tokens per sequence.
  micro_batch_size: int = 1
  seq_length: int = 1


class Callback:
  """Hooks into Trainer.train; override what you need. Called on every rank."""

  def on_train_begin(self, trainer: "Trainer", step: int) -> None:
    """Before the first step of this run (`step`: where it starts, after a resume)."""

  def on_step_begin(self, trainer: "Trainer", step: int, features: dict) -> None:
    """Before optimizer step `step` (0-based), with its stacked micro-batches [N, B, ...]."""

  def on_train_end(self, trainer: "Trainer", step: int) -> None:
    """After the last step and its checkpoint."""


def stack_micro_batches(dataset: tf.data.Dataset, num_accumulation_steps: int) -> tf.data.Dataset:
  """Groups micro-batches into one element per optimizer step: each feature [N, B, ...]."""
  return dataset.batch(num_accumulation_steps, drop_remainder=True)


class Trainer:
  """Runs optimizer steps of `loss_fn` over a dataset, with checkpoints, logs and Horovod.

  Args:
    model: a built Keras model.
    optimizer: from optimization.create_optimizer (a loss scale attached for fp16).
    loss_fn: (model, features, training) -> dict of float32 scalars with "loss".
    world: distributed.SingleProcess or distributed.HorovodWorld.
    config: LoopConfig.
    callbacks: Callback instances, called in order.
  """

  def __init__(self, model, optimizer, loss_fn: Callable, world, config: LoopConfig,
               callbacks: Sequence[Callback] = ()):
    self.model = model
    self.callbacks = list(callbacks)
    self._skipped_in_a_row = 0  # float16 steps skipped for non-finite gradients.
    self.optimizer = optimizer
    self.loss_fn = loss_fn
    self.world = world
    self.config = config
    self.variables = list(model.trainable_variables)
    self.optimizer.build(self.variables)  # slots must exist before a restore
    self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="global_step")
    self.accumulator = (optimization.GradientAccumulator(self.variables)
                        if config.num_accumulation_steps > 1 else None)
    # Dropout's random state: Keras SeedGenerator variables, in model.variables but not in
    # model.weights, which tf.train.Checkpoint does not reach through the layers. Without it a
    # resumed run would replay the first dropout masks instead of continuing the sequence.
    weight_ids = {id(w) for w in model.weights}
    self.random_state = [v for v in model.variables if id(v) not in weight_ids]
    # The accumulator is empty at every step boundary, so it is not part of the checkpoint.
    self.checkpoint = tf.train.Checkpoint(model=model, optimizer=optimizer, step=self.step,
                                          random_state=self.random_state)
    self.manager = tf.train.CheckpointManager(
        self.checkpoint, config.output_dir, max_to_keep=config.keep_checkpoint_max)
    self._forward_backward = tf.function(self._gradients, jit_compile=config.use_xla)
    # With --use_xla the backward pass is one XLA cluster whose gradients all appear at once,
    # and Horovod's ops cannot run inside it: nothing to overlap with, one all-reduce after it.
    self._allreduce_groups = (layer_groups(self.variables)
                              if config.overlap_allreduce and not config.use_xla else None)
    # The update reads and writes every weight and both Adam slots: op by op, each of its ~15
    # element-wise ops is a pass over memory; jit-compiled it is one fused pass per variable
    # (BERT-base on CPU: 1.5 -> 0.5 CPU-s per step, 10% of the whole step). It is pure
    # element-wise math, so XLA is always available for it, with or without --use_xla.
    self._apply_gradients = tf.function(self._apply, jit_compile=True)
    self._train_step = tf.function(self._step)
    self._summary_writer = (tf.summary.create_file_writer(config.output_dir)
                            if world.is_chief else None)

  # ------------------------------------------------------------------ the step

  def _gradients(self, features):
    with tf.GradientTape() as tape:
      metrics = self.loss_fn(self.model, features, training=True)
      scaled_loss = self.optimizer.scale_loss(metrics["loss"])
    return tape.gradient(scaled_loss, self.variables), metrics

  def _apply(self, grads):
    """Applies the all-reduced gradients; returns their global norm (unscaled, before
    clipping). Jit-compiled: norm, clip and update fuse into a few passes."""
    # Of the averaged, unscaled gradient (before clipping): equal on every rank, and what
    # shows that the all-reduce averages (Adam's update alone hardly depends on the scale).
    gradient_norm = optimization.global_norm(grads)
    if self.optimizer.loss_scale is not None:
      gradient_norm = gradient_norm / self.optimizer.loss_scale.scale
    self.optimizer.apply(grads, self.variables)
    return gradient_norm

  def _allreduce(self, grads):
    return self.world.allreduce_gradients(grads, self._allreduce_groups)

  def _step(self, stacked_features):
    """One optimizer step over N stacked micro-batches ({name: [N, B, ...]}).

    Overlapping, the backward pass is built into this function's graph (not called as a
    function of its own), so each layer's all-reduce runs as soon as that layer's gradients
    exist; with accumulation, on the last micro-batch (or on each, without
    --allreduce_post_accumulation).
    """
    n = self.config.num_accumulation_steps
    post_accumulation = self.config.allreduce_post_accumulation
    backward = self._gradients if self._allreduce_groups else self._forward_backward
    totals = None
    for i in range(n):
      grads, metrics = backward({k: v[i] for k, v in stacked_features.items()})
      if n > 1 and not post_accumulation:
        self.accumulator.accumulate(self._allreduce(grads))
      elif n > 1 and i < n - 1:
        self.accumulator.accumulate(grads)
      totals = metrics if totals is None else {k: totals[k] + metrics[k] for k in totals}
    if n == 1:
      grads = self._allreduce(grads)
    elif post_accumulation:
      grads = self._allreduce(self.accumulator.gradients_with(grads))
    else:
      grads = self.accumulator.gradients()
    # Dense before the update (which is dense anyway): the squares of an IndexedSlices' values
    # are not the squares of its rows when a token id repeats in the batch. And outside the
    # jit-compiled update: an IndexedSlices has a row per token, so each new batch length
    # would compile the update again.
    grads = [tf.convert_to_tensor(g) if isinstance(g, tf.IndexedSlices) else g for g in grads]
    gradient_norm = self._apply_gradients(grads)
    if self.accumulator is not None:
      self.accumulator.reset()
    self.step.assign_add(1)
    return {**{k: v / n for k, v in totals.items()}, "gradient_norm": gradient_norm}

  # ------------------------------------------------------------- state

  def restore_or_initialize(self, init_fn: Callable[[], None] | None = None) -> int:
    """Resumes from the latest checkpoint in output_dir, else runs `init_fn` (e.g. loading
    --init_checkpoint); on rank 0, then broadcasts rank 0's state. Returns the step."""
    latest = self.manager.latest_checkpoint
    if self.world.is_chief:
      if latest:
        self.checkpoint.restore(latest).assert_existing_objects_matched()
        logging.info("Resuming from %s at step %d", latest, int(self.step.numpy()))
      elif init_fn is not None:
        init_fn()
    self.world.broadcast_variables(self._state_variables())
    self._decorrelate_dropout()
    return int(self.step.numpy())

  def _decorrelate_dropout(self):
    """Gives each rank its own dropout stream after the broadcast copied rank 0's.

    A Keras SeedGenerator state is [stream, counter] and each draw advances the counter, so
    offsetting the stream by the rank keeps the ranks apart for good. Rank 0 keeps its stream:
    a single process, and a resumed job (only rank 0's state is saved), draw the same masks.
    """
    if self.world.rank == 0:
      return
    for state in self.random_state:
      offset = tf.constant([self.world.rank, 0], dtype=state.dtype)
      state.assign(state + offset)

  def _state_variables(self):
    state = list(self.model.variables) + list(self.optimizer.variables) + [self.step]
    if self.optimizer.loss_scale is not None:
      state += [self.optimizer.loss_scale.scale, self.optimizer.loss_scale.good_steps]
    return state

  def weights_fingerprint(self) -> str:
    """sha256 of the model's weights, byte for byte: equal exactly when ranks agree."""
    digest = hashlib.sha256()
    for variable in self.model.weights:
      digest.update(variable.numpy().tobytes())
    return digest.hexdigest()

  def latest_saved_step(self) -> int | None:
    latest = self.manager.latest_checkpoint
    return None if latest is None else int(latest.rsplit("-", 1)[1])

  def latest_checkpoint_name(self) -> str:
    latest = self.manager.latest_checkpoint
    return "none" if latest is None else os.path.basename(latest)

  def save(self) -> None:
    """Rank 0 writes ckpt-<step>. On failure (a full disk) nothing partial stays behind and
    guards.CheckpointWriteError names the checkpoint, the folder and the latest complete one."""
    if not self.world.is_chief:
      return
    step = int(self.step.numpy())
    try:
      path = self.manager.save(checkpoint_number=step)
    except (tf.errors.OpError, OSError) as error:
      for partial in tf.io.gfile.glob(os.path.join(self.config.output_dir, f"ckpt-{step}[._]*")):
        if tf.io.gfile.isdir(partial):
          tf.io.gfile.rmtree(partial)
        else:
          tf.io.gfile.remove(partial)
      reason = (getattr(error, "message", None) or str(error)).strip()
      full = "No space left" in reason or getattr(error, "errno", None) == errno.ENOSPC
      if full:
        reason = os.strerror(errno.ENOSPC)  # TensorFlow's message names only a temp file.
      raise guards.CheckpointWriteError(
          f"{'disk full: ' if full else ''}could not write checkpoint ckpt-{step} in "
          f"{self.config.output_dir} ({reason}); the latest complete checkpoint is "
          f"{self.latest_checkpoint_name()}") from None
    logging.info("Saved checkpoint %s", path)

  def export_tf1(self, config) -> str:
    """Writes output_dir/bert_model.ckpt (Google's names) and bert_config.json, on rank 0."""
    prefix = os.path.join(self.config.output_dir, "bert_model.ckpt")
    if self.world.is_chief:
      checkpoints.write_tf1_checkpoint(checkpoints.model_tensors(self.model), prefix)
      with open(os.path.join(self.config.output_dir, "bert_config.json"), "w") as f:
        f.write(config.to_json_string())
      logging.info("Exported Google TF1 checkpoint %s", prefix)
    return prefix

  # ------------------------------------------------------------- the loop

  def train(self, dataset: tf.data.Dataset,
            describe_input_error: Callable[[tf.errors.OpError], str] | None = None) -> dict:
    """Trains until num_train_steps. `dataset` yields stacked micro-batches (see
    stack_micro_batches) from the start of the data: the steps already done are skipped.

    Every step, the ranks agree (one small all-reduce) on whether to stop: after a stop
    signal, or when a rank's input failed. Then rank 0 checkpoints the steps done and every
    rank leaves: SystemExit(128 + signal), or guards.InputError naming what
    `describe_input_error(error)` says (e.g. the file and record offset). A non-finite step
    raises guards.NonFiniteError before anything of it is saved; a hang ends the process
    (guards.HangWatchdog).
    """
    cfg = self.config
    start = int(self.step.numpy())
    if start >= cfg.num_train_steps:
      logging.info("Already at step %d of %d: nothing to train", start, cfg.num_train_steps)
      return {}
    if start:
      logging.info("Skipping the %d steps of input already consumed", start)
    iterator = iter(dataset.skip(start))
    # One trace for every step the dataset declares, made now: fine-tuning batches come in a
    # few lengths (bert/length_buckets.py), and a trace per length would cost seconds each.
    self._train_step.get_concrete_function(dataset.element_spec)
    global_batch = cfg.micro_batch_size * self.world.size * cfg.num_accumulation_steps
    for callback in self.callbacks:
      callback.on_train_begin(self, start)
    pending, last = [], {}
    window_start, window_step = time.perf_counter(), start
    with guards.StopSignals() as signals, \
         guards.HangWatchdog(cfg.hang_timeout_secs, self.world.rank) as watchdog:
      for step in range(start, cfg.num_train_steps):
        watchdog.waiting_for("the input", step)
        features, input_error = _next_input(iterator, step, cfg.num_train_steps)
        watchdog.waiting_for("the stop-check all-reduce (with every rank)", step)
        stop_signal, input_failed = self.world.max_over_ranks(
            [signals.received or 0, int(input_error is not None)])
        if stop_signal or input_failed:
          self._stop(step, stop_signal, input_error, describe_input_error)
        for callback in self.callbacks:
          callback.on_step_begin(self, step, features)
        watchdog.waiting_for("the gradient all-reduce", step)
        metrics = self._train_step(features)
        done = step + 1
        self._check_finite(done, metrics)
        watchdog.step_done()
        pending.append(metrics)
        if step == start:
          # The first step traces and compiles: keep it out of the throughput.
          window_start, window_step = time.perf_counter(), done
        if done % cfg.log_freq == 0 or done == cfg.num_train_steps:
          last = self._log(done, pending, window_start, window_step, global_batch)
          pending, window_start, window_step = [], time.perf_counter(), done
        if done % cfg.save_checkpoints_steps == 0 or done == cfg.num_train_steps:
          self.save()
    for callback in self.callbacks:
      callback.on_train_end(self, cfg.num_train_steps)
    return last

  def _stop(self, step, stop_signal, input_error, describe_input_error):
    """Every rank stops before step `step`: rank 0 checkpoints the steps done, then each
    leaves with the exit the stop asks for."""
    if step > int(self.latest_saved_step() or 0):
      self.save()
    self.world.barrier()  # No rank exits (ending the job) before the checkpoint is written.
    checkpoint = f"ckpt-{step}" if step else "none (no step done)"
    if stop_signal:
      logging.warning("stopped by %s at step %d; checkpoint %s",
                      guards.signal_name(stop_signal), step, checkpoint)
      raise SystemExit(128 + stop_signal)
    if input_error is None:
      raise guards.InputError(f"another rank's input failed before step {step + 1}; "
                              f"checkpoint {checkpoint} (its log names the file)")
    detail = describe_input_error(input_error) if describe_input_error else input_error.message
    raise guards.InputError(f"the input failed before step {step + 1} on rank "
                            f"{self.world.rank}: {detail}; checkpoint {checkpoint}")

  def _check_finite(self, step, metrics):
    """Raises guards.NonFiniteError on a non-finite loss or gradient norm (fp32, bf16), or
    when float16 loss scaling cannot recover: 100 skipped steps in a row, or a skip at a
    loss scale of 1 (it would have to fall below 1)."""
    loss, gradient_norm = float(metrics["loss"]), float(metrics["gradient_norm"])
    loss_scale = self.optimizer.loss_scale
    if loss_scale is None:
      for name, value in (("loss", loss), ("gradient norm", gradient_norm)):
        if not math.isfinite(value):
          raise guards.NonFiniteError(
              f"the {name} is {value} at step {step}: stopping; no checkpoint of it is "
              f"written, the latest is {self.latest_checkpoint_name()}")
      return
    if math.isfinite(gradient_norm):
      self._skipped_in_a_row = 0
      return
    self._skipped_in_a_row += 1
    scale = float(loss_scale.scale.numpy())
    if self._skipped_in_a_row >= MAX_SKIPPED_STEPS_IN_A_ROW or scale <= loss_scale.min_scale:
      cause = (f"{self._skipped_in_a_row} steps in a row were skipped"
               if self._skipped_in_a_row >= MAX_SKIPPED_STEPS_IN_A_ROW else
               f"the loss scale would fall below {loss_scale.min_scale:g}")
      raise guards.NonFiniteError(
          f"float16 gradients are not finite at step {step} and {cause} (loss {loss}): "
          "the model overflows float16 even unscaled; stopping; the latest checkpoint is "
          f"{self.latest_checkpoint_name()}")

  def _log(self, step, pending, window_start, window_step, global_batch):
    metrics = {k: sum(float(m[k]) for m in pending) / len(pending) for k in pending[0]}
    metrics = self.world.average_scalars(metrics)
    elapsed = time.perf_counter() - window_start
    steps = step - window_step
    learning_rate = float(self.optimizer.learning_rate)  # at the next step
    metrics["learning_rate"] = learning_rate
    if self.optimizer.loss_scale is not None:
      metrics["loss_scale"] = float(self.optimizer.loss_scale.scale.numpy())
    if steps > 0 and elapsed > 0:
      metrics["sequences_per_sec"] = steps * global_batch / elapsed
      metrics["tokens_per_sec"] = metrics["sequences_per_sec"] * self.config.seq_length
      eta = (self.config.num_train_steps - step) * elapsed / steps
    else:
      eta = float("nan")
    if self.world.is_chief:
      parts = [f"step {step}/{self.config.num_train_steps}"]
      parts += [f"{k} {v:.4g}" for k, v in metrics.items()]
      parts.append(f"ETA {_format_seconds(eta)}")
      logging.info(" | ".join(parts))
      with self._summary_writer.as_default(step=step):
        for k, v in metrics.items():
          tf.summary.scalar(k, v)
      self._summary_writer.flush()
    return metrics

  def evaluate(self, dataset: tf.data.Dataset, max_steps: int | None) -> dict:
    """Averages loss_fn's metrics over up to max_steps batches of `dataset`."""
    @tf.function(jit_compile=self.config.use_xla)
    def eval_step(features):
      return self.loss_fn(self.model, features, training=False)

    totals, count = {}, 0
    for features in dataset.take(max_steps) if max_steps else dataset:
      for k, v in eval_step(features).items():
        totals[k] = totals.get(k, 0.0) + float(v)
      count += 1
    if not count:
      raise ValueError("The eval input is empty")
    return {k: v / count for k, v in totals.items()}


def layer_groups(variables) -> list[list[int]]:
  """Indices of `variables` per layer, in the order the backward pass completes them: the
  heads and pooler, the encoder's layers from the last to the first, the embeddings (whose
  gradient also collects the tied masked-LM output) last."""
  def forward_position(path):
    layer = re.search(r"(?:^|/)layer_(\d+)/", path)
    if layer:
      return 1 + int(layer.group(1))
    return 0 if "/embeddings/" in f"/{path}" and not path.startswith("cls/") else 1 << 30
  groups = {}
  for index, variable in enumerate(variables):
    path = getattr(variable, "path", None) or variable.name
    groups.setdefault(forward_position(path), []).append(index)
  return [groups[position] for position in sorted(groups, reverse=True)]


def _next_input(iterator, step, num_train_steps):
  """(features, None), or (None, the tf.errors.OpError) when reading the input failed."""
  try:
    return next(iterator), None
  except StopIteration:
    raise ValueError(f"The input ran out at step {step} of {num_train_steps}: "
                     "it must repeat for training") from None
  except (tf.errors.DataLossError, tf.errors.InvalidArgumentError,
          tf.errors.NotFoundError) as error:
    return None, error


def write_results(path: str, results: dict) -> None:
  """Google's eval_results.txt: sorted `key = value` lines."""
  with tf.io.gfile.GFile(path, "w") as f:
    for key in sorted(results):
      f.write(f"{key} = {results[key]}\n")


def _format_seconds(seconds: float) -> str:
  if seconds != seconds:  # NaN
    return "?"
  minutes, secs = divmod(int(seconds), 60)
  hours, minutes = divmod(minutes, 60)
  return f"{hours}:{minutes:02d}:{secs:02d}"
