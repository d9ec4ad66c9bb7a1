"""Fine-tunes BERT for sentence (pair) classification: GLUE, XNLI, or any TSV.

Google's flags and outputs, on the shared Keras 3 loop (bert/training.py) with Horovod:

  python run_classifier.py --task_name=MRPC --data_dir=glue/MRPC \
    --vocab_file=uncased_L-12_H-768_A-12/vocab.txt \
    --bert_config_file=uncased_L-12_H-768_A-12/bert_config.json \
    --init_checkpoint=uncased_L-12_H-768_A-12/bert_model.ckpt \
    --do_train --do_eval --do_predict --max_seq_length=128 --train_batch_size=32 \
    --learning_rate=2e-5 --num_train_epochs=3.0 --output_dir=out/mrpc

Tasks (case-insensitive): xnli, mnli, mrpc, cola, sst-2 (sst2), qnli, rte, qqp, wnli, sts-b
(stsb; regression), and tsv (--label_list, --text_a_column, --text_b_column,
--label_column, --has_header). See bert/classifier_data.py for each file layout.

Outputs in --output_dir: checkpoints of the loop, the fine-tuned model as Google's
bert_model.ckpt + bert_config.json, eval_results.txt (eval_accuracy, eval_loss, global_step
and the task metric: eval_f1 for MRPC/QQP, eval_mcc for CoLA, eval_pearson/eval_spearman for
STS-B; MNLI's mismatched dev set goes to eval_results_dev_mismatched.txt) and
test_results.tsv (one line of tab-separated class probabilities per test example).

With --use_horovod each rank trains on its shard of the training set (global batch =
train_batch_size x ranks x num_accumulation_steps); eval and predict run on rank 0 only.
"""
import os

import numpy as np
from absl import app
from absl import flags
from absl import logging

import tokenization
from bert import classifier_data
from bert import classifier_features
from bert import classifier_metrics
from bert import files
from bert import finetuning
from bert import flag_blocks
from bert import guards
from bert import run_setup
from bert import task_models

FLAGS = flags.FLAGS


def define_flags():
  """Google's run_classifier flags, the tsv task's, and finetuning's shared block."""
  flags.DEFINE_string("data_dir", None, "The input data dir. Should contain the .tsv files "
                      "(or other data files) for the task.")
  flags.DEFINE_string("task_name", None, "The name of the task to train.")
  flags.DEFINE_integer("max_seq_length", 128, "The maximum total input sequence length after "
                       "WordPiece tokenization. Sequences longer than this will be truncated, "
                       "and sequences shorter than this will be padded.")
  flags.DEFINE_bool("do_train", False, "Whether to run training.")
  flags.DEFINE_bool("do_eval", False, "Whether to run eval on the dev set.")
  flags.DEFINE_bool("do_predict", False, "Whether to run the model in inference mode on the "
                    "test set.")
  flags.DEFINE_integer("train_batch_size", 32, "Batch size per rank for training.",
                       lower_bound=1)
  flags.DEFINE_integer("eval_batch_size", 8, "Total batch size for eval.")
  flags.DEFINE_integer("predict_batch_size", 8, "Total batch size for predict.")
  flag_blocks.define_tokenizer_flags()
  flag_blocks.define_finetuning_flags()
  # The generic tsv task (classifier_data.TsvProcessor) and data options.
  flags.DEFINE_list("label_list", None, "tsv task: the labels, comma-separated, e.g. neg,pos.")
  flags.DEFINE_integer("text_a_column", 0, "tsv task: 0-based column of text_a.")
  flags.DEFINE_integer("text_b_column", None, "tsv task: 0-based column of text_b (none: "
                       "single sentences).")
  flags.DEFINE_integer("label_column", 1, "tsv task: 0-based column of the label.")
  flags.DEFINE_bool("has_header", False, "tsv task: the files start with a header row.")
  flags.DEFINE_string("xnli_language", "zh", "xnli task: the language to train and test on.")
  flags.DEFINE_bool("skip_malformed_rows", False, "Skip (and count) rows with a wrong column "
                    "count instead of failing, e.g. the broken rows of the real QQP files.")


def make_processor() -> classifier_data.DataProcessor:
  name = FLAGS.task_name.lower()
  kwargs = {"skip_malformed_rows": FLAGS.skip_malformed_rows}
  if name == "tsv":
    kwargs.update(label_list=FLAGS.label_list, text_a_column=FLAGS.text_a_column,
                  text_b_column=FLAGS.text_b_column, label_column=FLAGS.label_column,
                  has_header=FLAGS.has_header)
  elif name == "xnli":
    kwargs["language"] = FLAGS.xnli_language
  return classifier_data.get_processor(FLAGS.task_name, **kwargs)


def per_example_loss(logits: np.ndarray, labels: np.ndarray) -> np.ndarray:
  """Cross-entropy of float [n, k] logits against int [n] labels; squared error for k = 1."""
  logits = logits.astype(np.float64)
  if logits.shape[1] == 1:
    return (logits[:, 0] - labels) ** 2
  shifted = logits - logits.max(axis=1, keepdims=True)
  log_norm = np.log(np.exp(shifted).sum(axis=1))
  return log_norm - shifted[np.arange(len(labels)), labels]


