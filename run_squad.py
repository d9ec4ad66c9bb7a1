"""Fine-tunes BERT for SQuAD v1.1 / v2.0 question answering and writes Google's outputs.

Google's flags, preprocessing (bert/squad_data.py) and postprocessing
(bert/squad_predictions.py), on the shared Keras 3 loop (bert/training.py) with Horovod:

  python run_squad.py --vocab_file=uncased_L-12_H-768_A-12/vocab.txt \
    --bert_config_file=uncased_L-12_H-768_A-12/bert_config.json \
    --init_checkpoint=uncased_L-12_H-768_A-12/bert_model.ckpt \
    --do_train --train_file=train-v1.1.json --do_predict --predict_file=dev-v1.1.json \
    --train_batch_size=12 --learning_rate=3e-5 --num_train_epochs=2.0 \
    --max_seq_length=384 --doc_stride=128 --output_dir=out/squad

SQuAD v2.0: add --version_2_with_negative (and tune --null_score_diff_threshold on dev with
evaluate_squad.py --na-prob-file=out/null_odds.json).

Outputs in --output_dir, written by rank 0 only: predictions.json, nbest_predictions.json,
null_odds.json (v2.0), and, when --predict_file carries answers, eval_results.json with the
official evaluation's keys (exact, f1, total, HasAns_*, NoAns_*, best_*), also logged.
"""
import json
import os
import random

from absl import app
from absl import flags
from absl import logging

import tokenization
from bert import finetuning
from bert import flag_blocks
from bert import guards
from bert import run_setup
from bert import squad_data
from bert import squad_predictions
from bert import task_models

FLAGS = flags.FLAGS


def define_flags():
  """Google's run_squad flags and finetuning's shared block."""
  flags.DEFINE_string("train_file", None, "SQuAD json for training. E.g., train-v1.1.json")
  flags.DEFINE_string("predict_file", None, "SQuAD json for predictions. E.g., dev-v1.1.json "
                      "or test-v1.1.json")
  flags.DEFINE_integer("max_seq_length", 384, "The maximum total input sequence length after "
                       "WordPiece tokenization. Sequences longer than this will be truncated, "
                       "and sequences shorter than this will be padded.")
  flags.DEFINE_integer("doc_stride", 128, "When splitting up a long document into chunks, how "
                       "much stride to take between chunks.")
  flags.DEFINE_integer("max_query_length", 64, "The maximum number of tokens for the question. "
                       "Questions longer than this will be truncated to this length.")
  flags.DEFINE_bool("do_train", False, "Whether to run training.")
  flags.DEFINE_bool("do_predict", False, "Whether to run eval on the dev set.")
  flags.DEFINE_integer("train_batch_size", 32, "Batch size per rank for training.",
                       lower_bound=1)
  flags.DEFINE_integer("predict_batch_size", 8, "Total batch size for predictions.")
  flags.DEFINE_integer("n_best_size", 20, "The total number of n-best predictions to generate "
                       "in the nbest_predictions.json output file.")
  flags.DEFINE_integer("max_answer_length", 30, "The maximum length of an answer that can be "
                       "generated. This is needed because the start and end predictions are "
                       "not conditioned on one another.")
  flags.DEFINE_bool("verbose_logging", False, "If true, all of the warnings related to data "
                    "processing will be printed.")
  flags.DEFINE_bool("version_2_with_negative", False, "If true, the SQuAD examples contain "
                    "some that do not have an answer.")
  flags.DEFINE_float("null_score_diff_threshold", 0.0, "If null_score - best_non_null is "
                     "greater than the threshold predict null.")
  flag_blocks.define_tokenizer_flags()
  flag_blocks.define_finetuning_flags()


def validate_flags():
  if not FLAGS.do_train and not FLAGS.do_predict:
    raise app.UsageError("At least one of `do_train` or `do_predict` must be True.")
  if FLAGS.do_train and not FLAGS.train_file:
    raise app.UsageError("If `do_train` is True, then `train_file` must be specified.")
  if FLAGS.do_predict and not FLAGS.predict_file:
    raise app.UsageError("If `do_predict` is True, then `predict_file` must be specified.")
  if FLAGS.max_seq_length <= FLAGS.max_query_length + 3:
    raise app.UsageError(f"The max_seq_length ({FLAGS.max_seq_length}) must be greater than "
                         f"max_query_length ({FLAGS.max_query_length}) + 3")


