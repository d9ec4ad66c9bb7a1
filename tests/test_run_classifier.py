"""run_classifier.py end to end: the real MiniLM learns which Austen novel a passage is from;
GLUE-format tasks with a tiny random model write Google's eval_results.txt and
test_results.tsv; bad input fails with the file and line."""
import math
import pathlib

import numpy as np
import pytest
import tensorflow as tf
import tiny
from finetuning_helpers import assert_same_numbers
from finetuning_helpers import cut_lengths
from finetuning_helpers import run_script
from finetuning_helpers import write_novel_classification_set

from bert import classifier_data

GLUE = pathlib.Path(__file__).parent / "data" / "glue"


def test_minilm_learns_which_novel(converted_minilm, austen_files, repo_dir, tmp_path):
  """Emma or Persuasion? 160 training passages per novel, 50 held out per novel."""
  data_dir = tmp_path / "data"
  write_novel_classification_set(austen_files, data_dir, ("emma", "persuasion"),
                                 num_train=160, num_dev=50)
  output_dir = tmp_path / "out"
  run_script(repo_dir, "run_classifier.py", {
      "task_name": "tsv", "label_list": "emma,persuasion", "label_column": 0,
      "text_a_column": 1, "data_dir": data_dir,
      "vocab_file": converted_minilm / "vocab.txt",
      "bert_config_file": converted_minilm / "bert_config.json",
      "init_checkpoint": converted_minilm / "bert_model.ckpt", "output_dir": output_dir,
      "do_train": True, "do_eval": True, "max_seq_length": 64, "train_batch_size": 16,
      "eval_batch_size": 50, "num_train_epochs": 2, "learning_rate": 1e-4, "log_freq": 10})
  results = tiny.read_results(output_dir / "eval_results.txt")
  assert list(results) == ["eval_accuracy", "eval_loss", "global_step"]
  assert results["global_step"] == str(int(320 / 16 * 2))
  assert float(results["eval_accuracy"]) >= 0.8, results  # chance is 0.5
  assert float(results["eval_loss"]) < math.log(2)


# task, folder, eval_results files -> keys, test_results files.
GLUE_TASKS = [
    ("MRPC", "MRPC", {"eval_results.txt": ["eval_accuracy", "eval_f1", "eval_loss",
                                           "global_step"]}, {"test_results.tsv": "test"}),
    ("cola", "CoLA", {"eval_results.txt": ["eval_accuracy", "eval_loss", "eval_mcc",
                                           "global_step"]}, {"test_results.tsv": "test"}),
    ("STS-B", "STS-B", {"eval_results.txt": ["eval_loss", "eval_pearson", "eval_spearman",
                                             "global_step"]}, {"test_results.tsv": "test"}),
    ("mnli", "MNLI", {"eval_results.txt": ["eval_accuracy", "eval_loss", "global_step"],
                      "eval_results_dev_mismatched.txt": ["eval_accuracy", "eval_loss",
                                                          "global_step"]},
     {"test_results.tsv": "test", "test_results_test_mismatched.tsv": "test_mismatched"}),
]


@pytest.mark.parametrize("task, folder, eval_files, test_files", GLUE_TASKS,
                         ids=[t[0] for t in GLUE_TASKS])
def test_glue_outputs(task, folder, eval_files, test_files, repo_dir, uncased_vocab,
                      tmp_path):
  processor = classifier_data.get_processor(task)
  data_dir = GLUE / folder
  num_train = len(processor.get_train_examples(str(data_dir)))
  output_dir = tmp_path / "out"
  flags = {"task_name": task, "data_dir": data_dir, "vocab_file": uncased_vocab,
           "bert_config_file": tiny.write_config(tmp_path / "bert_config.json", 30522),
           "output_dir": output_dir, "max_seq_length": 32, "train_batch_size": 1,
           "num_train_epochs": 2, "do_eval": True, "do_predict": True}
  trained = run_script(repo_dir, "run_classifier.py", {**flags, "do_train": True})

  for name, keys in eval_files.items():
    results = tiny.read_results(output_dir / name)
    assert list(results) == keys  # sorted "key = value" lines
    assert results["global_step"] == str(num_train * 2)
    assert all(np.isfinite(float(v)) for v in results.values())
  labels = processor.get_labels()
  for name, set_name in test_files.items():
    rows = [line.split("\t") for line in (output_dir / name).read_text().splitlines()]
    assert len(rows) == len(processor.get_examples(str(data_dir), set_name))
    for row in rows:
      values = [float(v) for v in row]
      if labels is None:  # STS-B: one predicted score per line.
        assert len(values) == 1
      else:  # class probabilities
        assert len(values) == len(labels) and abs(sum(values) - 1.0) < 1e-5

  # The fine-tuned model is exported with Google's names, the head included.
  shapes = dict(tf.train.list_variables(str(output_dir / "bert_model.ckpt")))
  num_labels = 1 if labels is None else len(labels)
  assert shapes["output_weights"] == [num_labels, 32]
  assert shapes["output_bias"] == [num_labels]
  assert shapes["bert/pooler/dense/kernel"] == [32, 32]

  if task == "cola":
    # Batches cut to their longest sentence give Google's fully padded results.
    assert max(cut_lengths(trained.stderr)) < 32
    cut = {name: (output_dir / name).read_text() for name in [*eval_files, *test_files]}
    result = run_script(repo_dir, "run_classifier.py", {**flags, "pad_to_max_length": True})
    assert cut_lengths(result.stderr) == [32]
    for name, text in cut.items():
      assert_same_numbers(text, (output_dir / name).read_text())

  if task == "MRPC":
    # Eval and predict alone resume the fine-tuned model from output_dir.
    first = {name: (output_dir / name).read_text() for name in [*eval_files, *test_files]}
    for name in first:
      (output_dir / name).unlink()
    run_script(repo_dir, "run_classifier.py", flags)
    assert {name: (output_dir / name).read_text() for name in first} == first


