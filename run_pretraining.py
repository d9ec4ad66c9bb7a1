"""Pre-trains BERT (masked LM + next sentence) on TFRecords from create_pretraining_data.py.

Google's flags, the ROCm fork's (--use_horovod, --optimizer_type, --auto_mixed_precision) and
NVIDIA's (--num_accumulation_steps, --allreduce_post_accumulation, --use_xla, --fp16_allreduce,
--precision, --log_freq, --keep_checkpoint_max, --seed), on a Keras 3 model and a custom
tf.function loop (bert/training.py). No Estimator.

Single process:
  python run_pretraining.py --bert_config_file=configs/bert_tiny.json \
    --input_file='data/*.tfrecord' --output_dir=out --do_train --num_train_steps=1000
Two ranks (Gloo or MPI underneath):
  horovodrun -np 2 python run_pretraining.py --use_horovod=True ...

Beyond Google's script (bert/pretraining_sources.py):
  --only_mlm_loss      masked LM only: no next-sentence head or loss (NSP labels in the data
                       are ignored; the exported checkpoint has no cls/seq_relationship).
  --dynamic_masking    --input_file holds unmasked instances (create_pretraining_data.py
                       --no_masking); each batch is masked while training with
                       create_pretraining_data's masking (--masked_lm_prob,
                       --max_predictions_per_seq, --do_whole_word_mask, --vocab_file): new masks
                       every epoch, keyed by (--seed, rank, batch index).
  --input_text_file    instead of --input_file: sentence-per-line documents, turned into masked
                       instances while training (no TFRecord step), streamed and sharded by rank.

The learning rate is never scaled by the number of ranks: the log states the global batch
(train_batch_size x ranks x num_accumulation_steps) and the learning rate used.
"""
import json
import os

from absl import app
from absl import flags
from absl import logging

from bert import files
from bert import flag_blocks
from bert import guards
from bert import run_setup

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
  flags.DEFINE_integer("train_batch_size", 32, "Sequences per batch per rank (micro-batch).",
                       lower_bound=1)
  flags.DEFINE_integer("eval_batch_size", 8, "Total batch size for eval.", lower_bound=1)
  flags.DEFINE_float("learning_rate", 5e-5, "The initial learning rate (never scaled).")
  flags.DEFINE_integer("num_train_steps", 100000, "Number of optimizer steps.", lower_bound=0)
  flags.DEFINE_integer("num_warmup_steps", 10000, "Number of warmup steps.", lower_bound=0)
  flags.DEFINE_integer("save_checkpoints_steps", 1000, "How often to save a checkpoint.",
                       lower_bound=1)
  flags.DEFINE_integer("max_eval_steps", 100, "Maximum number of eval steps.")
  # The ROCm fork's and NVIDIA's training block, --iterations_per_loop and
  # --strict_init_checkpoint: the same flags as the fine-tuning scripts'.
  flag_blocks.define_training_flags()
  flags.adopt_module_key_flags(flag_blocks)  # so --help lists them as this script's
  # Ours.
  flags.DEFINE_bool("shuffle_input", True,
                    "Shuffle files and records (False: files in order, for exact comparisons).")
  # Pre-training options of NeMo (--only_mlm_loss, raw text) and dynamic masking.
  flags.DEFINE_bool("only_mlm_loss", False,
                    "Masked LM loss only: no next-sentence head; NSP labels in the data are "
                    "ignored.")
  flags.DEFINE_bool("dynamic_masking", False,
                    "--input_file holds unmasked instances (create_pretraining_data.py "
                    "--no_masking): mask every batch while training, new masks each epoch, "
                    "deterministic per --seed, rank and batch. Needs --vocab_file.")
  flags.DEFINE_string("input_text_file", None,
                      "Instead of --input_file: raw text (sentence per line, blank line between "
                      "documents; comma-separated, globs), made into masked instances while "
                      "training, sharded by rank. Needs --vocab_file.")
  # create_pretraining_data.py's flags, for --dynamic_masking and --input_text_file.
  flags.DEFINE_string("vocab_file", None, "WordPiece vocab, for masking while training.")
  flags.DEFINE_string("spm_model_file", None,
                      "A sentencepiece model to use instead of --vocab_file's WordPiece.")
  flags.DEFINE_bool("do_lower_case", True, "Lower-case --input_text_file (uncased models).")
  flags.DEFINE_bool("do_whole_word_mask", False,
                    "Mask whole words rather than single WordPieces (masking while training).")
  flags.DEFINE_float("masked_lm_prob", 0.15, "Masked LM probability (masking while training).",
                     lower_bound=0.0, upper_bound=1.0)
  flags.DEFINE_float("short_seq_prob", 0.1, "Probability of instances shorter than the maximum "
                     "length (--input_text_file).")
  flags.DEFINE_integer("chunk_bytes", 1 << 18,
                       "--input_text_file: text per chunk of whole documents; the random next "
                       "sentence comes from the same chunk.")


