"""Fine-tunes BERT for token classification (named entities) on CoNLL-2003-style files.

The shared fine-tuning flags and loop of run_classifier.py (Horovod, precision, optimizer,
init from Google TF1 / Hugging Face / our checkpoints) with CoNLL data (bert/ner_data.py):

  python run_ner.py --data_dir=conll2003 --vocab_file=cased_L-12_H-768_A-12/vocab.txt \
    --bert_config_file=cased_L-12_H-768_A-12/bert_config.json \
    --init_checkpoint=cased_L-12_H-768_A-12/bert_model.ckpt --do_lower_case=False \
    --do_train --do_eval --do_predict --max_seq_length=128 --doc_stride=64 \
    --train_batch_size=32 --learning_rate=5e-5 --num_train_epochs=3.0 --output_dir=out/ner

--data_dir holds train.txt, dev.txt and test.txt: one `token ... tag` line per word, blank
lines between sentences, -DOCSTART- lines skipped; --token_column and --label_column pick
the columns (default: first and last, CoNLL-2003's `word POS chunk NER`).

Each word is labelled on its first WordPiece; the other pieces have weight 0 in the loss.
Sentences longer than max_seq_length are cut into windows doc_stride pieces apart; each
word is predicted by the window where its first piece has the most context (see ner_data).

Outputs in --output_dir: label_list.txt (the sorted tags of train.txt, label-id order; a
predict-only run reads it back, or --label_list_file), the loop's checkpoints and the
fine-tuned model as Google's bert_model.ckpt + bert_config.json; for dev.txt (--do_eval):
eval_results.txt (eval_precision, eval_recall, eval_f1 at entity level as seqeval, eval_accuracy
per word, eval_loss, global_step, and eval_<TYPE>_{precision,recall,f1,support} per entity
type), eval_report.txt (the per-type table) and eval_predictions.txt (`token gold predicted`
per line); for test.txt (--do_predict) the same as test_results.txt, test_report.txt and
test_predictions.txt. Entity metrics are written when every tag is O or B-/I-/E-/S-<type>
(BIO, IOB1, IOBES); for other tag sets (e.g. POS tags) only the accuracy.

Training steps count windows: int(windows / global batch x num_train_epochs). With
--use_horovod each rank trains on its shard of the windows (global batch =
train_batch_size x ranks x num_accumulation_steps); eval and predict run on rank 0 only.
"""
import os

import numpy as np
from absl import app
from absl import flags
from absl import logging

import tokenization
from bert import files
from bert import finetuning
from bert import flag_blocks
from bert import guards
from bert import ner_data
from bert import run_setup
from bert import task_models

FLAGS = flags.FLAGS

LABEL_LIST_FILE = "label_list.txt"
TRAIN_INPUTS = ("input_ids", "input_mask", "segment_ids", "label_ids", "label_weights")


def define_flags():
  flags.DEFINE_string("data_dir", None, "Folder with train.txt, dev.txt and test.txt (CoNLL).")
  flags.DEFINE_integer("max_seq_length", 128, "The maximum total input sequence length after "
                       "WordPiece tokenization. Longer sentences are cut into windows.")
  flags.DEFINE_integer("doc_stride", 64, "Pieces between the starts of two windows of a "
                       "sentence longer than max_seq_length - 2 pieces.")
  flags.DEFINE_bool("do_train", False, "Whether to run training on train.txt.")
  flags.DEFINE_bool("do_eval", False, "Whether to run eval on dev.txt.")
  flags.DEFINE_bool("do_predict", False, "Whether to predict (and score) test.txt.")
  flags.DEFINE_integer("train_batch_size", 32, "Batch size per rank for training.",
                       lower_bound=1)
  flags.DEFINE_integer("eval_batch_size", 8, "Total batch size for eval.")
  flags.DEFINE_integer("predict_batch_size", 8, "Total batch size for predict.")
  flags.DEFINE_integer("token_column", 0, "0-based column of the token (negative: from the "
                       "end).")
  flags.DEFINE_integer("label_column", -1, "0-based column of the tag (negative: from the "
                       "end; -1 is CoNLL-2003's NER column).")
  flags.DEFINE_string("label_list_file", None, "The tags, one per line in label-id order, for "
                      "runs without --do_train (default: --output_dir/label_list.txt).")
  flag_blocks.define_tokenizer_flags()
  flag_blocks.define_finetuning_flags()


def weighted_cross_entropy(logits: np.ndarray, labels: np.ndarray,
                           weights: np.ndarray) -> float:
  """The loss of token_classification_loss_fn over a whole set, in numpy.

  logits: float [n, S, L]; labels: int [n, S]; weights: float [n, S].
  """
  logits = logits.astype(np.float64)
  shifted = logits - logits.max(axis=-1, keepdims=True)
  log_norm = np.log(np.exp(shifted).sum(axis=-1))
  picked = np.take_along_axis(shifted, labels[..., None].astype(np.int64), axis=-1)[..., 0]
  return float(((log_norm - picked) * weights).sum() / max(weights.sum(), 1.0))


# ------------------------------------------------------------------------------ the data

def read_split(name: str) -> tuple[str, list]:
  """(path, sentences) of --data_dir/<name>.txt; an empty file is an error."""
  path = os.path.join(FLAGS.data_dir, f"{name}.txt")
  if not os.path.exists(path):
    raise FileNotFoundError(f"{path} not found (expected {name}.txt in --data_dir)")
  sentences = ner_data.read_conll(path, FLAGS.token_column, FLAGS.label_column)
  if not sentences:
    raise ValueError(f"{path}: no sentences")
  return path, sentences