def predict_logits(model, examples, label_list, tokenizer, batch_size):
  """(float32 logits [n, num_labels], the features) of examples."""
  arrays = classifier_features.convert_examples_to_features(examples, label_list,
                                                        FLAGS.max_seq_length, tokenizer)
  logits = finetuning.predict(model, arrays, batch_size, FLAGS.use_xla,
                              pad_to_max_length=FLAGS.pad_to_max_length)
  return logits, arrays


def evaluate(model, examples, label_list, tokenizer, global_step: int, path: str) -> dict:
  """Google's eval: metrics over every dev example, written to `path` (eval_results.txt)."""
  logits, arrays = predict_logits(model, examples, label_list, tokenizer,
                                  FLAGS.eval_batch_size)
  labels = arrays["label_ids"]
  predictions = logits[:, 0] if label_list is None else logits
  results = classifier_metrics.task_metrics(FLAGS.task_name, labels, predictions)
  results["eval_loss"] = float(np.mean(per_example_loss(logits, labels)))
  results["global_step"] = global_step
  files.write_results(path, results)
  logging.info("***** Eval results: %d examples (%s) *****", len(examples), path)
  for key in sorted(results):
    logging.info("  %s = %s", key, results[key])
  return results


def predict(model, examples, label_list, tokenizer, path: str) -> None:
  """Google's test_results.tsv: class probabilities (the score for regression) per line."""
  logits, _ = predict_logits(model, examples, label_list, tokenizer,
                             FLAGS.predict_batch_size)
  outputs = logits[:, 0] if label_list is None else finetuning.softmax(logits)
  num_written = files.write_test_results(path, outputs)
  if num_written != len(examples):
    raise RuntimeError(f"{path}: wrote {num_written} lines for {len(examples)} examples")
  logging.info("***** Predictions: %d examples -> %s *****", num_written, path)


@guards.exit_codes
def main(_):
  if not (FLAGS.do_train or FLAGS.do_eval or FLAGS.do_predict):
    raise app.UsageError("At least one of `do_train`, `do_eval` or `do_predict' must be True.")
  processor = make_processor()
  label_list = processor.get_labels()
  tokenizer = tokenization.create_tokenizer(FLAGS.vocab_file, FLAGS.spm_model_file,
                                            FLAGS.do_lower_case, FLAGS.init_checkpoint)
  # Read (and check) the data before building anything, so bad input fails fast.
  train_examples = processor.get_train_examples(FLAGS.data_dir) if FLAGS.do_train else []
  eval_sets = {name: processor.get_examples(FLAGS.data_dir, name)
               for name in (processor.dev_set_names if FLAGS.do_eval else ())}
  test_sets = {}
  if FLAGS.do_predict:
    test_sets["test"] = processor.get_test_examples(FLAGS.data_dir)
    for name, source in processor.files.items():  # e.g. MNLI's test_mismatched
      if name.startswith("test_") and source != processor.files["test"]:
        test_sets[name] = processor.get_examples(FLAGS.data_dir, name)
  if processor.num_skipped_rows:
    logging.warning("Skipped %d malformed rows: %s", processor.num_skipped_rows,
                    processor.skipped_rows)

  options = flag_blocks.options_from_flags(run_setup.TrainingOptions, FLAGS)
  config, world, precision = finetuning.setup(FLAGS.bert_config_file, options)
  model = task_models.BertClassifier(config, 1 if label_list is None else len(label_list))
  trainer = finetuning.make_trainer(
      model, task_models.classifier_loss_fn, task_models.CLASSIFIER_HEAD, world, precision,
      options, len(train_examples) if FLAGS.do_train else None, FLAGS.num_train_epochs,
      FLAGS.warmup_proportion)

  if FLAGS.do_train:
    arrays = classifier_features.convert_examples_to_features(
        train_examples, label_list, FLAGS.max_seq_length, tokenizer)
    finetuning.train(trainer, arrays, world, options, FLAGS.pad_to_max_length)
    trainer.export_tf1(config)

  if world.is_chief:
    global_step = int(trainer.step.numpy())
    for i, (name, examples) in enumerate(eval_sets.items()):
      file_name = "eval_results.txt" if i == 0 else f"eval_results_{name}.txt"
      evaluate(model, examples, label_list, tokenizer, global_step,
               os.path.join(FLAGS.output_dir, file_name))
    for name, examples in test_sets.items():
      file_name = "test_results.tsv" if name == "test" else f"test_results_{name}.tsv"
      predict(model, examples, label_list, tokenizer, os.path.join(FLAGS.output_dir, file_name))
  world.barrier()


if __name__ == "__main__":
  define_flags()
  flags.mark_flags_as_required(["task_name", "data_dir", "bert_config_file", "output_dir"])
  app.run(main)
