"""run_squad.py end to end: a tiny model overfits the hand-written SQuAD v1.1 and v2.0 files
(tests/data/squad) and must return the gold spans, Google's output files and EM/F1."""
import json
import pathlib

import pytest
import tiny
from finetuning_helpers import cut_lengths
from finetuning_helpers import run_script

import tokenization
from bert import squad_data

SQUAD = pathlib.Path(__file__).parent / "data" / "squad"
# Small windows, so that the Owen paragraph is cut into several and "Chatto and Windus"
# is split by a window boundary (checked in test_an_answer_spans_windows).
WINDOWS = {"max_seq_length": 32, "doc_stride": 8, "max_query_length": 12}


def _train_and_predict(repo_dir, vocab, tmp_path, data_file, version_2):
  output_dir = tmp_path / "out"
  run_script(repo_dir, "run_squad.py", {
      "vocab_file": vocab,
      # Without dropout, and with initial weights large enough that attention is not
      # uniform from the start: at Google's 0.02, a 32-wide model can settle on ignoring the
      # question (the v2.0 paragraphs have 2-3 questions each).
      "bert_config_file": tiny.write_config(tmp_path / "bert_config.json", 30522, dropout=0.0,
                                            initializer_range=0.2),
      "train_file": data_file, "predict_file": data_file, "do_train": True,
      "do_predict": True, "version_2_with_negative": version_2, "train_batch_size": 8,
      "num_train_epochs": 400, "learning_rate": 1e-3, "output_dir": output_dir,
      "log_freq": 100, **WINDOWS})
  return output_dir


def _read(path):
  return json.loads(path.read_text(encoding="utf-8"))


def test_an_answer_spans_windows(uncased_vocab):
  """The fixture data really exercises windows: some window holds only part of the answer
  (its target is [CLS]) and another holds all of it."""
  tokenizer = tokenization.FullTokenizer(str(uncased_vocab), do_lower_case=True)
  examples, num_skipped = squad_data.read_squad_examples(str(SQUAD / "squad_v1.1_train.json"),
                                                        is_training=True)
  assert num_skipped == 1  # "eiffel-bad": its answer text is not at answer_start.
  publisher = next(i for i, e in enumerate(examples) if e.qas_id == "owen-publisher")
  features = [f for f in squad_data.convert_examples_to_features(
      examples, tokenizer, WINDOWS["max_seq_length"], WINDOWS["doc_stride"],
      WINDOWS["max_query_length"], is_training=True) if f.example_index == publisher]
  answer = tokenizer.tokenize("Chatto and Windus")
  holds = [sum(token in f.tokens for token in answer) for f in features]
  assert any(f.start_position > 0 for f in features)
  assert any(0 < n < len(answer) and f.start_position == 0
             for n, f in zip(holds, features))


@pytest.mark.parametrize("version_2", [False, True], ids=["v1.1", "v2.0"])
def test_overfit_returns_gold_spans(repo_dir, uncased_vocab, tmp_path, version_2):
  data_file = SQUAD / ("squad_v2.0_train.json" if version_2 else "squad_v1.1_train.json")
  output_dir = _train_and_predict(repo_dir, uncased_vocab, tmp_path, data_file, version_2)
  dataset = squad_data.load_squad_json(str(data_file))
  questions = {qa["id"]: qa for article in dataset for paragraph in article["paragraphs"]
               for qa in paragraph["qas"]}
  predictions = _read(output_dir / "predictions.json")
  assert list(predictions) == list(questions)
  wrong = {}
  for qid, qa in questions.items():
    gold = "" if qa.get("is_impossible") else " ".join(qa["answers"][0]["text"].split())
    if qid == "eiffel-bad":  # skipped in training: its gold text is not in the context.
      assert predictions[qid] != "Berlin"
    elif predictions[qid] != gold:
      wrong[qid] = (predictions[qid], gold)
  assert not wrong, f"predictions differ from the gold spans: {wrong}"

  nbest = _read(output_dir / "nbest_predictions.json")
  assert list(nbest) == list(questions)
  for qid, entries in nbest.items():
    # v2.0 adds the null entry after the n best when it is not among them (Google's).
    assert 1 <= len(entries) <= 20 + version_2
    assert all(list(e) == ["text", "probability", "start_logit", "end_logit"]
               for e in entries)
    assert abs(sum(e["probability"] for e in entries) - 1.0) < 1e-6
    if not version_2:
      assert entries[0]["text"] == predictions[qid]

  scores = _read(output_dir / "eval_results.json")
  assert scores["total"] == len(questions)
  if not version_2:
    _assert_fully_padded_predictions_equal(repo_dir, uncased_vocab, tmp_path, data_file,
                                           output_dir)
  if version_2:
    null_odds = _read(output_dir / "null_odds.json")
    assert list(null_odds) == list(questions)
    # The prediction is "" exactly when the null score beats the best span (threshold 0).
    assert all((null_odds[q] > 0.0) == (predictions[q] == "") for q in questions)
    assert scores["exact"] == scores["f1"] == 100.0
    assert scores["NoAns_total"] == 2 and scores["NoAns_exact"] == 100.0
    assert "best_f1_thresh" in scores
  else:
    assert not (output_dir / "null_odds.json").exists()
    assert scores["exact"] == pytest.approx(100.0 * 5 / 6)  # all but eiffel-bad
    assert "NoAns_total" not in scores


