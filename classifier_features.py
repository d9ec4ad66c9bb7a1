"""Classifier features, GLUE metrics and Google's output files (used via classifier_data).

Features follow Google's convert_single_example: [CLS] a [SEP] (segment 0) b [SEP]
(segment 1), the longer text trimmed one token at a time until the pair fits, zero padding
to max_seq_length. `convert_examples_to_features` does the same for many examples at once
through the tokenizer's batch path `tokenize_to_ids` (same ids, by its contract).

Metrics are numpy only: accuracy, binary F1 (positive label id 1), Matthews correlation,
Pearson and Spearman (average ranks for ties).
"""
import dataclasses
from typing import Iterator, Optional, Sequence

import numpy as np


@dataclasses.dataclass
class InputFeatures:
  """One example's model input: int lists of length max_seq_length and its label id."""
  input_ids: list
  input_mask: list
  segment_ids: list
  label_id: object  # int, or float for regression.
  is_real_example: bool = True


def truncate_seq_pair(tokens_a: list, tokens_b: list, max_length: int) -> None:
  """Trims the longer list by one token from its end until both fit in max_length.

  Trimming the longer one keeps as much of the shorter text as possible (it usually carries
  as much information per token). Modifies the lists in place.
  """
  while len(tokens_a) + len(tokens_b) > max_length:
    if len(tokens_a) > len(tokens_b):
      tokens_a.pop()
    else:
      tokens_b.pop()


def _label_id(label, label_map: Optional[dict]):
  """Label id (int), the float score for regression (label_map None); 0 when unlabelled."""
  if label_map is None:
    return 0.0 if label is None else float(label)
  return 0 if label is None else label_map[label]


def _pack(ids_a: list, ids_b: Optional[list], max_seq_length: int, cls_id: int,
          sep_id: int, input_ids: np.ndarray, input_mask: np.ndarray,
          segment_ids: np.ndarray) -> None:
  """Writes [CLS] a [SEP] (b [SEP]) into one zero-initialised row of each array."""
  if ids_b:
    truncate_seq_pair(ids_a, ids_b, max_seq_length - 3)
  else:
    ids_b = None
    del ids_a[max_seq_length - 2:]
  row = [cls_id] + ids_a + [sep_id]
  num_a = len(row)
  if ids_b is not None:
    row += ids_b + [sep_id]
  input_ids[:len(row)] = row
  input_mask[:len(row)] = 1
  segment_ids[num_a:len(row)] = 1


def convert_single_example(ex_index: int, example, label_list: Optional[Sequence[str]],
                           max_seq_length: int, tokenizer) -> InputFeatures:
  """Google's convert_single_example: one InputExample -> InputFeatures.

  Args:
    ex_index: the example's index (unused; kept for Google's signature).
    label_list: the task's labels (label id = index); None for regression.
  """
  del ex_index
  label_map = None if label_list is None else {l: i for i, l in enumerate(label_list)}
  cls_id, sep_id = tokenizer.convert_tokens_to_ids(["[CLS]", "[SEP]"])
  ids_a = tokenizer.convert_tokens_to_ids(tokenizer.tokenize(example.text_a))
  ids_b = None
  if example.text_b:
    ids_b = tokenizer.convert_tokens_to_ids(tokenizer.tokenize(example.text_b))
  arrays = np.zeros((3, max_seq_length), np.int32)
  _pack(ids_a, ids_b, max_seq_length, cls_id, sep_id, *arrays)
  return InputFeatures(input_ids=arrays[0].tolist(), input_mask=arrays[1].tolist(),
                       segment_ids=arrays[2].tolist(),
                       label_id=_label_id(example.label, label_map))


def _tokenize_ids(tokenizer, texts: list) -> list:
  if hasattr(tokenizer, "tokenize_to_ids"):
    return [list(ids) for ids in tokenizer.tokenize_to_ids(texts)]
  return [tokenizer.convert_tokens_to_ids(tokenizer.tokenize(t)) for t in texts]