def validate_flags(config):
  if not FLAGS.do_train and not FLAGS.do_eval:
    raise app.UsageError("At least one of --do_train or --do_eval must be True.")
  config.check_seq_length(FLAGS.max_seq_length, FLAGS.bert_config_file)
  masks_while_training = FLAGS.dynamic_masking or FLAGS.input_text_file
  if masks_while_training and not (FLAGS.vocab_file or FLAGS.spm_model_file):
    option = "--input_text_file" if FLAGS.input_text_file else "--dynamic_masking"
    raise app.UsageError(f"{option} masks while training and needs the vocabulary: pass "
                         "--vocab_file (or --spm_model_file)")
  if FLAGS.do_whole_word_mask and not masks_while_training:
    raise app.UsageError("--do_whole_word_mask applies when masking while training "
                         "(--dynamic_masking or --input_text_file); masked TFRecords were "
                         "masked by create_pretraining_data.py --do_whole_word_mask")
  if FLAGS.dynamic_masking and FLAGS.input_text_file:
    raise app.UsageError("--dynamic_masking reads TFRecords from --input_file; "
                         "--input_text_file always masks while training: pass only one")


def pretraining_loss_fn(model, features, training):
  import modeling
  return modeling.pretraining_losses(model(features, training=training), features)


class InputSource:
  """The run's training and eval data: masked TFRecords (Google's), unmasked TFRecords masked
  while training (--dynamic_masking), or raw text (--input_text_file)."""

  def __init__(self, config):
    from bert import pretraining_data
    from bert import pretraining_input
    from bert import pretraining_sources
    self._input_pipeline = pretraining_input
    self._sources = pretraining_sources
    self.vocab_size = config.vocab_size
    self.masking = None
    if FLAGS.dynamic_masking or FLAGS.input_text_file:
      tokenizer, vocab, vocab_source = pretraining_data.load_tokenizer_and_vocab(
          FLAGS.vocab_file, FLAGS.spm_model_file, FLAGS.do_lower_case)
      if len(vocab) > config.vocab_size:
        raise ValueError(f"{vocab_source} has {len(vocab)} tokens, but the model's vocab_size "
                         f"is {config.vocab_size} ({FLAGS.bert_config_file})")
      self.masking = pretraining_data.masking_config(
          vocab, vocab_source, FLAGS.masked_lm_prob, FLAGS.max_predictions_per_seq,
          FLAGS.do_whole_word_mask, is_sentencepiece=bool(FLAGS.spm_model_file))
    if FLAGS.input_text_file:
      self.text = pretraining_sources.TextSource(
          files=tuple(files.expand_input_files(FLAGS.input_text_file,
                                                        "--input_text_file")),
          tokenizer=tokenizer, cls_id=self.masking.cls_id, sep_id=self.masking.sep_id,
          max_seq_length=FLAGS.max_seq_length, short_seq_prob=FLAGS.short_seq_prob,
          chunk_bytes=FLAGS.chunk_bytes)
    else:
      self.text = None
      self.files = files.expand_input_files(FLAGS.input_file)
      pretraining_input.check_pretraining_files(
          self.files, FLAGS.max_seq_length, FLAGS.max_predictions_per_seq, config.vocab_size,
          masked=not FLAGS.dynamic_masking)

  def describe(self) -> str:
    if self.text is not None:
      return (f"{len(self.text.files)} text file(s), instances and masks made while training")
    return f"{len(self.files)} TFRecord file(s)" + (
        ", masked while training" if FLAGS.dynamic_masking else "")

  def describe_input_error(self, error) -> str:
    """The file behind a read error, with the record offset (see the Trainer)."""
    if self.text is not None:
      return error.message.strip()
    return self._input_pipeline.locate_read_error(self.files, error)

  def dataset(self, batch_size, is_training, rank=0, num_ranks=1):
    """Batches of Google's pre-training features for one rank (see pretraining_input)."""
    if self.text is not None:
      return self._sources.text_dataset(
          self.text, self.masking, batch_size, is_training, rank=rank, num_ranks=num_ranks,
          seed=FLAGS.seed, shuffle=FLAGS.shuffle_input)
    dataset = self._input_pipeline.pretraining_dataset(
        self.files, batch_size, FLAGS.max_seq_length, FLAGS.max_predictions_per_seq,
        self.vocab_size, is_training=is_training, rank=rank, num_ranks=num_ranks,
        seed=FLAGS.seed, shuffle=FLAGS.shuffle_input, masked=self.masking is None)
    if self.masking is not None:
      dataset = self._sources.mask_dataset(dataset, self.masking, FLAGS.seed, rank)
    return dataset


