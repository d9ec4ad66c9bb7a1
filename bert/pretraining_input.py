"""tf.data input for pre-training: TFRecords of Google's features, plain or gzip.

Files are sharded by Horovod rank (each rank reads its own files; with fewer files than
ranks, each rank keeps every size-th record). Reads are interleaved across files and parsed
in parallel; training input is shuffled with a seed per rank, repeated, batched with
drop_remainder and prefetched. The order is deterministic for a given seed, so a resumed run
can skip exactly the batches it already consumed.

Files written by `create_pretraining_data.py --no_masking` hold unmasked instances (no
`masked_lm_*` features); read them with `masked=False` and mask the batches with
pretraining_sources.mask_dataset (run_pretraining's --dynamic_masking).
"""

import re

import tensorflow as tf

from bert import pretraining_data

_GZIP_MAGIC = b"\x1f\x8b"


def compression_of(path: str) -> str:
  """"GZIP" for gzip-compressed TFRecord files (by magic bytes), else ""."""
  with tf.io.gfile.GFile(path, "rb") as f:
    return "GZIP" if f.read(2) == _GZIP_MAGIC else ""


def pretraining_features(max_seq_length: int, max_predictions_per_seq: int,
                         masked: bool = True) -> dict:
  """tf.io parsing spec of pretraining_data.FEATURES; no masked_lm_* when `masked` is False."""
  lengths = pretraining_data.feature_lengths(max_seq_length, max_predictions_per_seq, masked)
  return {name: tf.io.FixedLenFeature([length], tf.as_dtype(pretraining_data.FEATURES[name][0]))
          for name, length in lengths.items()}


def check_pretraining_files(files: list[str], max_seq_length: int, max_predictions_per_seq: int,
                            vocab_size: int, records_to_check: int = 100,
                            masked: bool = True) -> None:
  """Fails fast, naming the file and record, when the data does not fit the flags or config.

  Reads the first records of every file: they must be masked instances (`masked`) or unmasked
  ones (create_pretraining_data.py --no_masking, for --dynamic_masking); feature lengths must
  equal --max_seq_length and --max_predictions_per_seq, and every id must be below the
  config's vocab_size (a larger id reads out of the embedding table: NaNs on GPU, as Google's
  README warns).
  """
  expected = pretraining_data.feature_lengths(max_seq_length, max_predictions_per_seq, masked)
  for path in files:
    records = tf.data.TFRecordDataset(path, compression_type=compression_of(path))
    for index, record in enumerate(records.take(records_to_check)):
      example = tf.train.Example.FromString(record.numpy())
      feature = example.features.feature
      _check_masking_kind(path, index, feature, masked)
      for name, length in expected.items():
        if name not in feature:
          raise ValueError(f"{path}: record {index} has no feature {name!r}; expected Google's "
                           f"pre-training features {sorted(expected)}")
        values = feature[name].int64_list.value or feature[name].float_list.value
        if len(values) != length:
          flag = ("--max_predictions_per_seq" if name.startswith("masked_lm")
                  else "--max_seq_length" if name != "next_sentence_labels" else None)
          raise ValueError(f"{path}: record {index}: {name} has length {len(values)}, expected "
                           f"{length}" + (f" ({flag}={length}); the data was written with "
                                          f"{flag}={len(values)}" if flag else ""))
      largest = max(max(feature[name].int64_list.value)
                    for name in ("input_ids", "masked_lm_ids") if name in expected)
      if largest >= vocab_size:
        raise ValueError(f"{path}: record {index} holds token id {largest}, but the model's "
                         f"vocab_size is {vocab_size}: the data was made with a larger "
                         "vocabulary than bert_config.json declares")


def _check_masking_kind(path, index, feature, masked):
  """A record must be masked or unmasked as the run expects (--dynamic_masking or not)."""
  present = [name for name in pretraining_data.MASKED_LM_FEATURES if name in feature]
  if masked and not present:
    raise ValueError(
        f"{path}: record {index} is an unmasked instance (no masked_lm_* features, as "
        "create_pretraining_data.py --no_masking writes): pass --dynamic_masking (with "
        "--vocab_file) to mask it while training, or make the data without --no_masking")
  if not masked and present:
    raise ValueError(
        f"{path}: record {index} is already masked (it has {', '.join(present)}): "
        "--dynamic_masking reads unmasked instances; make them with "
        "create_pretraining_data.py --no_masking, or train without --dynamic_masking")


