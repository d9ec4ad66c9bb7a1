"""What the fine-tuning scripts share: the run's setup, the Trainer, input and prediction.

run_classifier.py, run_squad.py and run_ner.py turn their flags into a
run_setup.TrainingOptions and call these with explicit arguments; the task models and losses
live in bert/task_models.py.

Steps follow Google: num_train_steps = int(num_examples / global_batch * num_train_epochs),
num_warmup_steps = int(num_train_steps * warmup_proportion), with global_batch =
train_batch_size x ranks x num_accumulation_steps (the learning rate is never scaled).
"""
from collections.abc import Iterator
from collections.abc import Sequence

import keras
import numpy as np
import tensorflow as tf
from absl import logging

import modeling
from bert import checkpoints
from bert import run_setup
from bert import training
from bert.run_setup import TrainingOptions

# ---------------------------------------------------------------------------------- glue

def setup(bert_config_file: str, options: TrainingOptions):
  """Reads the config, checks max_seq_length against it, makes the world (Horovod or one
  process), sets the precision policy and the seed, creates output_dir.

  Returns:
    (config, world, precision)
  """
  config = modeling.BertConfig.from_json_file(bert_config_file)
  config.check_seq_length(options.max_seq_length, bert_config_file)
  world, precision = run_setup.start_run(options)
  return config, world, precision


def train_steps(num_examples: int, global_batch: int, num_train_epochs: float,
                warmup_proportion: float) -> tuple[int, int]:
  """Google's (num_train_steps, num_warmup_steps) for num_examples over the global batch."""
  num_train_steps = int(num_examples / global_batch * num_train_epochs)
  if num_train_steps < 1:
    raise ValueError(f"{num_examples} training examples at a global batch of {global_batch} "
                     f"for {num_train_epochs} epochs make 0 optimizer steps; lower "
                     "--train_batch_size or raise --num_train_epochs")
  return num_train_steps, int(num_train_steps * warmup_proportion)


def restore_or_init(trainer: training.Trainer, head_prefixes: Sequence[str],
                    options: TrainingOptions) -> int:
  """Resumes from output_dir's latest checkpoint, else loads options.init_checkpoint (any
  format; the head under head_prefixes may be missing, it starts from its initializer).
  Returns the step."""
  def init_weights():
    if options.init_checkpoint:
      checkpoints.init_from_checkpoint(trainer.model, options.init_checkpoint,
                                       strict=options.strict_init_checkpoint,
                                       allow_missing=tuple(head_prefixes))
      logging.info("Weights from %s", options.init_checkpoint)
    else:
      logging.warning("No --init_checkpoint: the model starts from random weights")
  return trainer.restore_or_initialize(init_weights)


def make_trainer(model, loss_fn, head_prefixes: Sequence[str], world, precision: str,
                 options: TrainingOptions, num_train_examples: int | None,
                 num_train_epochs: float = 3.0, warmup_proportion: float = 0.1
                 ) -> training.Trainer:
  """The run's Trainer (run_setup.build_trainer), resumed or initialised (restore_or_init).

  Args:
    num_train_examples: what Google's step count counts (examples; run_ner: windows), or None
      without training (no optimizer steps).
  """
  num_train_steps = num_warmup_steps = 0
  if num_train_examples is not None:
    num_train_steps, num_warmup_steps = train_steps(
        num_train_examples, options.global_batch_size(world.size), num_train_epochs,
        warmup_proportion)
  trainer = run_setup.build_trainer(model, loss_fn, world, precision, options,
                                    num_train_steps, num_warmup_steps)
  restore_or_init(trainer, head_prefixes, options)
  return trainer


def train(trainer: training.Trainer, arrays: dict, world, options: TrainingOptions) -> dict:
  """Logs the setup and trains on the in-memory features `arrays` (rank-sharded)."""
  num_examples = len(next(iter(arrays.values())))
  logging.info(
      "***** Training: %d examples; %d ranks x %d x %d accumulation steps = global batch %d; "
      "learning rate %g (not scaled), %s, dtype policy %s%s; %d steps *****", num_examples,
      world.size, options.train_batch_size, options.num_accumulation_steps,
      options.global_batch_size(world.size), options.learning_rate, options.optimizer_type,
      keras.mixed_precision.global_policy().name, ", XLA" if options.use_xla else "",
      trainer.config.num_train_steps)
  dataset = train_dataset(arrays, options.train_batch_size, world.rank, world.size,
                          options.seed)
  return trainer.train(training.stack_micro_batches(dataset, options.num_accumulation_steps))


def train_dataset(arrays: dict, batch_size: int, rank: int, num_ranks: int,
                  seed: int) -> tf.data.Dataset:
  """Endless shuffled batches of this rank's share of in-memory features.

  Example indices are sharded by rank (each rank sees every num_ranks-th example), shuffled
  afresh every epoch, batched, and gathered from the arrays: the shuffle buffer holds
  indices, not features.

  Args:
    arrays: {name: array [num_examples, ...]}.
  Returns:
    a dataset of {name: [batch_size, ...]} (drop_remainder, so shapes are static).
  """
  num_examples = len(next(iter(arrays.values())))
  shard_size = len(range(rank, num_examples, num_ranks))
  if shard_size == 0:
    raise ValueError(f"{num_examples} training examples leave none for rank {rank} of "
                     f"{num_ranks}")
  tensors = {name: tf.constant(value) for name, value in arrays.items()}
  indices = (tf.data.Dataset.range(num_examples).shard(num_ranks, rank)
             .shuffle(shard_size, seed=seed, reshuffle_each_iteration=True)
             .repeat().batch(batch_size, drop_remainder=True))
  return indices.map(lambda idx: {name: tf.gather(t, idx) for name, t in tensors.items()},
                     num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)


def predict(model, arrays: dict, batch_size: int, use_xla: bool = False,
            input_names: Sequence[str] = ("input_ids", "input_mask", "segment_ids")
            ) -> Iterator:
  """Yields the model's outputs (numpy; a dict for dict outputs) batch by batch, in order.

  Args:
    arrays: {name: array [num_examples, ...]}; only input_names go to the model.
  """
  dataset = tf.data.Dataset.from_tensor_slices({n: arrays[n] for n in input_names})
  dataset = dataset.batch(batch_size).prefetch(tf.data.AUTOTUNE)

  @tf.function(jit_compile=use_xla, reduce_retracing=True)
  def predict_step(features):
    return model(features, training=False)

  for features in dataset:
    yield tf.nest.map_structure(lambda t: t.numpy(), predict_step(features))


def softmax(logits: np.ndarray) -> np.ndarray:
  """Row-wise softmax of float [n, k] logits (float32 out, as Google's probabilities)."""
  shifted = logits - logits.max(axis=-1, keepdims=True)
  exp = np.exp(shifted.astype(np.float64))
  return (exp / exp.sum(axis=-1, keepdims=True)).astype(np.float32)

