"""SQuAD v1.1 / v2.0 scores, as the official v2.0 evaluation script computes them.

`evaluate(dataset, predictions, na_probs)`: the dataset is a SQuAD file's "data" list,
predictions map question id -> predicted answer text ("" for "no answer"), and the optional
na_probs map question id -> the model's no-answer score (e.g. run_squad's null_odds.json).
The result has the official script's keys (evaluate_squad.py is its command line):

    exact, f1, total, HasAns_exact, HasAns_f1, HasAns_total, NoAns_exact, NoAns_f1,
    NoAns_total, and with --na-prob-file also best_exact, best_exact_thresh, best_f1,
    best_f1_thresh.

Scores are the official ones: answers are normalised (lower-case, punctuation removed, the
articles a/an/the removed, whitespace collapsed), a prediction scores its maximum over the gold
answers, and an unanswerable question counts as correct only for an empty prediction. v1.1 data
(every question answerable) simply has no NoAns_* keys.

One deliberate difference: the official v2.0 script drops questions that have no prediction
from the totals (and then crashes computing HasAns_*). Here a missing prediction scores 0 and
stays in every total, as the official v1.1 script does, with a warning on stderr. A question
missing from the na-prob file gets na-prob 0 (always answered) instead of a KeyError.
"""
import collections
import re
import string
import sys
from collections.abc import Mapping

from bert import files

_PUNCTUATION = frozenset(string.punctuation)
_ARTICLES = re.compile(r"\b(a|an|the)\b", re.UNICODE)


def normalize_answer(text: str) -> str:
  """Lower-cases, removes punctuation and the articles a/an/the, and collapses whitespace."""
  text = text.lower()
  text = "".join(ch for ch in text if ch not in _PUNCTUATION)
  text = _ARTICLES.sub(" ", text)
  return " ".join(text.split())


def get_tokens(text: str) -> list[str]:
  """The normalised answer split on whitespace ([] for an empty answer)."""
  if not text:
    return []
  return normalize_answer(text).split()


def compute_exact(gold_answer: str, predicted_answer: str) -> int:
  """1 if the normalised answers are identical, else 0."""
  return int(normalize_answer(gold_answer) == normalize_answer(predicted_answer))


def compute_f1(gold_answer: str, predicted_answer: str) -> float:
  """Bag-of-tokens F1 between the normalised answers.

  When either side is empty (a no-answer), F1 is 1 if both are empty and 0 otherwise.
  """
  gold_tokens = get_tokens(gold_answer)
  predicted_tokens = get_tokens(predicted_answer)
  if not gold_tokens or not predicted_tokens:
    return float(gold_tokens == predicted_tokens)
  common = collections.Counter(gold_tokens) & collections.Counter(predicted_tokens)
  num_same = sum(common.values())
  if num_same == 0:
    return 0.0
  precision = num_same / len(predicted_tokens)
  recall = num_same / len(gold_tokens)
  return 2 * precision * recall / (precision + recall)


def gold_answers_of(qa: Mapping) -> list[str]:
  """The gold answer texts of one question; [""] for an unanswerable question.

  Like the official script, answers that normalise to nothing are ignored.
  """
  answers = [a["text"] for a in qa.get("answers", []) if normalize_answer(a["text"])]
  return answers or [""]


def make_qid_to_has_ans(dataset: list) -> dict[str, bool]:
  """Question id -> whether it has at least one gold answer, over SQuAD's "data" list."""
  return {qa["id"]: bool(qa.get("answers"))
          for article in dataset
          for paragraph in article["paragraphs"]
          for qa in paragraph["qas"]}


def get_raw_scores(dataset: list, predictions: Mapping[str, str]):
  """Exact-match and F1 of every question, before any no-answer threshold.

  Returns:
    (exact_scores, f1_scores, missing_ids): dicts question id -> score over every question of
    the dataset (a missing prediction scores 0), and the set of ids without a prediction.
  """
  exact_scores, f1_scores, missing_ids = {}, {}, set()
  for article in dataset:
    for paragraph in article["paragraphs"]:
      for qa in paragraph["qas"]:
        qid = qa["id"]
        if qid not in predictions:
          missing_ids.add(qid)
          exact_scores[qid] = 0
          f1_scores[qid] = 0.0
          continue
        gold_answers = gold_answers_of(qa)
        predicted = predictions[qid]
        exact_scores[qid] = max(compute_exact(a, predicted) for a in gold_answers)
        f1_scores[qid] = max(compute_f1(a, predicted) for a in gold_answers)
  return exact_scores, f1_scores, missing_ids


def apply_no_ans_threshold(scores, na_probs, qid_to_has_ans, na_prob_thresh):
  """Scores after predicting "no answer" wherever na_probs[qid] > na_prob_thresh."""
  new_scores = {}
  for qid, score in scores.items():
    if na_probs.get(qid, 0.0) > na_prob_thresh:
      new_scores[qid] = float(not qid_to_has_ans[qid])
    else:
      new_scores[qid] = score
  return new_scores