def _parse_fn(max_seq_length, max_predictions_per_seq, vocab_size, masked):
  spec = pretraining_features(max_seq_length, max_predictions_per_seq, masked)

  def parse(serialized):
    """serialized: [B] strings -> {name: [B, length]} int32 / float32."""
    parsed = tf.io.parse_example(serialized, spec)
    tf.debugging.assert_less(
        tf.reduce_max(parsed["input_ids"]), tf.constant(vocab_size, tf.int64),
        message=f"a token id in the input is >= the model's vocab_size {vocab_size}")
    return {k: tf.cast(v, tf.int32) if v.dtype == tf.int64 else v for k, v in parsed.items()}
  return parse


def pretraining_dataset(files: list[str], batch_size: int, max_seq_length: int,
                        max_predictions_per_seq: int, vocab_size: int, is_training: bool,
                        rank: int = 0, num_ranks: int = 1, seed: int = 12345,
                        shuffle: bool = True, cycle_length: int = 4,
                        shuffle_buffer: int = 10000, masked: bool = True) -> tf.data.Dataset:
  """Batches of pre-training features for one rank.

  Args:
    files: TFRecord paths (plain or gzip, detected per file).
    batch_size: sequences per batch on this rank.
    is_training: repeat forever and (with `shuffle`) shuffle files and records.
    rank, num_ranks: this rank's shard of the files (or of the records, with fewer files).
    shuffle: False reads files in order, `batch_size` consecutive records from each in turn.
    masked: False reads unmasked instances (create_pretraining_data.py --no_masking): no
      masked_lm_* features; pretraining_sources.mask_dataset masks them.
  Returns:
    A dataset of {feature: [batch_size, length]} (int32, masked_lm_weights float32).
  """
  files = list(files)
  record_sharding = len(files) < num_ranks
  if not record_sharding:
    files = files[rank::num_ranks]
  compressions = [compression_of(f) for f in files]
  dataset = tf.data.Dataset.from_tensor_slices((files, compressions))
  if is_training:
    if shuffle:
      dataset = dataset.shuffle(len(files), seed=seed + rank, reshuffle_each_iteration=True)
    dataset = dataset.repeat()
  dataset = dataset.interleave(
      lambda path, compression: tf.data.TFRecordDataset(path, compression_type=compression),
      cycle_length=min(cycle_length, len(files)), block_length=None if shuffle else batch_size,
      num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
  if record_sharding:
    dataset = dataset.shard(num_ranks, rank)
  if is_training and shuffle:
    dataset = dataset.shuffle(shuffle_buffer, seed=seed + rank)
  dataset = dataset.batch(batch_size, drop_remainder=is_training)
  dataset = dataset.map(_parse_fn(max_seq_length, max_predictions_per_seq, vocab_size, masked),
                        num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
  return dataset.prefetch(tf.data.AUTOTUNE)


def locate_read_error(files: list[str], error: tf.errors.OpError) -> str:
  """Names the file behind a read error of pretraining_dataset ("truncated record at N" says
  no file): re-reads this rank's files, the likeliest first, until one fails the same way.

  Returns "<path>: <what failed> (record offset N)", or the error itself when no file fails.
  """
  match = re.search(r"(corrupted|truncated) record at (\d+)", error.message)
  offset = int(match.group(2)) if match else None

  def likely_first(path):  # A plain file shorter than the offset cannot hold it.
    plain = compression_of(path) == ""
    return plain and offset is not None and tf.io.gfile.stat(path).length < offset
  for path in sorted(files, key=likely_first):
    try:
      for _ in tf.data.TFRecordDataset(path, compression_type=compression_of(path)):
        pass
    except tf.errors.OpError as file_error:
      found = re.search(r"(corrupted|truncated) record at (\d+)", file_error.message)
      what = (f"{found.group(1)} record at byte offset {found.group(2)}" if found
              else file_error.message.strip())
      return f"{path}: {what} (a damaged or partly copied TFRecord file)"
  return error.message.strip()

