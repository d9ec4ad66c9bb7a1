"""SQuAD postprocessing for run_squad.py: logits -> answer texts, Google's output files.

Re-implements Google's write_predictions: for every example, the n best start and end
positions among each window's tokens (Google ranked its padding too) are paired into
candidate spans (the end not before the start, at most max_answer_length sub-tokens,
starting at a token this window gives its maximum context); the candidates are ranked by
start_logit + end_logit; a span's text is its WordPieces joined and projected back onto
the original context text (`get_final_text`).

SQuAD v2.0: the null score is the smallest start_logits[0] + end_logits[0] ([CLS]) over the
example's windows; the prediction is "" when null score - best non-null score exceeds
null_score_diff_threshold, and that difference is written to null_odds.json.

google-research/bert #476: when every candidate span is invalid, Google's v2.0 code has no
non-null entry and crashes. Here a fallback entry {"text": "empty", logits 0.0} (the
placeholder Google already uses when there are no candidates at all) is added to the n-best
and serves as the best non-null entry.
"""
import collections
import json
import logging
import math
from collections.abc import Mapping
from collections.abc import Sequence

import numpy as np

from bert import squad_metrics

logger = logging.getLogger(__name__)

RawResult = collections.namedtuple("RawResult", ["unique_id", "start_logits", "end_logits"])
RawResult.__doc__ = """Model output for one feature: start_logits and end_logits are [seq]."""


def raw_results(unique_ids, outputs: dict) -> list:
  """A RawResult per feature from the model's outputs in feature order ({"start_logits",
  "end_logits"}: [num_features, seq] each)."""
  return [RawResult(int(unique_id), start_logits, end_logits)
          for unique_id, start_logits, end_logits in zip(
              unique_ids, outputs["start_logits"], outputs["end_logits"])]

_PrelimPrediction = collections.namedtuple(
    "PrelimPrediction", ["feature_index", "start_index", "end_index", "start_logit",
                         "end_logit"])
_NbestPrediction = collections.namedtuple("NbestPrediction",
                                          ["text", "start_logit", "end_logit"])

# Text of the fallback n-best entry when no valid non-null span exists (see module doc).
FALLBACK_TEXT = "empty"


def get_best_indexes(logits: Sequence[float], n_best_size: int) -> list[int]:
  """Indices of the n_best_size largest logits, largest first (ties: lower index first)."""
  order = np.argsort(-np.asarray(logits, dtype=np.float64), kind="stable")
  return [int(i) for i in order[:n_best_size]]


def compute_softmax(scores: Sequence[float]) -> list[float]:
  """Softmax of raw Python floats, stable against overflow ([] for no scores)."""
  if not scores:
    return []
  max_score = max(scores)
  exp_scores = [math.exp(score - max_score) for score in scores]
  total = sum(exp_scores)
  return [x / total for x in exp_scores]


def _strip_spaces(text: str):
  """text without spaces, and a map from its character indices to those in text."""
  chars, no_space_to_space = [], {}
  for i, char in enumerate(text):
    if char == " ":
      continue
    no_space_to_space[len(chars)] = i
    chars.append(char)
  return "".join(chars), no_space_to_space


def get_final_text(pred_text: str, orig_text: str, do_lower_case: bool,
                   verbose_logging: bool = False) -> str:
  """Projects a tokenised prediction back onto the original text.

  pred_text is normalised WordPiece output (e.g. "steve smith" for the original "Steve
  Smith's"). The original words are re-tokenised with the BasicTokenizer, the prediction is
  located in that string, and both strings are aligned character by character ignoring
  spaces, which maps the prediction's first and last characters back into orig_text. When
  the alignment fails (the prediction is not found, or the lengths differ, as after accent
  stripping), orig_text is returned unchanged.
  """
  import tokenization
  basic_tokenizer = tokenization.BasicTokenizer(do_lower_case=do_lower_case)
  tok_text = " ".join(basic_tokenizer.tokenize(orig_text))
  start_position = tok_text.find(pred_text)
  if start_position == -1:
    if verbose_logging:
      logger.info("Unable to find text: %r in %r", pred_text, orig_text)
    return orig_text
  end_position = start_position + len(pred_text) - 1

  orig_ns_text, orig_ns_to_s_map = _strip_spaces(orig_text)
  tok_ns_text, tok_ns_to_s_map = _strip_spaces(tok_text)
  if len(orig_ns_text) != len(tok_ns_text):
    if verbose_logging:
      logger.info("Length not equal after stripping spaces: %r vs %r", orig_ns_text,
                  tok_ns_text)
    return orig_text
  tok_s_to_ns_map = {s: ns for ns, s in tok_ns_to_s_map.items()}

  orig_start_position = orig_ns_to_s_map.get(tok_s_to_ns_map.get(start_position))
  if orig_start_position is None:
    if verbose_logging:
      logger.info("Couldn't map start position")
    return orig_text
  orig_end_position = orig_ns_to_s_map.get(tok_s_to_ns_map.get(end_position))
  if orig_end_position is None:
    if verbose_logging:
      logger.info("Couldn't map end position")
    return orig_text
  return orig_text[orig_start_position:orig_end_position + 1]