def iterate_feature_batches(examples: Sequence, label_list: Optional[Sequence[str]],
                            max_seq_length: int, tokenizer,
                            chunk_size: int = 4096) -> Iterator[dict]:
  """Yields the features of chunk_size examples at a time as numpy arrays.

  Each chunk's texts go through the tokenizer in one `tokenize_to_ids` call when the
  tokenizer has it. Memory is bounded by chunk_size, not by the number of examples.

  Yields:
    {"input_ids", "input_mask", "segment_ids": int32 [chunk, max_seq_length],
     "label_ids": int32 [chunk] (float32 for regression, label_list None),
     "is_real_example": int32 [chunk] (all 1)}.
  """
  if max_seq_length < 3:
    raise ValueError(f"max_seq_length={max_seq_length} leaves no room for text")
  label_map = None if label_list is None else {l: i for i, l in enumerate(label_list)}
  cls_id, sep_id = tokenizer.convert_tokens_to_ids(["[CLS]", "[SEP]"])
  for start in range(0, len(examples), chunk_size):
    chunk = examples[start:start + chunk_size]
    pairs = [i for i, e in enumerate(chunk) if e.text_b]
    ids = _tokenize_ids(tokenizer, [e.text_a for e in chunk]
                        + [chunk[i].text_b for i in pairs])
    ids_b = [None] * len(chunk)
    for i, b in zip(pairs, ids[len(chunk):]):
      ids_b[i] = b
    arrays = np.zeros((3, len(chunk), max_seq_length), np.int32)
    for i in range(len(chunk)):
      _pack(ids[i], ids_b[i], max_seq_length, cls_id, sep_id, arrays[0, i], arrays[1, i],
            arrays[2, i])
    label_dtype = np.float32 if label_map is None else np.int32
    yield {
        "input_ids": arrays[0], "input_mask": arrays[1], "segment_ids": arrays[2],
        "label_ids": np.array([_label_id(e.label, label_map) for e in chunk], label_dtype),
        "is_real_example": np.ones(len(chunk), np.int32),
    }


def convert_examples_to_features(examples: Sequence, label_list: Optional[Sequence[str]],
                                 max_seq_length: int, tokenizer,
                                 chunk_size: int = 4096) -> dict:
  """All examples' features as one dict of numpy arrays (see iterate_feature_batches)."""
  batches = list(iterate_feature_batches(examples, label_list, max_seq_length, tokenizer,
                                         chunk_size))
  if not batches:
    label_dtype = np.float32 if label_list is None else np.int32
    return {"input_ids": np.zeros((0, max_seq_length), np.int32),
            "input_mask": np.zeros((0, max_seq_length), np.int32),
            "segment_ids": np.zeros((0, max_seq_length), np.int32),
            "label_ids": np.zeros((0,), label_dtype),
            "is_real_example": np.zeros((0,), np.int32)}
  return {key: np.concatenate([b[key] for b in batches]) for key in batches[0]}


# ---------------------------------------------------------------------------------------
# Metrics.


def _as_arrays(labels, predictions):
  labels, predictions = np.asarray(labels).reshape(-1), np.asarray(predictions).reshape(-1)
  if labels.shape != predictions.shape:
    raise ValueError(f"{labels.size} labels but {predictions.size} predictions")
  return labels, predictions


def accuracy(labels, predictions) -> float:
  """Fraction of predictions equal to the labels; labels, predictions: int [n]."""
  labels, predictions = _as_arrays(labels, predictions)
  return float(np.mean(labels == predictions)) if labels.size else 0.0


def f1_score(labels, predictions, positive_label: int = 1) -> float:
  """Binary F1 of the positive label: 2 TP / (2 TP + FP + FN); 0 when TP = 0."""
  labels, predictions = _as_arrays(labels, predictions)
  true_positives = np.sum((predictions == positive_label) & (labels == positive_label))
  predicted, actual = np.sum(predictions == positive_label), np.sum(labels == positive_label)
  if true_positives == 0:
    return 0.0
  return float(2 * true_positives / (predicted + actual))


