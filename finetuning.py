"""What run_classifier.py and run_squad.py share: flags, the task heads, the loop glue.

* Flags: Google's common fine-tuning flags (same names and defaults) and run_pretraining.py's
  training block (common_flags.define_training_flags: --use_horovod, --optimizer_type,
  --auto_mixed_precision/--precision, --use_xla, --num_accumulation_steps, ...).
* Heads, with Google's variable names so a fine-tuned model exports to Google's checkpoints:
  `BertClassifier` (root-level `output_weights` [num_labels, H], `output_bias`) and
  `BertSquad` (`cls/squad/output_weights` [2, H], `cls/squad/output_bias`), each holding its
  BertModel as `.bert` (the attribute checkpoints.read_our_checkpoint looks for).
* Glue: config + world + precision + seed (`setup`), the Trainer (common_flags.build_trainer)
  initialised from --init_checkpoint (Google TF1, Hugging Face or ours; the new head is
  allowed to be missing), the rank-sharded in-memory train input and batched prediction.

Steps follow Google: num_train_steps = int(num_examples / global_batch * num_train_epochs),
num_warmup_steps = int(num_train_steps * warmup_proportion), with global_batch =
train_batch_size x ranks x num_accumulation_steps (the learning rate is never scaled).
"""
from typing import Iterator, Sequence

import keras
import numpy as np
import tensorflow as tf
from absl import flags
from absl import logging
from keras import ops

import checkpoints
import common_flags
import modeling
import tokenization
import training

FLAGS = flags.FLAGS


# --------------------------------------------------------------------------------- flags

def define_finetuning_flags() -> None:
  """Google's flags common to run_classifier and run_squad, and the training block."""
  flags.DEFINE_string("bert_config_file", None, "The config json file corresponding to the "
                      "pre-trained BERT model (Google's bert_config.json or HF config.json).")
  flags.DEFINE_string("output_dir", None, "The output directory where the model checkpoints "
                      "and results will be written.")
  flags.DEFINE_string("init_checkpoint", None, "Initial weights: a Google TF1 checkpoint, a "
                      "Hugging Face folder or one of our checkpoints.")
  flags.DEFINE_float("learning_rate", 5e-5, "The initial learning rate for Adam.")
  flags.DEFINE_float("num_train_epochs", 3.0, "Total number of training epochs to perform.")
  flags.DEFINE_float("warmup_proportion", 0.1, "Proportion of training to perform linear "
                     "learning rate warmup for. E.g., 0.1 = 10% of training.")
  flags.DEFINE_integer("save_checkpoints_steps", 1000, "How often to save the model "
                       "checkpoint.")
  common_flags.define_training_flags(head_may_be_missing=True)


# --------------------------------------------------------------------------------- heads

def bert_inputs(features: dict) -> dict:
  """The BertModel inputs of a feature dict (our feature dicts name token types
  "segment_ids", as Google's)."""
  return {"input_ids": features["input_ids"], "input_mask": features["input_mask"],
          "token_type_ids": features["segment_ids"]}


@keras.saving.register_keras_serializable(package="bert")
class BertClassifier(modeling.BertConfigSerializable, keras.Model):
  """Google's run_classifier model: dropout(pooled_output) @ output_weights^T + output_bias.

  Variable paths are Google's: `bert/...`, `output_weights` [num_labels, H], `output_bias`
  [num_labels] (at the root, as Google's create_model makes them). num_labels=1 is
  regression (STS-B): the single logit is the predicted score.

  Called on {"input_ids", "input_mask", "segment_ids"}: int [B, S]; returns float32 logits
  [B, num_labels].
  """

  def __init__(self, config: modeling.BertConfig, num_labels: int,
               name: str = "bert_classifier", **kwargs):
    super().__init__(name=name, **kwargs)
    if num_labels < 1:
      raise ValueError(f"num_labels must be >= 1, got {num_labels}")
    self.config = config
    self.num_labels = num_labels
    self.bert = modeling.BertModel(config)
    self.dropout = keras.layers.Dropout(config.hidden_dropout_prob)
    init = keras.initializers.TruncatedNormal(stddev=config.initializer_range)
    # keras.Variable attributes, not add_weight, so no name scope is prepended to the paths.
    self.output_weights = keras.Variable(init((num_labels, config.hidden_size)),
                                         name="output_weights")
    self.output_bias = keras.Variable(np.zeros(num_labels, np.float32), name="output_bias",
                                      autocast=False)
    self.built = True

  def call(self, inputs, training=None):
    pooled = self.bert(bert_inputs(inputs), training=training)["pooled_output"]
    pooled = self.dropout(pooled, training=training)
    logits = ops.matmul(pooled, ops.transpose(ops.cast(self.output_weights, pooled.dtype)))
    return ops.cast(logits, "float32") + ops.cast(self.output_bias, "float32")

  def get_config(self):
    return {"name": self.name, "config": self.config.to_dict(), "num_labels": self.num_labels}


