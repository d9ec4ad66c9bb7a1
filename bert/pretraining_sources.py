"""Pre-training input made while training: dynamic masking, and instances from raw text.

Both reuse create_pretraining_data's algorithm (pretraining_data); nothing here re-states it.
The tokenizer, vocabulary and MaskingConfig come from the same flags through the same functions
(pretraining_data.load_tokenizer_and_vocab and masking_config).

Dynamic masking (`mask_dataset`, run_pretraining's --dynamic_masking): batches of unmasked
instances (create_pretraining_data.py --no_masking) are masked in the tf.data pipeline by
`pretraining_data.mask_batch`, the masking create_pretraining_data applies when it writes.
The random numbers of a batch are drawn from a generator seeded by (seed, rank, batch index)
and nothing else, so
  * each epoch sees new masks: a record comes back in a batch of another index;
  * the masks are a function of the seed, the rank and the position in the input;
  * a resumed run (the Trainer skips the batches it already consumed) masks every later batch
    exactly as the uninterrupted run did: no RNG state runs through the pipeline.

Raw text (`text_dataset`, run_pretraining's --input_text_file, NeMo's "data_text" mode):
sentence-per-line documents, blank lines between documents, are streamed in chunks of whole
documents (`read_chunks`), tokenized (`tokenize_chunk`), cut into instances
(`create_instance_spans`, `build_input_ids`) in a Python generator, batched and masked as above.
Each rank reads its own files, or with fewer files than ranks every num_ranks-th chunk. Each
epoch draws new instances from seeds of (seed, rank, epoch, chunk index) and new masks, so
create_pretraining_data's --dupe_factor has no counterpart here.
"""
import dataclasses
import itertools
import random
from collections.abc import Iterator

import numpy as np
import tensorflow as tf

from bert import pretraining_data as lib

# Tags that keep the random streams of masking, instance creation and file order apart.
_MASKING_STREAM, _INSTANCE_STREAM, _FILE_ORDER_STREAM = 0, 1, 2
_UINT64 = (1 << 64) - 1


def _generator(seed: int, *key: int) -> np.random.Generator:
  """A numpy Generator that depends only on (seed, *key); a negative seed is taken mod 2**64."""
  return np.random.default_rng(np.random.SeedSequence([seed & _UINT64, *key]))


# ----------------------------------------------------------------------------------------------
# Dynamic masking.


def mask_numpy_batch(input_ids: np.ndarray, input_mask: np.ndarray, batch_index: int,
                     config: lib.MaskingConfig, seed: int, rank: int) -> lib.MaskedBatch:
  """Masks batch number `batch_index` of a rank with create_pretraining_data's masking.

  Args:
    input_ids: int [B, S] unmasked instances; input_mask: int [B, S], 1 before the padding.
  Returns:
    pretraining_data.MaskedBatch (input_ids [B, S], masked_lm_* [B, P]), a function of
    (inputs, seed, rank, batch_index) only.
  """
  lengths = np.asarray(input_mask).sum(axis=1)
  return lib.mask_batch(input_ids, lengths, config,
                        _generator(seed, _MASKING_STREAM, rank, int(batch_index)))


def mask_dataset(dataset: tf.data.Dataset, config: lib.MaskingConfig, seed: int,
                 rank: int = 0) -> tf.data.Dataset:
  """Masks every batch of `dataset` with a generator keyed by (seed, rank, batch index).

  Args:
    dataset: batches {"input_ids", "input_mask", "segment_ids", "next_sentence_labels"}, int32
      [B, S] ([B, 1] for the labels), unmasked; B may vary (a last partial batch).
  Returns:
    The same batches with "input_ids" masked and "masked_lm_positions", "masked_lm_ids" (int32
    [B, P]) and "masked_lm_weights" (float32 [B, P]) added, P = config.max_predictions_per_seq.
  """
  num_predictions = config.max_predictions_per_seq

  def mask_in_numpy(batch_index, input_ids, input_mask):
    masked = mask_numpy_batch(input_ids, input_mask, batch_index, config, seed, rank)
    return (masked.input_ids, masked.masked_lm_positions, masked.masked_lm_ids,
            masked.masked_lm_weights)

  def mask(batch_index, features):
    outputs = tf.numpy_function(
        mask_in_numpy, [batch_index, features["input_ids"], features["input_mask"]],
        [tf.int32, tf.int32, tf.int32, tf.float32], stateful=False, name="mask_batch")
    masked = dict(features)
    for name, value in zip(("input_ids", *lib.MASKED_LM_FEATURES), outputs):
      width = features["input_ids"].shape[1] if name == "input_ids" else num_predictions
      masked[name] = tf.ensure_shape(value, [features["input_ids"].shape[0], width])
    return masked

  # enumerate() before the map: the index travels with the batch, so whether the map runs for
  # batches that a resumed run skips does not matter.
  return dataset.enumerate().map(mask, num_parallel_calls=tf.data.AUTOTUNE,
                                 deterministic=True).prefetch(tf.data.AUTOTUNE)


# ----------------------------------------------------------------------------------------------
# Instances from raw text.