def make_features(examples, tokenizer, is_training: bool):
  """(InputFeatures of every window, their arrays for the model)."""
  features = list(squad_data.convert_examples_to_features(
      examples, tokenizer, FLAGS.max_seq_length, FLAGS.doc_stride, FLAGS.max_query_length,
      is_training=is_training))
  return features, squad_data.features_to_arrays(features, is_training)


def predict_and_write(model, tokenizer) -> dict:
  """Predicts --predict_file, writes Google's output files and, when the file carries
  answers, the official scores (eval_results.json). Returns the scores ({} without)."""
  examples, _ = squad_data.read_squad_examples(FLAGS.predict_file, is_training=False,
                                              version_2_with_negative=
                                              FLAGS.version_2_with_negative)
  features, arrays = make_features(examples, tokenizer, is_training=False)
  logging.info("***** Predicting: %d examples, %d windows, batch %d *****", len(examples),
               len(features), FLAGS.predict_batch_size)
  outputs = finetuning.predict(model, arrays, FLAGS.predict_batch_size, FLAGS.use_xla,
                               pad_to_max_length=FLAGS.pad_to_max_length,
                               outputs_per_token=True)
  results = squad_predictions.raw_results(arrays["unique_ids"], outputs)
  out = FLAGS.output_dir
  predictions, _, scores_diff = squad_predictions.write_predictions(
      examples, features, results, FLAGS.n_best_size, FLAGS.max_answer_length,
      FLAGS.do_lower_case, os.path.join(out, "predictions.json"),
      os.path.join(out, "nbest_predictions.json"), os.path.join(out, "null_odds.json"),
      FLAGS.version_2_with_negative, FLAGS.null_score_diff_threshold, FLAGS.verbose_logging)
  dataset = squad_data.load_squad_json(FLAGS.predict_file)
  if not squad_predictions.dataset_has_answers(dataset):
    return {}
  scores = squad_predictions.evaluate_predictions(
      dataset, predictions, na_probs=scores_diff if FLAGS.version_2_with_negative else None)
  path = os.path.join(out, "eval_results.json")
  with open(path, "w", encoding="utf-8") as f:
    f.write(json.dumps(scores, indent=2) + "\n")
  logging.info("***** Eval results (%s) *****\n%s", path, json.dumps(scores, indent=1))
  return scores


@guards.exit_codes
def main(_):
  validate_flags()
  tokenizer = tokenization.create_tokenizer(FLAGS.vocab_file, FLAGS.spm_model_file,
                                            FLAGS.do_lower_case, FLAGS.init_checkpoint)
  train_examples = []
  if FLAGS.do_train:
    train_examples, num_skipped = squad_data.read_squad_examples(
        FLAGS.train_file, is_training=True,
        version_2_with_negative=FLAGS.version_2_with_negative)
    if num_skipped:
      logging.warning("%s: skipped %d questions whose answer was not found in the context",
                      FLAGS.train_file, num_skipped)
    # Google's fixed shuffle of the examples before windowing.
    random.Random(12345).shuffle(train_examples)

  options = flag_blocks.options_from_flags(run_setup.TrainingOptions, FLAGS)
  config, world, precision = finetuning.setup(FLAGS.bert_config_file, options)
  model = task_models.BertSquad(config)
  trainer = finetuning.make_trainer(
      model, task_models.squad_loss_fn, task_models.SQUAD_HEAD, world, precision, options,
      len(train_examples) if FLAGS.do_train else None, FLAGS.num_train_epochs,
      FLAGS.warmup_proportion)

  if FLAGS.do_train:
    features, arrays = make_features(train_examples, tokenizer, is_training=True)
    logging.info("%d training examples -> %d windows", len(train_examples), len(features))
    del features
    inputs = ("input_ids", "input_mask", "segment_ids", "start_positions", "end_positions")
    finetuning.train(trainer, {k: arrays[k] for k in inputs}, world, options,
                     FLAGS.pad_to_max_length)
    trainer.export_tf1(config)

  if FLAGS.do_predict and world.is_chief:
    predict_and_write(model, tokenizer)
  world.barrier()


if __name__ == "__main__":
  define_flags()
  flags.mark_flags_as_required(["bert_config_file", "output_dir"])
  app.run(main)