@keras.saving.register_keras_serializable(package="bert")
class SquadHead(modeling.BertConfigSerializable, keras.layers.Layer):
  """Start/end logits of every position: sequence_output @ output_weights^T + output_bias,
  output_weights [2, H], output_bias [2] (Google's cls/squad/ variables, built under "cls")."""

  def __init__(self, config: modeling.BertConfig, name: str = "squad", **kwargs):
    super().__init__(name=name, **kwargs)
    self.config = config

  def build(self, input_shape=None):
    self.output_weights = self.add_weight(
        name="output_weights", shape=(2, self.config.hidden_size),
        initializer=keras.initializers.TruncatedNormal(stddev=self.config.initializer_range))
    self.output_bias = self.add_weight(name="output_bias", shape=(2,), initializer="zeros",
                                       autocast=False)

  def call(self, sequence_output):
    """sequence_output: [B, S, H]. Returns float32 (start_logits, end_logits), each [B, S]."""
    logits = ops.einsum("bsh,kh->bsk", sequence_output,
                        ops.cast(self.output_weights, sequence_output.dtype))
    logits = ops.cast(logits, "float32") + self.output_bias
    return logits[:, :, 0], logits[:, :, 1]


@keras.saving.register_keras_serializable(package="bert")
class BertSquad(modeling.BertConfigSerializable, keras.Model):
  """Google's run_squad model: BertModel (`.bert`) and SquadHead (`cls/squad/...`).

  Called on {"input_ids", "input_mask", "segment_ids"}: int [B, S]; returns
  {"start_logits", "end_logits"}: float32 [B, S].
  """

  def __init__(self, config: modeling.BertConfig, name: str = "bert_squad", **kwargs):
    super().__init__(name=name, **kwargs)
    self.config = config
    self.bert = modeling.BertModel(config)
    self.squad_head = SquadHead(config)
    with keras.name_scope("cls"):
      self.squad_head.build()
    self.built = True

  def call(self, inputs, training=None):
    sequence_output = self.bert(bert_inputs(inputs), training=training)["sequence_output"]
    start_logits, end_logits = self.squad_head(sequence_output)
    return {"start_logits": start_logits, "end_logits": end_logits}

  def get_config(self):
    return {"name": self.name, "config": self.config.to_dict()}


# Prefixes of the head variables a pre-trained checkpoint does not hold.
CLASSIFIER_HEAD = ("output_weights", "output_bias")
SQUAD_HEAD = ("cls/squad/",)


def classifier_loss_fn(model, features, training):
  """Google's loss: mean cross-entropy (mean squared error for regression), float32.

  features: the model inputs and "label_ids": int [B] (float [B] for regression).
  Returns {"loss"} and, for classification, {"accuracy"}.
  """
  logits = model(features, training=training)
  if model.num_labels == 1:
    labels = ops.cast(features["label_ids"], "float32")
    return {"loss": ops.mean(ops.square(logits[:, 0] - labels))}
  labels = ops.cast(features["label_ids"], "int32")
  loss = ops.mean(ops.sparse_categorical_crossentropy(labels, logits, from_logits=True))
  correct = ops.cast(ops.equal(ops.cast(ops.argmax(logits, axis=-1), "int32"), labels),
                     "float32")
  return {"loss": loss, "accuracy": ops.mean(correct)}


def squad_loss_fn(model, features, training):
  """Google's loss: the mean of the start and end position cross-entropies over positions.

  features: the model inputs and "start_positions", "end_positions": int [B] (0 = [CLS]).
  """
  outputs = model(features, training=training)
  start_loss = ops.sparse_categorical_crossentropy(
      ops.cast(features["start_positions"], "int32"), outputs["start_logits"],
      from_logits=True)
  end_loss = ops.sparse_categorical_crossentropy(
      ops.cast(features["end_positions"], "int32"), outputs["end_logits"], from_logits=True)
  return {"loss": (ops.mean(start_loss) + ops.mean(end_loss)) / 2.0}


# ---------------------------------------------------------------------------------- glue

