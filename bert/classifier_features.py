"""Classifier features: examples -> Google's input arrays.

Features follow Google's convert_single_example: [CLS] a [SEP] (segment 0) b [SEP]
(segment 1), the longer text trimmed one token at a time until the pair fits, zero padding
to max_seq_length. `convert_examples_to_features` does the same for many examples at once
through the tokenizer's batch path `tokenize_to_ids` (same ids, by its contract).
"""
import dataclasses
from collections.abc import Iterator
from collections.abc import Sequence

import numpy as np


@dataclasses.dataclass
class InputFeatures:
  """One example's model input: int lists of length max_seq_length and its label id."""
  input_ids: list
  input_mask: list
  segment_ids: list
  label_id: object  # int, or float for regression.


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


def _label_id(label, label_map: dict | None):
  """Label id (int), the float score for regression (label_map None); 0 when unlabelled."""
  if label_map is None:
    return 0.0 if label is None else float(label)
  return 0 if label is None else label_map[label]


def _pack(ids_a: list, ids_b: list | None, max_seq_length: int, cls_id: int,
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


def convert_single_example(ex_index: int, example, label_list: Sequence[str] | None,
                           max_seq_length: int, tokenizer) -> InputFeatures:
  """Google's convert_single_example: one InputExample -> InputFeatures.

  Args:
    ex_index: the example's index (unused; kept for Google's signature).
    label_list: the task's labels (label id = index); None for regression.
  """
  del ex_index
  label_map = None if label_list is None else {label: i for i, label in enumerate(label_list)}
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
  return [list(ids) for ids in tokenizer.tokenize_to_ids(texts)]


def iterate_feature_batches(examples: Sequence, label_list: Sequence[str] | None,
                            max_seq_length: int, tokenizer,
                            chunk_size: int = 4096) -> Iterator[dict]:
  """Yields the features of chunk_size examples at a time as numpy arrays.

  Each chunk's texts go through the tokenizer in one `tokenize_to_ids` call when the
  tokenizer has it. Memory is bounded by chunk_size, not by the number of examples.

  Yields:
    {"input_ids", "input_mask", "segment_ids": int32 [chunk, max_seq_length],
     "label_ids": int32 [chunk] (float32 for regression, label_list None)}.
  """
  if max_seq_length < 3:
    raise ValueError(f"max_seq_length={max_seq_length} leaves no room for text")
  label_map = None if label_list is None else {label: i for i, label in enumerate(label_list)}
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
    }


def convert_examples_to_features(examples: Sequence, label_list: Sequence[str] | None,
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
            "label_ids": np.zeros((0,), label_dtype)}
  return {key: np.concatenate([b[key] for b in batches]) for key in batches[0]}


# ---------------------------------------------------------------------------------------
# Metrics.