def make_eval_dict(exact_scores, f1_scores, qid_list=None) -> dict:
  """{"exact", "f1", "total"} in percent over qid_list (default: every question)."""
  if qid_list is None:
    qid_list = list(exact_scores)
  total = len(qid_list)
  if total == 0:
    return collections.OrderedDict([("exact", 0.0), ("f1", 0.0), ("total", 0)])
  return collections.OrderedDict([
      ("exact", 100.0 * sum(exact_scores[k] for k in qid_list) / total),
      ("f1", 100.0 * sum(f1_scores[k] for k in qid_list) / total),
      ("total", total),
  ])


def merge_eval(main_eval: dict, new_eval: Mapping, prefix: str) -> None:
  for key, value in new_eval.items():
    main_eval[f"{prefix}_{key}"] = value


def find_best_thresh(predictions, scores, na_probs, qid_to_has_ans, missing_ids=frozenset()):
  """The na-prob threshold maximising the total score, as the official script sweeps it.

  Starting from "every question predicted unanswerable" (score = number of unanswerable
  questions), questions are switched to their answer in increasing na-prob order; the best
  running total and the na-prob where it was reached are returned.

  Returns:
    (best score in percent, best threshold).
  """
  current_score = sum(1 for qid in scores if not qid_to_has_ans[qid])
  best_score, best_thresh = current_score, 0.0
  # The official order: na_probs' own key order, stably sorted by probability (ties matter).
  for qid in sorted(na_probs, key=lambda k: na_probs[k]):
    if qid not in scores:
      continue
    if qid_to_has_ans[qid]:
      diff = scores[qid]
    elif qid in missing_ids or predictions[qid]:
      diff = -1
    else:
      diff = 0
    current_score += diff
    if current_score > best_score:
      best_score = current_score
      best_thresh = na_probs[qid]
  return 100.0 * best_score / max(len(scores), 1), best_thresh


def find_all_best_thresh(main_eval, predictions, exact_raw, f1_raw, na_probs, qid_to_has_ans,
                         missing_ids=frozenset()) -> None:
  best_exact, exact_thresh = find_best_thresh(predictions, exact_raw, na_probs,
                                              qid_to_has_ans, missing_ids)
  best_f1, f1_thresh = find_best_thresh(predictions, f1_raw, na_probs, qid_to_has_ans,
                                        missing_ids)
  main_eval["best_exact"] = best_exact
  main_eval["best_exact_thresh"] = exact_thresh
  main_eval["best_f1"] = best_f1
  main_eval["best_f1_thresh"] = f1_thresh


def evaluate(dataset: list, predictions: Mapping[str, str],
             na_probs: Mapping[str, float] | None = None,
             na_prob_thresh: float = 1.0) -> dict:
  """The official evaluation dict for SQuAD's "data" list and a predictions dict.

  Args:
    dataset: the "data" list of a SQuAD v1.1 or v2.0 file.
    predictions: question id -> predicted text ("" = no answer).
    na_probs: optional question id -> no-answer probability; enables best_* keys.
    na_prob_thresh: predict "no answer" when the na-prob is above this.
  """
  with_na_probs = na_probs is not None
  if na_probs is None:
    na_probs = {k: 0.0 for k in predictions}
  qid_to_has_ans = make_qid_to_has_ans(dataset)
  has_ans_qids = [k for k, v in qid_to_has_ans.items() if v]
  no_ans_qids = [k for k, v in qid_to_has_ans.items() if not v]
  exact_raw, f1_raw, missing_ids = get_raw_scores(dataset, predictions)
  if missing_ids:
    print(f"Warning: {len(missing_ids)} of {len(exact_raw)} questions have no prediction "
          f"and score 0 (e.g. {sorted(missing_ids)[0]!r})", file=sys.stderr)
  exact_thresh = apply_no_ans_threshold(exact_raw, na_probs, qid_to_has_ans, na_prob_thresh)
  f1_thresh = apply_no_ans_threshold(f1_raw, na_probs, qid_to_has_ans, na_prob_thresh)
  out_eval = make_eval_dict(exact_thresh, f1_thresh)
  if has_ans_qids:
    merge_eval(out_eval, make_eval_dict(exact_thresh, f1_thresh, has_ans_qids), "HasAns")
  if no_ans_qids:
    merge_eval(out_eval, make_eval_dict(exact_thresh, f1_thresh, no_ans_qids), "NoAns")
  if with_na_probs:
    find_all_best_thresh(out_eval, predictions, exact_raw, f1_raw, na_probs, qid_to_has_ans,
                         missing_ids)
  return out_eval


def load_dataset(path: str) -> list:
  """The "data" list of a SQuAD JSON file, with a clear error for anything else."""
  dataset_json = files.load_json(path, "SQuAD data", dict)
  if "data" not in dataset_json or not isinstance(dataset_json["data"], list):
    raise ValueError(f"{path}: expected a SQuAD file {{\"version\": ..., \"data\": [...]}}, "
                     f"found keys {sorted(dataset_json)}")
  return dataset_json["data"]
