"""GLUE metrics of run_classifier, numpy only: accuracy, binary F1 (positive label id 1),
Matthews correlation, Pearson and Spearman (average ranks for ties), and each task's set.
"""
import numpy as np


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