def _write(folder: pathlib.Path, files: dict) -> pathlib.Path:
  folder.mkdir(parents=True, exist_ok=True)
  for name, text in files.items():
    (folder / name).write_text(text)
  return folder


@pytest.mark.parametrize("files, message", [
    ({"train.tsv": "neg\tAwful.\n?\tLovely.\n"},
     "train.tsv:2: unknown label '?', expected one of ['neg', 'pos']"),
    ({"train.tsv": "neg\tAwful.\npos\tLovely.\npos\n"},
     "train.tsv:3: found 1 tab-separated columns, expected 2"),
    ({"train.tsv": ""}, "train.tsv: empty file"),
], ids=["unknown-label", "wrong-columns", "empty-file"])
def test_bad_input_names_file_and_line(files, message, repo_dir, uncased_vocab, tmp_path):
  data_dir = _write(tmp_path / "data", files)
  result = run_script(repo_dir, "run_classifier.py", {
      "task_name": "tsv", "label_list": "neg,pos", "label_column": 0, "text_a_column": 1,
      "data_dir": data_dir, "vocab_file": uncased_vocab,
      "bert_config_file": tiny.write_config(tmp_path / "bert_config.json", 30522),
      "output_dir": tmp_path / "out", "do_train": True}, check=False)
  assert result.returncode != 0
  assert f"{data_dir}/{message}" in result.stderr


def test_classifier_head_has_googles_names_and_loads_hf_weights(minilm_dir):
  import modeling
  from bert import checkpoints
  from bert import task_models
  config = modeling.BertConfig.from_json_file(minilm_dir / "config.json")
  model = task_models.BertClassifier(config, num_labels=3)
  paths = [v.path for v in model.trainable_variables]
  heads = [p for p in paths if not p.startswith("bert/")]
  assert heads == ["output_weights", "output_bias"]
  assert tuple(model.output_layer.output_weights.shape) == (3, config.hidden_size)
  # A pre-trained checkpoint lacks only the new head, which is allowed to be missing.
  report = checkpoints.init_from_checkpoint(model, minilm_dir, strict=True,
                                            allow_missing=task_models.CLASSIFIER_HEAD)
  assert report.ok and len(report.loaded) == len(paths) - 2
  inputs = {"input_ids": np.array([[101, 7592, 102, 0]]), "input_mask": np.array([[1, 1, 1, 0]]),
            "segment_ids": np.zeros((1, 4), np.int32)}
  logits = model(inputs, training=False)
  pooled = model.bert({"input_ids": inputs["input_ids"], "input_mask": inputs["input_mask"]},
                      training=False)["pooled_output"]
  np.testing.assert_allclose(
      logits, np.asarray(pooled) @ np.asarray(model.output_layer.output_weights).T, atol=1e-5)


@pytest.mark.parametrize("pad_to_max_length", [False, True], ids=["by_length", "google"])
def test_train_input_is_sharded_by_rank_and_reshuffled(pad_to_max_length):
  """Each rank's epoch is its shard (every other example), in a new order every epoch; a
  step's batch is cut to its longest example's bucket (Google's: never cut)."""
  from bert import finetuning
  from bert import length_buckets
  lengths = np.random.default_rng(0).integers(2, 13, size=20)
  arrays = {"input_ids": np.arange(20, dtype=np.int32)[:, None] * np.ones((1, 12), np.int32),
            "input_mask": (np.arange(12)[None] < lengths[:, None]).astype(np.int32),
            "label_ids": np.arange(20, dtype=np.int32)}
  seen = []
  for rank in range(2):
    dataset = finetuning.train_dataset(arrays, batch_size=2, num_accumulation_steps=1,
                                       rank=rank, num_ranks=2, seed=1,
                                       pad_to_max_length=pad_to_max_length)
    steps = list(dataset.take(15))
    for step in steps:  # every feature of an example is gathered with the same index
      labels = step["label_ids"].numpy()[0]
      np.testing.assert_array_equal(step["input_ids"][0, :, 0], labels)
      expected = (12 if pad_to_max_length
                  else length_buckets.padded_length(lengths[labels].max(), 12))
      assert step["input_mask"].shape == (1, 2, expected)
    epochs = [[label for step in steps[i:i + 5] for label in step["label_ids"].numpy()[0]]
              for i in range(0, 15, 5)]
    assert all(sorted(e) == list(range(rank, 20, 2)) for e in epochs)  # one shard per epoch
    assert len({tuple(e) for e in epochs}) > 1  # reshuffled every epoch
    seen += epochs[0]
  assert sorted(seen) == list(range(20))
