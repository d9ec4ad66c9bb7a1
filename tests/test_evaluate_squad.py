"""evaluate_squad.py against hand-computed SQuAD v1.1 / v2.0 scores."""
import json
import subprocess
import sys

import pytest

import evaluate_squad
from bert import squad_metrics


def _squad(questions):
  """A one-paragraph SQuAD "data" list from (id, gold answer texts) pairs."""
  qas = [{"id": qid, "question": "?", "is_impossible": not golds,
          "answers": [{"text": g, "answer_start": 0} for g in golds]}
         for qid, golds in questions]
  return [{"title": "t", "paragraphs": [{"context": "c", "qas": qas}]}]


# Hand-computed: per question (exact, f1) with the predictions below.
#   q1 has answers "Paris" / "Paris, France", predicted "paris"    -> (1, 1)
#   q2 has answer "the 1889 tower", predicted "1889"                -> (0, 2/3): P=1, R=1/2
#   q3 unanswerable, predicted ""                                   -> (1, 1)
#   q4 unanswerable, predicted "London"                             -> (0, 0)
#   q5 has answer "Gustave Eiffel", predicted ""                    -> (0, 0)
DATASET = _squad([("q1", ["Paris", "Paris, France"]), ("q2", ["the 1889 tower"]),
                  ("q3", []), ("q4", []), ("q5", ["Gustave Eiffel"])])
PREDICTIONS = {"q1": "paris", "q2": "1889", "q3": "", "q4": "London", "q5": ""}
NA_PROBS = {"q1": 0.1, "q2": 0.6, "q3": 0.9, "q4": 0.8, "q5": 0.7}


@pytest.mark.parametrize("text, expected", [
    ("The  Quick, brown-fox!", "quick brownfox"),
    ("an apple a day", "apple day"),
    ("Theory of the Anthem", "theory of anthem"),
    ("  Tab\tand\nnewline ", "tab and newline"),
    ("", ""),
])
def test_normalize_answer(text, expected):
  assert squad_metrics.normalize_answer(text) == expected


def test_exact_and_f1_by_hand():
  assert squad_metrics.compute_exact("The Cat.", "cat") == 1
  assert squad_metrics.compute_exact("cat", "cats") == 0
  # gold [cat, sat], prediction [cat, sat, down]: P = 2/3, R = 1, F1 = 0.8.
  assert squad_metrics.compute_f1("the cat sat", "a cat sat down") == pytest.approx(0.8)
  # Repeated tokens count with multiplicity: gold [x, x, y], pred [x] -> P = 1, R = 1/3, F1 = 0.5.
  assert squad_metrics.compute_f1("x x y", "x") == pytest.approx(0.5)
  assert squad_metrics.compute_f1("cat", "dog") == 0.0
  assert squad_metrics.compute_f1("", "") == 1.0
  assert squad_metrics.compute_f1("", "cat") == 0.0
  assert squad_metrics.compute_f1("cat", "") == 0.0


def test_v2_scores_by_hand():
  result = squad_metrics.evaluate(DATASET, PREDICTIONS)
  assert list(result) == ["exact", "f1", "total", "HasAns_exact", "HasAns_f1",
                          "HasAns_total", "NoAns_exact", "NoAns_f1", "NoAns_total"]
  assert result["exact"] == pytest.approx(100 * 2 / 5)
  assert result["f1"] == pytest.approx(100 * (1 + 2 / 3 + 1) / 5)
  assert result["total"] == 5
  assert result["HasAns_exact"] == pytest.approx(100 / 3)
  assert result["HasAns_f1"] == pytest.approx(100 * (1 + 2 / 3) / 3)
  assert result["HasAns_total"] == 3
  assert result["NoAns_exact"] == pytest.approx(50.0)
  assert result["NoAns_f1"] == pytest.approx(50.0)
  assert result["NoAns_total"] == 2