def _assert_fully_padded_predictions_equal(repo_dir, vocab, tmp_path, data_file, output_dir):
  """Windows batched by length (the run that made output_dir's predictions) and Google's
  fully padded batches give the same predictions, n-best logits within 1e-5."""
  cut = {name: _read(output_dir / name)
         for name in ("predictions.json", "nbest_predictions.json")}
  result = run_script(repo_dir, "run_squad.py", {
      "vocab_file": vocab, "bert_config_file": tmp_path / "bert_config.json",
      "predict_file": data_file, "do_predict": True, "output_dir": output_dir,
      "pad_to_max_length": True, **WINDOWS})
  assert cut_lengths(result.stderr) == [WINDOWS["max_seq_length"]]
  assert _read(output_dir / "predictions.json") == cut["predictions.json"]
  padded = _read(output_dir / "nbest_predictions.json")
  assert list(padded) == list(cut["nbest_predictions.json"])
  for qid, entries in padded.items():
    cut_entries = cut["nbest_predictions.json"][qid]
    assert [e["text"] for e in entries] == [e["text"] for e in cut_entries]
    for entry, other in zip(entries, cut_entries):
      for key in ("probability", "start_logit", "end_logit"):
        assert entry[key] == pytest.approx(other[key], abs=1e-5)


def test_bad_input_errors(repo_dir, uncased_vocab, tmp_path):
  config = tiny.write_config(tmp_path / "bert_config.json", 30522)
  common = {"vocab_file": uncased_vocab, "bert_config_file": config,
            "output_dir": tmp_path / "out", **WINDOWS}
  result = run_script(repo_dir, "run_squad.py", {**common, "do_predict": True}, check=False)
  assert result.returncode != 0
  assert "`predict_file` must be specified" in result.stderr
  broken = tmp_path / "broken.json"
  broken.write_text('{"version": "1.1", "data": [\n  {"title": "x",\n')
  result = run_script(repo_dir, "run_squad.py",
                      {**common, "do_train": True, "train_file": broken}, check=False)
  assert result.returncode != 0
  assert f"{broken}:3: SQuAD file is not valid JSON" in result.stderr


def test_squad_head_has_googles_names():
  import numpy as np

  from bert import task_models
  config = tiny.config(100)
  model = task_models.BertSquad(config)
  paths = [v.path for v in model.trainable_variables]
  assert [p for p in paths if not p.startswith("bert/")] == ["cls/squad/output_weights",
                                                             "cls/squad/output_bias"]
  assert tuple(model.squad_output.output_weights.shape) == (2, 32)
  inputs = {"input_ids": np.array([[1, 5, 2, 0]]), "input_mask": np.array([[1, 1, 1, 0]]),
            "segment_ids": np.array([[0, 0, 1, 0]])}
  outputs = model(inputs, training=False)
  sequence = np.asarray(model.bert({"input_ids": inputs["input_ids"],
                                    "input_mask": inputs["input_mask"],
                                    "token_type_ids": inputs["segment_ids"]})["sequence_output"])
  expected = sequence @ np.asarray(model.squad_output.output_weights).T
  np.testing.assert_allclose(outputs["start_logits"], expected[..., 0], atol=1e-5)
  np.testing.assert_allclose(outputs["end_logits"], expected[..., 1], atol=1e-5)
