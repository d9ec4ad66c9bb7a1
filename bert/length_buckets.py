"""Length-aware batching: each batch is cut to its longest example, rounded up to a bucket.

Google's scripts pad every example to max_seq_length. Real sentences are 20-40 WordPieces,
so most of a 128-token batch is padding that the model computes and then ignores (the
attention mask keeps it out of every real position's output). Here a batch holds examples of
similar length and is cut to `padded_length` of its longest example: one of NUM_BUCKETS
lengths, so a step function traces only that many shapes.

- Prediction (`prediction_batches`, `predict_in_order`): examples sorted by length, outputs
  put back in input order.
- Training (`training_batches`): as Hugging Face's group_by_length. The shuffled examples are
  taken GROUP_SIZE batches at a time, sorted by length within that group, cut into batches,
  and the group's batches shuffled: which examples share a batch and the order of batches
  stay random at the scale of a group.

`pad_to_max_length=True` gives Google's fixed padding: input order, every batch
max_seq_length long.

Arrays are the scripts' feature dicts {name: [num_examples, ...]}: those of rank >= 2 are per
token along axis 1 (input_ids, input_mask, segment_ids, NER's label_ids and label_weights)
and are cut; the others are per example.
"""
from collections.abc import Callable
from collections.abc import Iterator
from collections.abc import Sequence

import numpy as np
from absl import logging

NUM_BUCKETS = 8
# Batches per group sorted together for training (Hugging Face's megabatch_mult).
GROUP_SIZE = 50


def bucket_lengths(max_seq_length: int) -> list[int]:
  """The NUM_BUCKETS lengths batches are cut to: equal steps up to max_seq_length
  (128 -> 16, 32, ..., 128)."""
  step = -(-max_seq_length // NUM_BUCKETS)
  return sorted({min(step * i, max_seq_length) for i in range(1, NUM_BUCKETS + 1)})


def padded_length(longest: int, max_seq_length: int) -> int:
  """The smallest bucket length >= longest (at least 1 token)."""
  return next(b for b in bucket_lengths(max_seq_length) if b >= max(longest, 1))


def sequence_lengths(input_mask: np.ndarray) -> np.ndarray:
  """int [n]: each row's length up to its last real token, from input_mask [n, seq]."""
  mask = np.asarray(input_mask) != 0
  last_from_end = np.argmax(mask[:, ::-1], axis=1)
  return np.where(mask.any(axis=1), mask.shape[1] - last_from_end, 0)


def take(arrays: dict, indices: np.ndarray, length: int) -> dict:
  """The examples `indices` of arrays, per-token arrays cut to `length` positions."""
  return {name: (value[indices, :length] if value.ndim >= 2 else value[indices])
          for name, value in arrays.items()}


def prediction_batches(lengths: np.ndarray, batch_size: int, max_seq_length: int,
                       pad_to_max_length: bool = False) -> list[tuple[np.ndarray, int]]:
  """[(example indices, padded length)] covering every example once, shortest first.

  Args:
    lengths: int [n], sequence_lengths of the examples.
    pad_to_max_length: Google's batches instead: input order, max_seq_length each.
  """
  order = np.arange(len(lengths)) if pad_to_max_length else np.argsort(lengths, kind="stable")
  batches = []
  for start in range(0, len(order), batch_size):
    indices = order[start:start + batch_size]
    length = (max_seq_length if pad_to_max_length
              else padded_length(int(lengths[indices].max()), max_seq_length))
    batches.append((indices, length))
  return batches


def predict_in_order(predict_fn: Callable[[dict], object], inputs: dict, batch_size: int,
                     pad_to_max_length: bool = False, outputs_per_token: bool = False,
                     log_batches: bool = True):
  """predict_fn over every example in prediction_batches, outputs back in input order.

  Args:
    predict_fn: {name: int32 [batch, length]} -> an array [batch, ...] or a dict of them.
    inputs: {name: array [num_examples, max_seq_length]} with "input_mask".
    outputs_per_token: the outputs are [batch, length, ...]; they come back
      [num_examples, max_seq_length, ...], zero past each batch's length (padding).
    log_batches: log the batch lengths and the tokens computed (not per served request).
  Returns:
    numpy [num_examples, ...], or a dict of them for dict outputs.
  """
  max_seq_length = inputs["input_mask"].shape[1]
  batches = prediction_batches(sequence_lengths(inputs["input_mask"]), batch_size,
                               max_seq_length, pad_to_max_length)
  num_tokens = sum(len(indices) * length for indices, length in batches)
  if log_batches:
    logging.info("Predicting %d examples: %d batches of lengths %s, %d tokens (%.0f%% of "
                 "padding each to %d)", len(inputs["input_mask"]), len(batches),
                 sorted({length for _, length in batches}), num_tokens,
                 100 * num_tokens / max(1, inputs["input_mask"].size), max_seq_length)
  outputs = [predict_fn(take(inputs, indices, length)) for indices, length in batches]
  per_token_length = max_seq_length if outputs_per_token else None
  if outputs and isinstance(outputs[0], dict):
    return {key: restore_order([o[key] for o in outputs], batches, per_token_length)
            for key in outputs[0]}
  return restore_order(outputs, batches, per_token_length)


def restore_order(batch_outputs: Sequence, batches: Sequence[tuple],
                  max_seq_length: int | None = None) -> np.ndarray:
  """Every example's output in input order, from the outputs of prediction_batches' batches.

  Args:
    batch_outputs: per batch of `batches`, an array [batch, ...].
    max_seq_length: given for outputs per token ([batch, length, ...]): they are padded back
      to [num_examples, max_seq_length, ...] with zeros.
  """
  num_examples = sum(len(indices) for indices, _ in batches)
  first = np.asarray(batch_outputs[0])
  tail = first.shape[1:] if max_seq_length is None else (max_seq_length,) + first.shape[2:]
  result = np.zeros((num_examples,) + tail, first.dtype)
  for output, (indices, length) in zip(batch_outputs, batches):
    if max_seq_length is None:
      result[indices] = np.asarray(output)
    else:
      result[indices, :length] = np.asarray(output)
  return result


def training_batches(lengths: np.ndarray, batch_size: int, seed: int) -> Iterator[np.ndarray]:
  """Endless batches of example indices, grouped by length (see the module doc).

  Epoch after epoch, each a new permutation of range(len(lengths)); a group can span two
  epochs, so no example is dropped or repeated within an epoch except at that boundary.

  Args:
    lengths: int [n], sequence_lengths of the examples.
    batch_size: examples per batch (one optimizer step's, to keep its micro-batches alike).
  Yields:
    int64 [batch_size] example indices.
  """
  rng = np.random.default_rng(seed)
  # A group never spans more than an epoch's worth of batches (small training sets).
  batches_per_group = max(1, min(GROUP_SIZE, len(lengths) // batch_size))
  group_examples = batch_size * batches_per_group
  stream = np.zeros(0, np.int64)
  while True:
    while len(stream) < group_examples:
      stream = np.concatenate([stream, rng.permutation(len(lengths))])
    group, stream = stream[:group_examples], stream[group_examples:]
    group = group[np.argsort(lengths[group], kind="stable")]
    batches = group.reshape(batches_per_group, batch_size)
    yield from batches[rng.permutation(batches_per_group)]
