"""run_ner.py end to end: a tiny model overfits the hand-written CoNLL file (train = dev =
test) through windows that cut entities, and must give its tags back; the output formats;
a predict-only run on the saved label list; Hugging Face weights; bad input."""
import pathlib
import shutil

import pytest
import tiny
from finetuning_helpers import assert_same_numbers
from finetuning_helpers import cut_lengths
from finetuning_helpers import run_script

from bert import ner_data

NER = pathlib.Path(__file__).parent / "data" / "ner"
WINDOWS = {"max_seq_length": 16, "doc_stride": 5}  # as in test_ner_data: entities are cut


def _data_dir(folder: pathlib.Path, dev_text: str = None) -> pathlib.Path:
  folder.mkdir(parents=True, exist_ok=True)
  for name in ("train", "dev", "test"):
    shutil.copy(NER / "train.txt", folder / f"{name}.txt")
  if dev_text is not None:
    (folder / "dev.txt").write_text(dev_text)
  return folder


@pytest.fixture(scope="module")
def trained(repo_dir, uncased_vocab, tmp_path_factory):
  """(flags, output_dir) of a run that trained on train.txt and scored dev.txt and test.txt
  (all three the same file)."""
  tmp_path = tmp_path_factory.mktemp("ner")
  flags = {"vocab_file": uncased_vocab, "data_dir": _data_dir(tmp_path / "data"),
           "bert_config_file": tiny.write_config(tmp_path / "bert_config.json", 30522,
                                                 dropout=0.0, max_position_embeddings=32),
           "output_dir": tmp_path / "out", "train_batch_size": 8, "num_train_epochs": 40,
           "learning_rate": 3e-3, "log_freq": 50, **WINDOWS}
  run_script(repo_dir, "run_ner.py", {**flags, "do_train": True, "do_eval": True,
                                      "do_predict": True})
  return flags, tmp_path / "out"


def test_overfit_recovers_the_tags(trained):
  _, output_dir = trained
  results = tiny.read_results(output_dir / "eval_results.txt")
  assert float(results["eval_f1"]) == 1.0
  assert float(results["eval_precision"]) == float(results["eval_recall"]) == 1.0
  assert float(results["eval_accuracy"]) == 1.0
  assert float(results["eval_loss"]) < 0.05
  assert int(results["global_step"]) == int(22 / 8 * 40)  # 22 windows of 10 sentences
  for entity_type, support in (("LOC", 21), ("MISC", 3), ("ORG", 3), ("PER", 16)):
    assert float(results[f"eval_{entity_type}_f1"]) == 1.0
    assert int(results[f"eval_{entity_type}_support"]) == support
  assert tiny.read_results(output_dir / "test_results.txt")["test_f1"] == "1.0"


def test_output_formats(trained):
  _, output_dir = trained
  lines = (output_dir / "eval_results.txt").read_text().splitlines()
  keys = [line.split(" = ")[0] for line in lines]
  assert keys == sorted(keys) and all(" = " in line for line in lines)
  assert {"eval_precision", "eval_recall", "eval_f1", "eval_accuracy", "eval_loss",
          "global_step"} <= set(keys)
  assert (output_dir / "label_list.txt").read_text().split() == [
      "B-LOC", "B-MISC", "B-ORG", "B-PER", "I-LOC", "I-MISC", "I-ORG", "I-PER", "O"]
  report = (output_dir / "eval_report.txt").read_text().splitlines()
  assert report[1].split() == ["precision", "recall", "f1-score", "support"]
  assert report[3].split() == ["LOC", "1.0000", "1.0000", "1.0000", "21"]
  assert (output_dir / "bert_model.ckpt.index").exists()

  # eval_predictions.txt: the input's words and gold tags, then the predicted tag.
  gold = ner_data.read_conll(str(NER / "train.txt"))
  predicted_path = output_dir / "eval_predictions.txt"
  as_gold = ner_data.read_conll(str(predicted_path), token_column=0, label_column=1)
  as_predicted = ner_data.read_conll(str(predicted_path), token_column=0, label_column=2)
  assert [(s.words, s.labels, s.starts_document) for s in as_gold] == [
      (s.words, s.labels, s.starts_document) for s in gold]
  assert [s.labels for s in as_predicted] == [s.labels for s in gold]
  text = predicted_path.read_text()
  assert text.startswith("-DOCSTART- O O\n\nElizabeth B-PER B-PER\nBennet I-PER I-PER\n")
  assert "\n\nCaptain O O\n" in text