def test_best_thresholds_by_hand():
  # Sweep (start: all predicted null = 2 correct no-answers), in na-prob order:
  #   exact: q1 +1 -> 3 (best, 0.1), q2 +0, q5 +0, q4 -1, q3 0      -> 3/5 at 0.1
  #   f1:    q1 +1 -> 3, q2 +2/3 -> 3.667 (best, 0.6), q5, q4 -1, q3 -> 3.667/5 at 0.6
  result = squad_metrics.evaluate(DATASET, PREDICTIONS, na_probs=NA_PROBS)
  assert result["best_exact"] == pytest.approx(60.0)
  assert result["best_exact_thresh"] == 0.1
  assert result["best_f1"] == pytest.approx(100 * (3 + 2 / 3) / 5)
  assert result["best_f1_thresh"] == 0.6
  # The default threshold 1.0 never overrides a prediction.
  assert result["exact"] == pytest.approx(40.0)


def test_na_prob_threshold_overrides_predictions():
  # Above 0.65: q3 and q4 become "" (correct), q5 becomes "" (still wrong).
  result = squad_metrics.evaluate(DATASET, PREDICTIONS, na_probs=NA_PROBS,
                                   na_prob_thresh=0.65)
  assert result["exact"] == pytest.approx(100 * 3 / 5)
  assert result["f1"] == pytest.approx(100 * (1 + 2 / 3 + 1 + 1) / 5)
  assert result["NoAns_exact"] == pytest.approx(100.0)


def test_v1_data_has_no_noans_keys():
  dataset = _squad([("a", ["Denver Broncos", "the Broncos"]), ("b", ["Santa Clara"])])
  for qa in dataset[0]["paragraphs"][0]["qas"]:
    del qa["is_impossible"]  # v1.1 files have no such key.
  result = squad_metrics.evaluate(dataset, {"a": "Broncos", "b": "Santa Clara, California"})
  assert set(result) == {"exact", "f1", "total", "HasAns_exact", "HasAns_f1", "HasAns_total"}
  # a: exact with "the Broncos"; b: P = 2/3, R = 1 -> F1 0.8.
  assert result["exact"] == pytest.approx(50.0)
  assert result["f1"] == pytest.approx(100 * (1 + 0.8) / 2)


def test_missing_prediction_scores_zero(capsys):
  predictions = dict(PREDICTIONS)
  del predictions["q1"]
  result = squad_metrics.evaluate(DATASET, predictions)
  assert result["total"] == 5
  assert result["exact"] == pytest.approx(100 * 1 / 5)
  assert "1 of 5 questions have no prediction" in capsys.readouterr().err


def test_cli_writes_out_file(tmp_path):
  data_file, pred_file, na_file = (tmp_path / n for n in ("d.json", "p.json", "na.json"))
  data_file.write_text(json.dumps({"version": "v2.0", "data": DATASET}))
  pred_file.write_text(json.dumps(PREDICTIONS))
  na_file.write_text(json.dumps(NA_PROBS))
  out_file = tmp_path / "eval.json"
  evaluate_squad.main([str(data_file), str(pred_file), "--na-prob-file", str(na_file),
                       "--na-prob-thresh", "0.65", "--out-file", str(out_file)])
  result = json.loads(out_file.read_text())
  assert result["exact"] == pytest.approx(60.0)
  assert result["best_f1_thresh"] == 0.6


def test_cli_prints_json_to_stdout(tmp_path, repo_dir):
  data_file, pred_file = tmp_path / "d.json", tmp_path / "p.json"
  data_file.write_text(json.dumps({"version": "v2.0", "data": DATASET}))
  pred_file.write_text(json.dumps(PREDICTIONS))
  completed = subprocess.run(
      [sys.executable, str(repo_dir / "evaluate_squad.py"), str(data_file), str(pred_file)],
      capture_output=True, text=True, check=True)
  result = json.loads(completed.stdout)
  assert result["total"] == 5 and "best_exact" not in result


def test_bad_files_name_the_path(tmp_path):
  pred_file = tmp_path / "p.json"
  pred_file.write_text("{")
  data_file = tmp_path / "d.json"
  data_file.write_text(json.dumps({"version": "v2.0", "data": DATASET}))
  with pytest.raises(ValueError, match=r"p\.json:1: predictions file is not valid JSON"):
    evaluate_squad.main([str(data_file), str(pred_file)])
  with pytest.raises(FileNotFoundError, match="nope.json"):
    evaluate_squad.main([str(tmp_path / "nope.json"), str(pred_file)])
  data_file.write_text(json.dumps([1, 2]))
  with pytest.raises(ValueError, match=r"d\.json: SQuAD data file must hold a JSON dict"):
    evaluate_squad.main([str(data_file), str(pred_file)])
