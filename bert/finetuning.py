"""What the fine-tuning scripts share: the run's setup, the Trainer, input and prediction.

run_classifier.py, run_squad.py and run_ner.py turn their flags into a
run_setup.TrainingOptions and call these with explicit arguments; the task models and losses
live in bert/task_models.py.

Steps follow Google: num_train_steps = int(num_examples / global_batch * num_train_epochs),
num_warmup_steps = int(num_train_steps * warmup_proportion), with global_batch =
train_batch_size x ranks x num_accumulation_steps (the learning rate is never scaled).
"""
from collections.abc import Sequence

import keras
import numpy as np
import tensorflow as tf
from absl import logging

import modeling
from bert import checkpoints
from bert import length_buckets
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


def train(trainer: training.Trainer, arrays: dict, world, options: TrainingOptions,
          pad_to_max_length: bool = False) -> dict:
  """Logs the setup and trains on the in-memory features `arrays` (rank-sharded)."""
  num_examples = len(next(iter(arrays.values())))
  logging.info(
      "***** Training: %d examples; %d ranks x %d x %d accumulation steps = global batch %d; "
      "learning rate %g (not scaled), %s, dtype policy %s%s, %s; %d steps *****",
      num_examples, world.size, options.train_batch_size, options.num_accumulation_steps,
      options.global_batch_size(world.size), options.learning_rate, options.optimizer_type,
      keras.mixed_precision.global_policy().name, ", XLA" if options.use_xla else "",
      "padded to max_seq_length" if pad_to_max_length else "batches grouped by length",
      trainer.config.num_train_steps)
  return trainer.train(train_dataset(arrays, options.train_batch_size,
                                     options.num_accumulation_steps, world.rank, world.size,
                                     options.seed, pad_to_max_length))


def train_dataset(arrays: dict, batch_size: int, num_accumulation_steps: int, rank: int,
                  num_ranks: int, seed: int, pad_to_max_length: bool = False
                  ) -> tf.data.Dataset:
  """Endless optimizer steps over this rank's share of in-memory features.

  Examples are sharded by rank (each rank sees every num_ranks-th example) and reshuffled
  every epoch. By default one step's examples (batch_size x num_accumulation_steps) are
  grouped by length and cut to one bucket length (bert/length_buckets.py);
  pad_to_max_length keeps every example max_seq_length long, shuffled by tf.data.

  Args:
    arrays: {name: array [num_examples, ...]}, with "input_mask" [num_examples, seq].
  Returns:
    a dataset of {name: [num_accumulation_steps, batch_size, ...]} (training.Trainer's
    stacked micro-batches); per-token features are [..., length] with length a bucket.
  """
  shard = {name: value[rank::num_ranks] for name, value in arrays.items()}
  num_examples = len(shard["input_mask"])
  if num_examples == 0:
    raise ValueError(f"{len(arrays['input_mask'])} training examples leave none for rank "
                     f"{rank} of {num_ranks}")
  if pad_to_max_length:
    tensors = {name: tf.constant(value) for name, value in shard.items()}
    # The shuffle buffer holds indices, not features.
    indices = (tf.data.Dataset.range(num_examples)
               .shuffle(num_examples, seed=seed, reshuffle_each_iteration=True)
               .repeat().batch(batch_size, drop_remainder=True))
    batches = indices.map(
        lambda idx: {name: tf.gather(t, idx) for name, t in tensors.items()},
        num_parallel_calls=tf.data.AUTOTUNE)
    return training.stack_micro_batches(batches, num_accumulation_steps).prefetch(
        tf.data.AUTOTUNE)

  lengths = length_buckets.sequence_lengths(shard["input_mask"])
  max_seq_length = shard["input_mask"].shape[1]
  step_shape = (num_accumulation_steps, batch_size)

  def steps():
    for indices in length_buckets.training_batches(lengths, batch_size * num_accumulation_steps,
                                                   seed):
      length = length_buckets.padded_length(int(lengths[indices].max()), max_seq_length)
      yield {name: value.reshape(step_shape + value.shape[1:])
             for name, value in length_buckets.take(shard, indices, length).items()}

  signature = {name: tf.TensorSpec(step_shape + ((None,) + value.shape[2:] if value.ndim >= 2
                                                 else value.shape[1:]), value.dtype)
               for name, value in shard.items()}
  return tf.data.Dataset.from_generator(steps, output_signature=signature).prefetch(2)


def predict(model, arrays: dict, batch_size: int, use_xla: bool = False,
            input_names: Sequence[str] = ("input_ids", "input_mask", "segment_ids"),
            pad_to_max_length: bool = False, outputs_per_token: bool = False):
  """The model's outputs for every example, in input order (numpy; a dict for dict outputs).

  By default the examples run sorted by length, each batch cut to a bucket length
  (bert/length_buckets.py); pad_to_max_length runs Google's batches (input order, full
  length).

  Args:
    arrays: {name: array [num_examples, max_seq_length]}; only input_names go to the model.
    outputs_per_token: the outputs are [batch, length, ...]; they come back
      [num_examples, max_seq_length, ...], zero past each batch's length (padding).
  """
  inputs = {name: arrays[name] for name in input_names}
  # One trace for every batch size and length.
  signature = {name: tf.TensorSpec((None,) * value.ndim, value.dtype)
               for name, value in inputs.items()}

  @tf.function(jit_compile=use_xla, input_signature=[signature])
  def predict_step(features):
    return model(features, training=False)

  return length_buckets.predict_in_order(
      lambda features: tf.nest.map_structure(lambda t: t.numpy(), predict_step(features)),
      inputs, batch_size, pad_to_max_length, outputs_per_token)


def softmax(logits: np.ndarray) -> np.ndarray:
  """Row-wise softmax of float [n, k] logits (float32 out, as Google's probabilities)."""
  shifted = logits - logits.max(axis=-1, keepdims=True)
  exp = np.exp(shifted.astype(np.float64))
  return (exp / exp.sum(axis=-1, keepdims=True)).astype(np.float32)