def test_predict_only_reuses_the_label_list(repo_dir, trained, tmp_path):
  """No --do_train: the model comes from output_dir's checkpoint and the tags from its
  label_list.txt; a dev tag outside that list is an error naming the file and line."""
  flags, output_dir = trained
  (output_dir / "test_results.txt").unlink()
  # One window per batch: each runs at its own bucket length.
  result = run_script(repo_dir, "run_ner.py", {**flags, "do_predict": True,
                                               "predict_batch_size": 1})
  assert tiny.read_results(output_dir / "test_results.txt")["test_f1"] == "1.0"
  assert min(cut_lengths(result.stderr)) < WINDOWS["max_seq_length"]
  # Batches cut to their longest window give Google's fully padded results.
  cut = {name: (output_dir / name).read_text()
         for name in ("test_results.txt", "test_predictions.txt")}
  result = run_script(repo_dir, "run_ner.py", {**flags, "do_predict": True,
                                               "predict_batch_size": 1,
                                               "pad_to_max_length": True})
  assert cut_lengths(result.stderr) == [WINDOWS["max_seq_length"]]
  for name, text in cut.items():
    assert_same_numbers(text, (output_dir / name).read_text())

  data_dir = _data_dir(tmp_path / "data", dev_text="Emma B-PER\nWoodhouse I-PER\n\n"
                                                   "Highbury B-GPE\n")
  result = run_script(repo_dir, "run_ner.py", {**flags, "data_dir": data_dir, "do_eval": True},
                      check=False)
  assert result.returncode != 0
  assert (f"{data_dir / 'dev.txt'}:4: tag 'B-GPE' is not in the label list" in result.stderr
          and str(output_dir / "label_list.txt") in result.stderr)


def test_model_loads_hugging_face_weights(minilm_dir):
  """BertTokenClassifier's variables have Google's paths: the real MiniLM (HF weights) fills
  every one but the new head (strict load), and the logits are [B, S, num_labels]."""
  import numpy as np

  import modeling
  from bert import checkpoints
  from bert import task_models
  config = modeling.BertConfig.from_json_file(str(minilm_dir / "config.json"))
  model = task_models.BertTokenClassifier(config, num_labels=9)
  assert {v.path for v in model.weights} - {v.path for v in model.bert.weights} == {
      "output_weights", "output_bias"}
  report = checkpoints.init_from_checkpoint(model, minilm_dir, strict=True,
                                            allow_missing=task_models.CLASSIFIER_HEAD)
  assert len(report.loaded) == len(model.bert.weights)
  inputs = {"input_ids": np.array([[101, 7592, 102, 0]], np.int32),
            "input_mask": np.array([[1, 1, 1, 0]], np.int32),
            "segment_ids": np.zeros((1, 4), np.int32)}
  assert tuple(model(inputs).shape) == (1, 4, 9)


def test_bad_input_errors(repo_dir, uncased_vocab, tmp_path):
  config = tiny.write_config(tmp_path / "bert_config.json", 30522)
  data_dir = _data_dir(tmp_path / "data")
  (data_dir / "train.txt").write_text("Emma B-PER\nWoodhouse I-PER\nsmiled\n")
  common = {"vocab_file": uncased_vocab, "bert_config_file": config, "data_dir": data_dir,
            "output_dir": tmp_path / "out", **WINDOWS}
  result = run_script(repo_dir, "run_ner.py", {**common, "do_train": True}, check=False)
  assert result.returncode != 0
  assert f"{data_dir / 'train.txt'}:3: expected whitespace-separated columns" in result.stderr
