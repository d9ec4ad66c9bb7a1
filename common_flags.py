"""absl flag blocks that several scripts define alike, and what the training block builds.

* `define_tokenizer_flags`: --vocab_file, --spm_model_file, --do_lower_case (the fine-tuning
  scripts, extract_features.py, inference.py).
* `define_training_flags`: run_pretraining.py's training block (the ROCm fork's --use_horovod,
  --optimizer_type, --auto_mixed_precision; NVIDIA's --num_accumulation_steps,
  --allreduce_post_accumulation, --use_xla, --fp16_allreduce, --precision, --log_freq,
  --keep_checkpoint_max, --seed; Google's --iterations_per_loop; --strict_init_checkpoint),
  which every fine-tuning script defines too, so each flag means the same everywhere.
* `start_run` and `build_trainer`: the world, precision, seed and Trainer those flags describe.

Importing this module and defining its flags does not import TensorFlow (the builders import
it when called): run_pretraining.py parses its flags before paying for TensorFlow.
"""
from absl import flags
from absl import logging

FLAGS = flags.FLAGS


def define_tokenizer_flags() -> None:
  """--vocab_file, --spm_model_file, --do_lower_case."""
  flags.DEFINE_string("vocab_file", None, "The vocabulary file that the BERT model was "
                      "trained on (WordPiece vocab.txt).")
  flags.DEFINE_string("spm_model_file", None, "A SentencePiece model file, instead of "
                      "--vocab_file.")
  flags.DEFINE_bool("do_lower_case", True, "Whether to lower case the input text. Should be "
                    "True for uncased models and False for cased models.")


def define_training_flags(head_may_be_missing: bool = False) -> None:
  """The training block: run_pretraining.py's names, defaults and meanings.

  Args:
    head_may_be_missing: fine-tuning, where --init_checkpoint lacks the new task head, which
      --strict_init_checkpoint then still allows.
  """
  # The ROCm fork's.
  flags.DEFINE_bool("use_horovod", False, "Data-parallel training with Horovod.")
  flags.DEFINE_enum("optimizer_type", "adam", ["adam", "lamb", "nadam", "nlamb"], "Optimizer.")
  flags.DEFINE_bool("auto_mixed_precision", False, "Mixed precision fp16 (--precision=fp16).")
  flags.DEFINE_alias("auto_mixed_precisioin", "auto_mixed_precision")  # the fork's spelling
  # NVIDIA's.
  flags.DEFINE_integer("num_accumulation_steps", 1, "Micro-batches per optimizer step.")
  flags.DEFINE_bool("allreduce_post_accumulation", True,
                    "All-reduce once per optimizer step after accumulating (True), or after "
                    "every micro-batch (False).")
  flags.DEFINE_bool("use_xla", False, "XLA-compile the forward/backward pass.")
  flags.DEFINE_bool("fp16_allreduce", False, "Compress the gradient all-reduce to float16.")
  flags.DEFINE_enum("precision", "fp32", ["fp32", "fp16", "bf16"], "Compute precision.")
  flags.DEFINE_integer("log_freq", None, "Log every this many steps "
                       "(default: min(--iterations_per_loop, 100)).")
  flags.DEFINE_integer("keep_checkpoint_max", 5, "Checkpoints to keep.")
  flags.DEFINE_integer("seed", 12345, "Random seed for initialisation and input order.")
  # Google's (a TPU setting there).
  flags.DEFINE_integer("iterations_per_loop", 1000, "Google's TPU host-loop size. Here: the "
                       "default for --log_freq when --log_freq is not given.")
  # Ours.
  flags.DEFINE_bool("strict_init_checkpoint", False,
                    "Any unexpected checkpoint/model mismatch in --init_checkpoint "
                    f"{'(other than the new head) ' if head_may_be_missing else ''}is an error.")


def start_run():
  """Makes the world (Horovod or one process; only rank 0 logs below warnings), sets the
  precision policy and the seed, and creates --output_dir.

  Returns:
    (world, precision): distributed.make_world's world and "fp32", "fp16" or "bf16".
  """
  import keras  # pylint: disable=import-outside-toplevel
  import tensorflow as tf  # pylint: disable=import-outside-toplevel

  import distributed  # pylint: disable=import-outside-toplevel
  import training  # pylint: disable=import-outside-toplevel

  world = distributed.make_world(FLAGS.use_horovod, FLAGS.fp16_allreduce)
  if not world.is_chief:
    logging.set_verbosity(logging.WARNING)
  tf.io.gfile.makedirs(FLAGS.output_dir)
  precision = training.resolve_precision(FLAGS.precision, FLAGS.auto_mixed_precision)
  training.set_precision(precision)
  keras.utils.set_random_seed(FLAGS.seed)
  return world, precision


def build_trainer(model, loss_fn, world, precision: str, num_train_steps: int,
                  num_warmup_steps: int, micro_batch_size: int, seq_length: int):
  """The optimizer (--optimizer_type, --learning_rate, Google's schedule; dynamic loss scaling
  for fp16) and the training.Trainer of the training block's flags.

  num_train_steps may be 0 (eval or predict only): the schedule then spans one step.
  micro_batch_size and seq_length only feed the throughput logs.
  """
  import optimization  # pylint: disable=import-outside-toplevel
  import training  # pylint: disable=import-outside-toplevel

  loss_scale = optimization.DynamicLossScale() if precision == "fp16" else None
  optimizer = optimization.create_optimizer(
      FLAGS.learning_rate, max(num_train_steps, 1), num_warmup_steps,
      optimizer_type=FLAGS.optimizer_type, loss_scale=loss_scale)
  loop_config = training.LoopConfig(
      output_dir=FLAGS.output_dir, num_train_steps=num_train_steps,
      num_accumulation_steps=FLAGS.num_accumulation_steps,
      allreduce_post_accumulation=FLAGS.allreduce_post_accumulation, use_xla=FLAGS.use_xla,
      log_freq=FLAGS.log_freq or min(FLAGS.iterations_per_loop, 100),
      save_checkpoints_steps=FLAGS.save_checkpoints_steps,
      keep_checkpoint_max=FLAGS.keep_checkpoint_max, micro_batch_size=micro_batch_size,
      seq_length=seq_length)
  return training.Trainer(model, optimizer, loss_fn, world, loop_config)
