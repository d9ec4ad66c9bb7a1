"""Reading and writing the files every script names by flag: globs, JSON, Google's results.

Errors name the file (and the line, where there is one) and what was expected.
"""
import glob
import json
import os


def expand_input_files(patterns: str, flag_name: str = "--input_file") -> list[str]:
  """Comma-separated paths or globs -> files, in the order given (each glob sorted).

  Local paths use Python's glob (no TensorFlow import: create_pretraining_data.py and
  learn_vocab.py stay TF-free); URLs such as gs://... go through tf.io.gfile.

  Raises:
    FileNotFoundError naming flag_name and a pattern that matches no file.
    ValueError when `patterns` names no pattern at all.
  """
  files = []
  for pattern in filter(None, (p.strip() for p in patterns.split(","))):
    if "://" in pattern:
      import tensorflow as tf
      matches = sorted(tf.io.gfile.glob(pattern))
    else:
      matches = sorted(glob.glob(pattern))
    if not matches:
      raise FileNotFoundError(f"{flag_name}: {pattern!r} matches no file")
    files.extend(matches)
  if not files:
    raise ValueError(f"{flag_name} is empty")
  return files


def load_json(path: str, what: str, expect_type: type):
  """Reads a JSON file of `expect_type`; errors name the file (and the line, for bad JSON)."""
  try:
    with open(path, encoding="utf-8") as f:
      value = json.load(f)
  except FileNotFoundError:
    raise FileNotFoundError(f"{what} file not found: {path}") from None
  except json.JSONDecodeError as e:
    raise ValueError(f"{path}:{e.lineno}: {what} file is not valid JSON ({e.msg})") from None
  if not isinstance(value, expect_type):
    raise ValueError(f"{path}: {what} file must hold a JSON {expect_type.__name__}, "
                     f"found {type(value).__name__}")
  return value


def write_results(path: str, results: dict) -> None:
  """Google's eval_results.txt: one `key = value` line per metric, keys sorted."""
  directory = os.path.dirname(path)
  if directory:
    os.makedirs(directory, exist_ok=True)
  with open(path, "w", encoding="utf-8") as f:
    for key in sorted(results):
      f.write(f"{key} = {results[key]}\n")


def write_test_results(path: str, probabilities) -> int:
  """test_results.tsv: one line per example, its class probabilities tab-separated.

  Args:
    probabilities: float [n, num_labels] (or [n] for regression scores). Values are written
      with str() of their own dtype, as Google wrote numpy float32 outputs.

  Returns:
    the number of lines written.
  """
  import numpy as np
  probabilities = np.asarray(probabilities)
  if probabilities.ndim == 1:
    probabilities = probabilities[:, None]
  with open(path, "w", encoding="utf-8") as writer:
    for row in probabilities:
      writer.write("\t".join(str(p) for p in row) + "\n")
  return len(probabilities)
