"""Pre-trains BERT (masked LM + next sentence) on TFRecords from create_pretraining_data.py.

Google's flags, the ROCm fork's (--use_horovod, --optimizer_type, --auto_mixed_precision) and
NVIDIA's (--num_accumulation_steps, --allreduce_post_accumulation, --use_xla, --fp16_allreduce,
--precision, --log_freq, --keep_checkpoint_max, --seed, --phase2), on a Keras 3 model and a
custom tf.function loop (training.py). No Estimator.

Single process:
  python run_pretraining.py --bert_config_file=configs/bert_tiny.json \
    --input_file='data/*.tfrecord' --output_dir=out --do_train --num_train_steps=1000
Two ranks (Gloo or MPI underneath):
  horovodrun -np 2 python run_pretraining.py --use_horovod=True ...

The learning rate is never scaled by the number of ranks: the log states the global batch
(train_batch_size x ranks x num_accumulation_steps) and the learning rate used.
"""
import json
import os
import sys

from absl import app
from absl import flags
from absl import logging

FLAGS = flags.FLAGS


def define_flags():
  # Google's run_pretraining.py flags, same names and defaults.
  flags.DEFINE_string("bert_config_file", None, "The config json file of the BERT model.")
  flags.DEFINE_string("input_file", None, "Input TF example files (comma-separated, globs).")
  flags.DEFINE_string("output_dir", None, "Where checkpoints, logs and results are written.")
  flags.DEFINE_string("init_checkpoint", None,
                      "Initial weights: Google TF1, Hugging Face or one of our checkpoints.")
  flags.DEFINE_integer("max_seq_length", 128, "Maximum sequence length (must match the data).")
  flags.DEFINE_integer("max_predictions_per_seq", 20,
                       "Maximum masked LM predictions per sequence (must match the data).")
  flags.DEFINE_bool("do_train", False, "Whether to run training.")
  flags.DEFINE_bool("do_eval", False, "Whether to run eval on the dev set.")
  flags.DEFINE_integer("train_batch_size", 32, "Sequences per batch per rank (micro-batch).")
  flags.DEFINE_integer("eval_batch_size", 8, "Total batch size for eval.")
  flags.DEFINE_float("learning_rate", 5e-5, "The initial learning rate (never scaled).")
  flags.DEFINE_integer("num_train_steps", 100000, "Number of optimizer steps.")
  flags.DEFINE_integer("num_warmup_steps", 10000, "Number of warmup steps.")
  flags.DEFINE_integer("save_checkpoints_steps", 1000, "How often to save a checkpoint.")
  flags.DEFINE_integer("iterations_per_loop", 1000,
                       "Google's TPU host-loop size. Here: the default for --log_freq when "
                       "--log_freq is not given.")
  flags.DEFINE_integer("max_eval_steps", 100, "Maximum number of eval steps.")
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
  flags.DEFINE_bool("phase2", False,
                    "Second phase (e.g. seq 512): start from --init_checkpoint's weights with a "
                    "fresh optimizer and step, as NVIDIA's recipe does.")
  # Ours.
  flags.DEFINE_bool("shuffle_input", True,
                    "Shuffle files and records (False: files in order, for exact comparisons).")
  flags.DEFINE_bool("strict_init_checkpoint", False,
                    "Any unexpected checkpoint/model mismatch in --init_checkpoint is an error.")


def validate_flags(config):
  if not FLAGS.do_train and not FLAGS.do_eval:
    raise app.UsageError("At least one of --do_train or --do_eval must be True.")
  if FLAGS.max_seq_length > config.max_position_embeddings:
    raise app.UsageError(
        f"--max_seq_length={FLAGS.max_seq_length} is above the model's "
        f"max_position_embeddings={config.max_position_embeddings} ({FLAGS.bert_config_file})")
  if FLAGS.phase2 and not FLAGS.init_checkpoint:
    raise app.UsageError("--phase2 starts from the phase-1 weights: give --init_checkpoint")
  if FLAGS.num_accumulation_steps < 1:
    raise app.UsageError("--num_accumulation_steps must be >= 1")


def pretraining_loss_fn(model, features, training):
  import modeling  # pylint: disable=import-outside-toplevel
  return modeling.pretraining_losses(model(features, training=training), features)