def _detokenize_wordpieces(tokens: Sequence[str]) -> str:
  text = " ".join(tokens).replace(" ##", "").replace("##", "")
  return " ".join(text.strip().split())


def compute_predictions(all_examples, all_features, all_results, n_best_size: int,
                        max_answer_length: int, do_lower_case: bool,
                        version_2_with_negative: bool = False,
                        null_score_diff_threshold: float = 0.0,
                        verbose_logging: bool = False):
  """Answer text, n-best list and (v2.0) null-score difference of every example.

  Args:
    all_examples: the SquadExamples, in the order their features were made.
    all_features: the InputFeatures of all examples.
    all_results: a RawResult for every feature (any order; matched by unique_id).

  Returns:
    (predictions, nbest, scores_diff): OrderedDicts keyed by qas_id: the answer text; a list
    of {"text", "probability", "start_logit", "end_logit"}; and (v2.0 only, else empty)
    null score - best non-null score.
  """
  features_by_example = collections.defaultdict(list)
  for feature in all_features:
    features_by_example[feature.example_index].append(feature)
  result_by_unique_id = {result.unique_id: result for result in all_results}

  all_predictions = collections.OrderedDict()
  all_nbest_json = collections.OrderedDict()
  scores_diff_json = collections.OrderedDict()
  for example_index, example in enumerate(all_examples):
    features = features_by_example[example_index]
    prelim_predictions = []
    # The smallest [CLS] score over the windows; Google's large start value keeps the JSON
    # finite for an example without windows (an empty context).
    score_null = 1000000.0
    min_null_feature_index, null_start_logit, null_end_logit = 0, 0.0, 0.0
    for feature_index, feature in enumerate(features):
      if feature.unique_id not in result_by_unique_id:
        raise ValueError(f"no model result for feature {feature.unique_id} of question "
                         f"{example.qas_id!r}")
      result = result_by_unique_id[feature.unique_id]
      # Only the window's tokens: Google's top n_best_size also ranked the padding, which
      # could take slots from real positions and made the n-best depend on how the window
      # was padded (here batches are padded to different lengths).
      num_tokens = len(feature.tokens)
      start_logits = [float(x) for x in result.start_logits[:num_tokens]]
      end_logits = [float(x) for x in result.end_logits[:num_tokens]]
      if version_2_with_negative:
        feature_null_score = start_logits[0] + end_logits[0]
        if feature_null_score < score_null:
          score_null = feature_null_score
          min_null_feature_index = feature_index
          null_start_logit, null_end_logit = start_logits[0], end_logits[0]
      for start_index in get_best_indexes(start_logits, n_best_size):
        for end_index in get_best_indexes(end_logits, n_best_size):
          # Spans must lie in the document part of this window and start at a token whose
          # maximum context is this window (its other windows will score it better).
          if (start_index not in feature.token_to_orig_map
              or end_index not in feature.token_to_orig_map):
            continue
          if not feature.token_is_max_context.get(start_index, False):
            continue
          if end_index < start_index or end_index - start_index + 1 > max_answer_length:
            continue
          prelim_predictions.append(_PrelimPrediction(
              feature_index, start_index, end_index, start_logits[start_index],
              end_logits[end_index]))
    if version_2_with_negative:
      prelim_predictions.append(_PrelimPrediction(
          min_null_feature_index, 0, 0, null_start_logit, null_end_logit))
    prelim_predictions.sort(key=lambda p: p.start_logit + p.end_logit, reverse=True)

    seen_texts, nbest = set(), []
    for pred in prelim_predictions:
      if len(nbest) >= n_best_size:
        break
      if pred.start_index > 0:  # A span, not the null answer.
        feature = features[pred.feature_index]
        tok_text = _detokenize_wordpieces(feature.tokens[pred.start_index:pred.end_index + 1])
        orig_doc_start = feature.token_to_orig_map[pred.start_index]
        orig_doc_end = feature.token_to_orig_map[pred.end_index]
        orig_text = " ".join(example.doc_tokens[orig_doc_start:orig_doc_end + 1])
        final_text = get_final_text(tok_text, orig_text, do_lower_case, verbose_logging)
        if final_text in seen_texts:
          continue
      else:
        final_text = ""
      seen_texts.add(final_text)
      nbest.append(_NbestPrediction(final_text, pred.start_logit, pred.end_logit))

    if version_2_with_negative:
      if "" not in seen_texts:
        nbest.append(_NbestPrediction("", null_start_logit, null_end_logit))
      if not any(entry.text for entry in nbest):  # google-research/bert #476.
        nbest.insert(0, _NbestPrediction(FALLBACK_TEXT, 0.0, 0.0))
    if not nbest:
      nbest.append(_NbestPrediction(FALLBACK_TEXT, 0.0, 0.0))

    probabilities = compute_softmax([e.start_logit + e.end_logit for e in nbest])
    nbest_json = [collections.OrderedDict([("text", e.text), ("probability", p),
                                           ("start_logit", e.start_logit),
                                           ("end_logit", e.end_logit)])
                  for e, p in zip(nbest, probabilities)]
    all_nbest_json[example.qas_id] = nbest_json
    if not version_2_with_negative:
      all_predictions[example.qas_id] = nbest[0].text
      continue
    best_non_null = next(entry for entry in nbest if entry.text)
    score_diff = score_null - best_non_null.start_logit - best_non_null.end_logit
    scores_diff_json[example.qas_id] = score_diff
    all_predictions[example.qas_id] = (
        "" if score_diff > null_score_diff_threshold else best_non_null.text)
  return all_predictions, all_nbest_json, scores_diff_json