def load_label_list(train: tuple | None) -> tuple[list, str]:
  """(tags, where they came from): train.txt's when training, else the saved list."""
  if train is not None:
    return ner_data.label_list_from(train[1]), f"the tags of {train[0]}"
  path = FLAGS.label_list_file or os.path.join(FLAGS.output_dir, LABEL_LIST_FILE)
  return ner_data.read_label_list(path), path


def make_features(sentences, label_list, tokenizer) -> dict:
  return ner_data.convert_sentences_to_features(sentences, label_list, tokenizer,
                                                FLAGS.max_seq_length, FLAGS.doc_stride)


# --------------------------------------------------------------------- eval and predict

def predict_tags(model, sentences, label_list, tokenizer, batch_size) -> tuple[list, float]:
  """(the predicted tag of every word, per sentence; the loss against the file's tags)."""
  arrays = make_features(sentences, label_list, tokenizer)
  logits = finetuning.predict(model, arrays, batch_size, FLAGS.use_xla,
                              pad_to_max_length=FLAGS.pad_to_max_length, outputs_per_token=True)
  loss = weighted_cross_entropy(logits, arrays["label_ids"], arrays["label_weights"])
  tag_ids = ner_data.word_predictions(arrays, np.argmax(logits, axis=-1), sentences)
  return [[label_list[i] for i in ids] for ids in tag_ids], loss


def score_and_write(model, split: tuple, label_list, tokenizer, batch_size: int,
                    global_step: int, prefix: str) -> dict:
  """Predicts a split, writes <prefix>_results.txt, <prefix>_report.txt and
  <prefix>_predictions.txt into --output_dir; returns the results."""
  path, sentences = split
  predicted, loss = predict_tags(model, sentences, label_list, tokenizer, batch_size)
  gold = [sentence.labels for sentence in sentences]
  results = {f"{prefix}_accuracy": ner_data.token_accuracy(gold, predicted),
             f"{prefix}_loss": loss, "global_step": global_step}
  report = f"{path}: {sum(len(s.words) for s in sentences)} words\n"
  if ner_data.is_entity_scheme(label_list):
    scores = ner_data.entity_scores(gold, predicted)
    for key in ("precision", "recall", "f1"):
      results[f"{prefix}_{key}"] = scores[key]
    for entity_type, type_scores in scores["per_type"].items():
      for key, value in type_scores.items():
        results[f"{prefix}_{entity_type}_{key}"] = value
    report += ner_data.format_report(scores)
  else:
    logging.warning("%s: the tags %s are not all O or B-/I-/E-/S-<type>: no entity metrics",
                    path, label_list)
  out = FLAGS.output_dir
  files.write_results(os.path.join(out, f"{prefix}_results.txt"), results)
  with open(os.path.join(out, f"{prefix}_report.txt"), "w", encoding="utf-8") as f:
    f.write(report)
  ner_data.write_conll_predictions(os.path.join(out, f"{prefix}_predictions.txt"), sentences,
                                   predicted)
  logging.info("***** %s results (%s) *****\n%s", prefix, path, report)
  for key in sorted(results):
    logging.info("  %s = %s", key, results[key])
  return results


@guards.exit_codes
def main(_):
  if not (FLAGS.do_train or FLAGS.do_eval or FLAGS.do_predict):
    raise app.UsageError("At least one of `do_train`, `do_eval` or `do_predict' must be True.")
  tokenizer = tokenization.create_tokenizer(FLAGS.vocab_file, FLAGS.spm_model_file,
                                            FLAGS.do_lower_case, FLAGS.init_checkpoint)
  # Read (and check) the data before building anything, so bad input fails fast.
  train = read_split("train") if FLAGS.do_train else None
  dev = read_split("dev") if FLAGS.do_eval else None
  test = read_split("test") if FLAGS.do_predict else None
  label_list, label_source = load_label_list(train)
  for split in (dev, test):
    if split is not None:
      ner_data.check_labels(split[1], label_list, split[0], label_source)

  options = flag_blocks.options_from_flags(run_setup.TrainingOptions, FLAGS)
  config, world, precision = finetuning.setup(FLAGS.bert_config_file, options)
  model = task_models.BertTokenClassifier(config, len(label_list))
  arrays = None
  if FLAGS.do_train:
    if world.is_chief:
      ner_data.write_label_list(os.path.join(FLAGS.output_dir, LABEL_LIST_FILE), label_list)
    arrays = make_features(train[1], label_list, tokenizer)
    logging.info("%s: %d sentences -> %d windows; tags %s", train[0], len(train[1]),
                 len(arrays["input_ids"]), label_list)
  trainer = finetuning.make_trainer(
      model, task_models.token_classification_loss_fn, task_models.CLASSIFIER_HEAD, world,
      precision, options, None if arrays is None else len(arrays["input_ids"]),
      FLAGS.num_train_epochs, FLAGS.warmup_proportion)

  if FLAGS.do_train:
    finetuning.train(trainer, {k: arrays[k] for k in TRAIN_INPUTS}, world, options,
                     FLAGS.pad_to_max_length)
    trainer.export_tf1(config)

  if world.is_chief:
    global_step = int(trainer.step.numpy())
    if dev is not None:
      score_and_write(model, dev, label_list, tokenizer, FLAGS.eval_batch_size, global_step,
                      "eval")
    if test is not None:
      score_and_write(model, test, label_list, tokenizer, FLAGS.predict_batch_size,
                      global_step, "test")
  world.barrier()


if __name__ == "__main__":
  define_flags()
  flags.mark_flags_as_required(["data_dir", "bert_config_file", "output_dir"])
  app.run(main)