def setup(max_seq_length: int):
  """Reads --bert_config_file, checks max_seq_length against it, makes the world (Horovod
  or one process), sets the precision policy and the seed, creates --output_dir.

  Returns:
    (config, world, precision)
  """
  config = modeling.BertConfig.from_json_file(FLAGS.bert_config_file)
  if max_seq_length > config.max_position_embeddings:
    raise ValueError(f"Cannot use sequence length {max_seq_length} because the BERT model was "
                     f"only trained up to sequence length {config.max_position_embeddings} "
                     f"({FLAGS.bert_config_file})")
  if FLAGS.num_accumulation_steps < 1:
    raise ValueError("--num_accumulation_steps must be >= 1")
  world, precision = common_flags.start_run()
  return config, world, precision


def create_tokenizer():
  """The tokenizer of --vocab_file or --spm_model_file, checked against --init_checkpoint's
  casing (Google's validate_case_matches_checkpoint)."""
  tokenization.validate_case_matches_checkpoint(FLAGS.do_lower_case, FLAGS.init_checkpoint)
  return tokenization.create_tokenizer(FLAGS.vocab_file, FLAGS.spm_model_file,
                                       FLAGS.do_lower_case)


def global_batch_size(world, train_batch_size: int) -> int:
  return train_batch_size * world.size * FLAGS.num_accumulation_steps


def train_steps(num_examples: int, global_batch: int, num_train_epochs: float,
                warmup_proportion: float) -> tuple[int, int]:
  """Google's (num_train_steps, num_warmup_steps) for num_examples over the global batch."""
  num_train_steps = int(num_examples / global_batch * num_train_epochs)
  if num_train_steps < 1:
    raise ValueError(f"{num_examples} training examples at a global batch of {global_batch} "
                     f"for {num_train_epochs} epochs make 0 optimizer steps; lower "
                     "--train_batch_size or raise --num_train_epochs")
  return num_train_steps, int(num_train_steps * warmup_proportion)


def restore_or_init(trainer: training.Trainer, head_prefixes: Sequence[str]) -> int:
  """Resumes from --output_dir's latest checkpoint, else loads --init_checkpoint (any
  format; the head under head_prefixes may be missing, it starts from its initializer).
  Returns the step."""
  def init_weights():
    if FLAGS.init_checkpoint:
      checkpoints.init_from_checkpoint(trainer.model, FLAGS.init_checkpoint,
                                       strict=FLAGS.strict_init_checkpoint,
                                       allow_missing=tuple(head_prefixes))
      logging.info("Weights from %s", FLAGS.init_checkpoint)
    else:
      logging.warning("No --init_checkpoint: the model starts from random weights")
  return trainer.restore_or_initialize(init_weights)


def make_trainer(model, loss_fn, head_prefixes: Sequence[str], world, precision: str,
                 num_train_examples: int | None) -> training.Trainer:
  """The run's Trainer (common_flags.build_trainer), resumed or initialised (restore_or_init).

  Args:
    num_train_examples: what Google's step count counts (examples; run_ner: windows), or None
      without --do_train (no optimizer steps).
  """
  num_train_steps = num_warmup_steps = 0
  if num_train_examples is not None:
    num_train_steps, num_warmup_steps = train_steps(
        num_train_examples, global_batch_size(world, FLAGS.train_batch_size),
        FLAGS.num_train_epochs, FLAGS.warmup_proportion)
  trainer = common_flags.build_trainer(model, loss_fn, world, precision, num_train_steps,
                                       num_warmup_steps, FLAGS.train_batch_size,
                                       FLAGS.max_seq_length)
  restore_or_init(trainer, head_prefixes)
  return trainer


def train(trainer: training.Trainer, arrays: dict, world, train_batch_size: int) -> dict:
  """Logs the setup and trains on the in-memory features `arrays` (rank-sharded)."""
  global_batch = global_batch_size(world, train_batch_size)
  num_examples = len(next(iter(arrays.values())))
  logging.info(
      "***** Training: %d examples; %d ranks x %d x %d accumulation steps = global batch %d; "
      "learning rate %g (not scaled), %s, dtype policy %s%s; %d steps *****", num_examples,
      world.size, train_batch_size, FLAGS.num_accumulation_steps, global_batch,
      FLAGS.learning_rate, FLAGS.optimizer_type, keras.mixed_precision.global_policy().name,
      ", XLA" if FLAGS.use_xla else "", trainer.config.num_train_steps)
  dataset = train_dataset(arrays, train_batch_size, world.rank, world.size, FLAGS.seed)
  return trainer.train(training.stack_micro_batches(dataset, FLAGS.num_accumulation_steps))


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