def write_predictions(all_examples, all_features, all_results, n_best_size: int,
                      max_answer_length: int, do_lower_case: bool,
                      output_prediction_file: str, output_nbest_file: str,
                      output_null_log_odds_file: str | None,
                      version_2_with_negative: bool = False,
                      null_score_diff_threshold: float = 0.0,
                      verbose_logging: bool = False):
  """compute_predictions, then writes Google's predictions.json, nbest_predictions.json and
  (v2.0) null_odds.json (JSON with indent 4 and a final newline).

  Returns:
    (predictions, nbest, scores_diff) as compute_predictions.
  """
  predictions, nbest, scores_diff = compute_predictions(
      all_examples, all_features, all_results, n_best_size, max_answer_length,
      do_lower_case, version_2_with_negative, null_score_diff_threshold, verbose_logging)
  logger.info("Writing predictions to: %s", output_prediction_file)
  logger.info("Writing nbest to: %s", output_nbest_file)
  outputs = [(output_prediction_file, predictions), (output_nbest_file, nbest)]
  if version_2_with_negative and output_null_log_odds_file:
    outputs.append((output_null_log_odds_file, scores_diff))
  for path, value in outputs:
    with open(path, "w", encoding="utf-8") as writer:
      writer.write(json.dumps(value, indent=4) + "\n")
  return predictions, nbest, scores_diff


def dataset_has_answers(dataset: list) -> bool:
  """Whether a SQuAD "data" list carries gold answers (any answer or is_impossible flag)."""
  return any(qa.get("answers") or qa.get("is_impossible")
             for article in dataset for paragraph in article["paragraphs"]
             for qa in paragraph["qas"])


def evaluate_predictions(dataset: list, predictions: Mapping[str, str],
                         na_probs: Mapping[str, float] | None = None) -> dict:
  """Official SQuAD scores (squad_metrics.evaluate) of predictions against the dataset.

  Returns:
    {"exact", "f1", "total", "HasAns_*", "NoAns_*"} and, with na_probs (e.g. the scores_diff
    of compute_predictions), "best_exact", "best_f1" and their thresholds.
  """
  return squad_metrics.evaluate(dataset, predictions, na_probs=na_probs)