@dataclasses.dataclass(frozen=True)
class TextSource:
  """What the raw-text stream needs: the files, the tokenizer and create_pretraining_data's
  instance flags (max_seq_length, short_seq_prob, chunk_bytes)."""
  files: tuple[str, ...]
  tokenizer: object  # tokenize_to_id_arrays(lines) -> (ids, counts), e.g. FullTokenizer
  cls_id: int
  sep_id: int
  max_seq_length: int
  short_seq_prob: float = 0.1
  chunk_bytes: int = 1 << 18
  skip_invalid_utf8: bool = False


def _rank_shard(files: tuple[str, ...], rank: int, num_ranks: int):
  """(this rank's files, chunk stride): its files, or every file when there are fewer files
  than ranks, and then every num_ranks-th chunk (stride num_ranks)."""
  if len(files) >= num_ranks:
    return list(files[rank::num_ranks]), 1
  return list(files), num_ranks


def text_instances(source: TextSource, rank: int = 0, num_ranks: int = 1, seed: int = 12345,
                   num_epochs: int | None = None,
                   shuffle_files: bool = True) -> Iterator[dict[str, np.ndarray]]:
  """Streams unmasked instances of this rank's share of the text, one chunk at a time.

  Every epoch re-reads the files (in a new order per epoch with `shuffle_files`) and draws new
  instances; all randomness comes from (seed, rank, epoch, chunk index).
  Yields:
    {"input_ids", "input_mask", "segment_ids": int32 [N, S], "next_sentence_labels": int32
    [N, 1]}, the N instances of one chunk in a random order.
  Raises:
    ValueError when an epoch gives this rank no instance (too little text for the ranks).
  """
  files, stride = _rank_shard(source.files, rank, num_ranks)
  positions = np.arange(source.max_seq_length)[None, :]
  for epoch in itertools.count() if num_epochs is None else range(num_epochs):
    if shuffle_files:
      files = [files[i] for i in _generator(seed, _FILE_ORDER_STREAM, rank, epoch).permutation(
          len(files))]
    produced = 0
    chunks = lib.read_chunks(files, source.chunk_bytes, lib.ReadStats())
    for chunk_index, pieces in enumerate(chunks):
      if chunk_index % stride != rank % stride:
        continue
      chunk = lib.tokenize_chunk(pieces, source.tokenizer, source.skip_invalid_utf8)
      if len(chunk.document_starts) < 2:  # No document with tokens.
        continue
      order_rng = _generator(seed, _INSTANCE_STREAM, rank, epoch, chunk_index)
      # create_instance_spans draws from Python's random.Random, as create_pretraining_data.
      span_rng = random.Random(int(order_rng.integers(1 << 63)))
      spans = lib.span_array(lib.create_instance_spans(chunk, source.max_seq_length,
                                                       source.short_seq_prob, span_rng))
      if not len(spans):
        continue
      spans = spans[order_rng.permutation(len(spans))]
      input_ids, segment_ids, lengths = lib.build_input_ids(
          chunk.token_ids, spans, source.max_seq_length, source.cls_id, source.sep_id)
      produced += len(spans)
      yield {"input_ids": input_ids, "input_mask": (positions < lengths[:, None]).astype(np.int32),
             "segment_ids": segment_ids,
             "next_sentence_labels":
                 spans[:, lib.IS_RANDOM_NEXT:lib.IS_RANDOM_NEXT + 1].astype(np.int32)}
    if not produced:
      raise ValueError(
          f"--input_text_file: rank {rank} of {num_ranks} got no instance from "
          f"{', '.join(files)}" + (f" (every {stride}-th chunk of --chunk_bytes="
                                   f"{source.chunk_bytes})" if stride > 1 else "") +
          "; expected sentence-per-line documents with text (give more text, more files or a "
          "smaller --chunk_bytes)")


def text_dataset(source: TextSource, masking: lib.MaskingConfig, batch_size: int,
                 is_training: bool, rank: int = 0, num_ranks: int = 1, seed: int = 12345,
                 shuffle: bool = True, shuffle_buffer: int = 2048) -> tf.data.Dataset:
  """Masked pre-training batches built from raw text while training.

  Args:
    is_training: stream epochs forever and drop a last partial batch; else one epoch.
    shuffle: with is_training, shuffle file order per epoch and instances across chunks
      through a buffer of `shuffle_buffer` instances (seeded per rank).
  Returns:
    A dataset of Google's pre-training features {name: [batch_size, length]}: input_ids,
    input_mask, segment_ids int32 [B, S]; masked_lm_positions, masked_lm_ids int32 [B, P];
    masked_lm_weights float32 [B, P]; next_sentence_labels int32 [B, 1].
  """
  lengths = lib.feature_lengths(source.max_seq_length, 0, masked=False)
  signature = {name: tf.TensorSpec([None, length], tf.int32)
               for name, length in lengths.items()}
  shuffle = shuffle and is_training
  dataset = tf.data.Dataset.from_generator(
      lambda: text_instances(source, rank, num_ranks, seed, None if is_training else 1,
                             shuffle_files=shuffle),
      output_signature=signature).unbatch()
  if shuffle:
    dataset = dataset.shuffle(shuffle_buffer, seed=seed + rank)
  dataset = dataset.batch(batch_size, drop_remainder=is_training)
  return mask_dataset(dataset, masking, seed, rank)
