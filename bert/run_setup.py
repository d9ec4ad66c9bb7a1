"""What every training script does before its loop: the world, precision, seed and Trainer.

`TrainingOptions` holds the training block of flags (bert.flag_blocks.define_training_flags
and the per-script flags every trainer needs) as plain arguments; a script fills it with
`flag_blocks.options_from_flags(TrainingOptions, FLAGS)`, tests and benchmarks directly.
"""
import dataclasses

from absl import logging


@dataclasses.dataclass(frozen=True)
class TrainingOptions:
  """One training run's settings; each field is the flag of the same name."""
  output_dir: str
  learning_rate: float
  train_batch_size: int
  max_seq_length: int
  save_checkpoints_steps: int = 1000
  init_checkpoint: str | None = None
  strict_init_checkpoint: bool = False
  use_horovod: bool = False
  optimizer_type: str = "adam"
  auto_mixed_precision: bool = False
  precision: str = "fp32"
  num_accumulation_steps: int = 1
  allreduce_post_accumulation: bool = True
  use_xla: bool = False
  fp16_allreduce: bool = False
  overlap_allreduce: bool = True
  log_freq: int | None = None
  iterations_per_loop: int = 1000
  keep_checkpoint_max: int = 5
  hang_timeout_secs: float = 600
  seed: int = 12345

  def global_batch_size(self, num_ranks: int) -> int:
    """Sequences per optimizer step: train_batch_size x ranks x num_accumulation_steps."""
    return self.train_batch_size * num_ranks * self.num_accumulation_steps


def start_run(options: TrainingOptions):
  """Makes the world (Horovod or one process; only rank 0 logs below warnings), sets the
  precision policy and the seed, and creates output_dir.

  Returns:
    (world, precision): distributed.make_world's world and "fp32", "fp16" or "bf16".
  """
  import keras
  import tensorflow as tf

  from bert import distributed
  from bert import training

  world = distributed.make_world(options.use_horovod, options.fp16_allreduce)
  if not world.is_chief:
    logging.set_verbosity(logging.WARNING)
  tf.io.gfile.makedirs(options.output_dir)
  precision = training.resolve_precision(options.precision, options.auto_mixed_precision)
  training.set_precision(precision)
  keras.utils.set_random_seed(options.seed)
  return world, precision


def build_trainer(model, loss_fn, world, precision: str, options: TrainingOptions,
                  num_train_steps: int, num_warmup_steps: int, callbacks=()):
  """The optimizer (optimizer_type, learning_rate, Google's schedule; dynamic loss scaling
  for fp16) and the training.Trainer of `options`.

  num_train_steps may be 0 (eval or predict only): the schedule then spans one step.
  callbacks: training.Callback instances (tests pass tracing or fault injection here).
  """
  import optimization
  from bert import training

  loss_scale = optimization.DynamicLossScale() if precision == "fp16" else None
  optimizer = optimization.create_optimizer(
      options.learning_rate, max(num_train_steps, 1), num_warmup_steps,
      optimizer_type=options.optimizer_type, loss_scale=loss_scale)
  loop_config = training.LoopConfig(
      output_dir=options.output_dir, num_train_steps=num_train_steps,
      num_accumulation_steps=options.num_accumulation_steps,
      allreduce_post_accumulation=options.allreduce_post_accumulation,
      use_xla=options.use_xla,
      log_freq=options.log_freq or min(options.iterations_per_loop, 100),
      save_checkpoints_steps=options.save_checkpoints_steps,
      keep_checkpoint_max=options.keep_checkpoint_max,
      hang_timeout_secs=options.hang_timeout_secs,
      overlap_allreduce=options.overlap_allreduce,
      micro_batch_size=options.train_batch_size, seq_length=options.max_seq_length)
  return training.Trainer(model, optimizer, loss_fn, world, loop_config, callbacks=callbacks)