@guards.exit_codes
def main(_, callbacks=()):
  """Runs the flags' pre-training; callbacks: training.Callback hooks for the Trainer."""
  import modeling
  from bert import checkpoints
  from bert import training

  with guards.configuration_errors():
    config = modeling.BertConfig.from_json_file(FLAGS.bert_config_file)
    validate_flags(config)
  options = flag_blocks.options_from_flags(run_setup.TrainingOptions, FLAGS)
  world, precision = run_setup.start_run(options)

  with guards.configuration_errors():
    source = InputSource(config)
  model = modeling.BertPretrainingModel(config, use_next_sentence=not FLAGS.only_mlm_loss)
  trainer = run_setup.build_trainer(model, pretraining_loss_fn, world, precision, options,
                                    FLAGS.num_train_steps, FLAGS.num_warmup_steps,
                                    callbacks=callbacks)

  def init_weights():
    if FLAGS.init_checkpoint:
      checkpoints.init_from_checkpoint(model, FLAGS.init_checkpoint,
                                       strict=FLAGS.strict_init_checkpoint)
      logging.info("Weights from %s", FLAGS.init_checkpoint)
  step = trainer.restore_or_initialize(init_weights)

  if FLAGS.do_train:
    global_batch = options.global_batch_size(world.size)
    logging.info(
        "***** Training: %d ranks x %d sequences x %d accumulation steps = global batch %d; "
        "learning rate %g (not scaled), %s, precision %s%s; steps %d -> %d; %s%s *****",
        world.size, FLAGS.train_batch_size, FLAGS.num_accumulation_steps, global_batch,
        FLAGS.learning_rate, FLAGS.optimizer_type, precision, ", XLA" if FLAGS.use_xla else "",
        step, FLAGS.num_train_steps, source.describe(),
        "; masked LM loss only" if FLAGS.only_mlm_loss else "")
    dataset = source.dataset(FLAGS.train_batch_size, is_training=True, rank=world.rank,
                             num_ranks=world.size)
    trainer.train(training.stack_micro_batches(dataset, FLAGS.num_accumulation_steps),
                  describe_input_error=source.describe_input_error)
    trainer.export_tf1(config)

  if FLAGS.do_eval and world.is_chief:
    dataset = source.dataset(FLAGS.eval_batch_size, is_training=False)
    results = trainer.evaluate(dataset, FLAGS.max_eval_steps)
    results["global_step"] = int(trainer.step.numpy())
    path = os.path.join(FLAGS.output_dir, "eval_results.txt")
    files.write_results(path, results)
    logging.info("***** Eval results (%s) *****\n%s", path, json.dumps(results, indent=1))
  world.barrier()


def mark_required_flags():
  flags.mark_flags_as_required(["bert_config_file", "output_dir"])
  flags.mark_flags_as_mutual_exclusive(["input_file", "input_text_file"], required=True)


if __name__ == "__main__":
  define_flags()
  mark_required_flags()
  app.run(main, flags_parser=guards.parse_flags)