def matthews_corrcoef(labels, predictions) -> float:
  """Matthews correlation (multi-class form; binary MCC for two classes); 0 if undefined.

  With the confusion matrix C, c = trace, s = n, t = row sums, p = column sums:
  (c s - t.p) / sqrt((s^2 - p.p)(s^2 - t.t)).
  """
  labels, predictions = _as_arrays(labels, predictions)
  classes, encoded = np.unique(np.concatenate([labels, predictions]), return_inverse=True)
  n = labels.size
  confusion = np.zeros((len(classes), len(classes)), np.float64)
  np.add.at(confusion, (encoded[:n], encoded[n:]), 1)
  true_counts, predicted_counts = confusion.sum(axis=1), confusion.sum(axis=0)
  correct, total = np.trace(confusion), confusion.sum()
  numerator = correct * total - true_counts @ predicted_counts
  denominator = np.sqrt((total ** 2 - predicted_counts @ predicted_counts)
                        * (total ** 2 - true_counts @ true_counts))
  return float(numerator / denominator) if denominator > 0 else 0.0


def pearson_corrcoef(x, y) -> float:
  """Pearson correlation of two float [n] arrays (0 when one is constant)."""
  x, y = _as_arrays(x, y)
  x, y = x.astype(np.float64) - np.mean(x), y.astype(np.float64) - np.mean(y)
  denominator = np.sqrt(np.sum(x * x) * np.sum(y * y))
  return float(np.sum(x * y) / denominator) if denominator > 0 else 0.0


def average_ranks(values) -> np.ndarray:
  """1-based ranks of values [n], ties sharing the average of their ranks (float64 [n])."""
  _, inverse, counts = np.unique(np.asarray(values), return_inverse=True, return_counts=True)
  last_rank = np.cumsum(counts)  # The highest 1-based rank of each distinct value.
  return (last_rank - (counts - 1) / 2.0)[inverse.reshape(-1)]


def spearman_corrcoef(x, y) -> float:
  """Spearman correlation: Pearson of the tie-averaged ranks."""
  x, y = _as_arrays(x, y)
  return pearson_corrcoef(average_ranks(x), average_ranks(y))


_F1_TASKS = ("mrpc", "qqp")
_MCC_TASKS = ("cola",)
_REGRESSION_TASKS = ("sts-b", "stsb")


def task_metrics(task_name: str, labels, predictions) -> dict:
  """Google-style metrics of a task.

  Args:
    labels: int [n] label ids (float [n] scores for STS-B).
    predictions: int [n] predicted ids, or [n, num_labels] probabilities/logits (argmax is
      taken); float [n] or [n, 1] for STS-B.

  Returns:
    {"eval_accuracy"} plus "eval_f1" (MRPC, QQP) or "eval_mcc" (CoLA); for STS-B
    {"eval_pearson", "eval_spearman"}.
  """
  name = task_name.lower()
  predictions = np.asarray(predictions)
  if name in _REGRESSION_TASKS:
    predictions = predictions.reshape(-1)
    return {"eval_pearson": pearson_corrcoef(labels, predictions),
            "eval_spearman": spearman_corrcoef(labels, predictions)}
  if predictions.ndim == 2:
    predictions = np.argmax(predictions, axis=-1)
  metrics = {"eval_accuracy": accuracy(labels, predictions)}
  if name in _F1_TASKS:
    metrics["eval_f1"] = f1_score(labels, predictions)
  if name in _MCC_TASKS:
    metrics["eval_mcc"] = matthews_corrcoef(labels, predictions)
  return metrics


# ---------------------------------------------------------------------------------------
# Google's output files.


def write_eval_results(path: str, results: dict) -> None:
  """eval_results.txt: one "key = value" line per metric, keys sorted (Google's format)."""
  with open(path, "w", encoding="utf-8") as writer:
    for key in sorted(results):
      writer.write(f"{key} = {results[key]}\n")


def write_test_results(path: str, probabilities) -> int:
  """test_results.tsv: one line per example, its class probabilities tab-separated.

  Args:
    probabilities: float [n, num_labels] (or [n] for regression scores). Values are written
      with str() of their own dtype, as Google wrote numpy float32 outputs.

  Returns:
    the number of lines written.
  """
  probabilities = np.asarray(probabilities)
  if probabilities.ndim == 1:
    probabilities = probabilities[:, None]
  with open(path, "w", encoding="utf-8") as writer:
    for row in probabilities:
      writer.write("\t".join(str(p) for p in row) + "\n")
  return len(probabilities)