def main(_):
  import keras  # pylint: disable=import-outside-toplevel
  import tensorflow as tf  # pylint: disable=import-outside-toplevel

  import checkpoints  # pylint: disable=import-outside-toplevel
  import distributed  # pylint: disable=import-outside-toplevel
  import input_pipeline  # pylint: disable=import-outside-toplevel
  import modeling  # pylint: disable=import-outside-toplevel
  import optimization  # pylint: disable=import-outside-toplevel
  import training  # pylint: disable=import-outside-toplevel

  config = modeling.BertConfig.from_json_file(FLAGS.bert_config_file)
  validate_flags(config)
  world = distributed.make_world(FLAGS.use_horovod, FLAGS.fp16_allreduce)
  if not world.is_chief:
    logging.set_verbosity(logging.WARNING)
  tf.io.gfile.makedirs(FLAGS.output_dir)
  precision = training.resolve_precision(FLAGS.precision, FLAGS.auto_mixed_precision)
  training.set_precision(precision)
  keras.utils.set_random_seed(FLAGS.seed)

  files = input_pipeline.expand_input_files(FLAGS.input_file)
  input_pipeline.check_pretraining_files(files, FLAGS.max_seq_length,
                                         FLAGS.max_predictions_per_seq, config.vocab_size)
  model = modeling.BertPretrainingModel(config)
  loss_scale = optimization.DynamicLossScale() if precision == "fp16" else None
  optimizer = optimization.create_optimizer(
      FLAGS.learning_rate, FLAGS.num_train_steps, FLAGS.num_warmup_steps,
      optimizer_type=FLAGS.optimizer_type, loss_scale=loss_scale)
  log_freq = FLAGS.log_freq or min(FLAGS.iterations_per_loop, 100)
  loop_config = training.LoopConfig(
      output_dir=FLAGS.output_dir, num_train_steps=FLAGS.num_train_steps,
      num_accumulation_steps=FLAGS.num_accumulation_steps,
      allreduce_post_accumulation=FLAGS.allreduce_post_accumulation, use_xla=FLAGS.use_xla,
      log_freq=log_freq, save_checkpoints_steps=FLAGS.save_checkpoints_steps,
      keep_checkpoint_max=FLAGS.keep_checkpoint_max, micro_batch_size=FLAGS.train_batch_size,
      seq_length=FLAGS.max_seq_length)
  trainer = training.Trainer(model, optimizer, pretraining_loss_fn, world, loop_config)

  def init_weights():
    if FLAGS.init_checkpoint:
      checkpoints.init_from_checkpoint(model, FLAGS.init_checkpoint,
                                       strict=FLAGS.strict_init_checkpoint)
      logging.info("%s from %s%s", "Phase 2: weights" if FLAGS.phase2 else "Weights",
                   FLAGS.init_checkpoint, ", fresh optimizer and step" if FLAGS.phase2 else "")
  step = trainer.restore_or_initialize(init_weights)

  if FLAGS.do_train:
    global_batch = FLAGS.train_batch_size * world.size * FLAGS.num_accumulation_steps
    logging.info(
        "***** Training: %d ranks x %d sequences x %d accumulation steps = global batch %d; "
        "learning rate %g (not scaled), %s, precision %s%s; steps %d -> %d *****",
        world.size, FLAGS.train_batch_size, FLAGS.num_accumulation_steps, global_batch,
        FLAGS.learning_rate, FLAGS.optimizer_type, precision, ", XLA" if FLAGS.use_xla else "",
        step, FLAGS.num_train_steps)
    dataset = input_pipeline.pretraining_dataset(
        files, FLAGS.train_batch_size, FLAGS.max_seq_length, FLAGS.max_predictions_per_seq,
        config.vocab_size, is_training=True, rank=world.rank, num_ranks=world.size,
        seed=FLAGS.seed, shuffle=FLAGS.shuffle_input)
    trainer.train(training.stack_micro_batches(dataset, FLAGS.num_accumulation_steps))
    trainer.export_tf1(config)

  if FLAGS.do_eval and world.is_chief:
    dataset = input_pipeline.pretraining_dataset(
        files, FLAGS.eval_batch_size, FLAGS.max_seq_length, FLAGS.max_predictions_per_seq,
        config.vocab_size, is_training=False)
    results = trainer.evaluate(dataset, FLAGS.max_eval_steps)
    results["global_step"] = int(trainer.step.numpy())
    path = os.path.join(FLAGS.output_dir, "eval_results.txt")
    training.write_results(path, results)
    logging.info("***** Eval results (%s) *****\n%s", path, json.dumps(results, indent=1))
  world.barrier()


if __name__ == "__main__":
  define_flags()
  flags.mark_flags_as_required(["bert_config_file", "input_file", "output_dir"])
  app.run(main)
