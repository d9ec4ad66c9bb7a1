"""Creates BERT pre-training TFRecords from sentence-per-line text: Google's flags and output.

Input: one sentence per line, documents separated by blank lines (and by the end of a file).
Output: `tf.train.Example`s with Google's features (docs/DEVELOPING.md), written round-robin
across the comma-separated `--output_file`s; `--gzip` compresses them (TFRecord GZIP).

With `--no_masking` the records hold unmasked instances for dynamic masking at read time:
`input_ids`, `input_mask`, `segment_ids` (int64[max_seq_length]) and `next_sentence_labels`
(int64[1]), no `masked_lm_*` features; `pretraining_data_lib.mask_batch` masks them.

The work streams: the parent reads the input in chunks of whole documents, `--num_workers`
processes turn chunks into framed records, and the parent writes them in chunk order, so memory
does not grow with the corpus and the bytes written do not depend on the number of workers.
With `--gzip` the parent also compresses (zlib level 6, tens of MB/s of records), which bounds
throughput on many-core machines; plain files are the fast path.
See pretraining_data_lib.py for the algorithm and where it differs from Google's script.

Example (a large corpus, 4 output shards, all cores):
  python create_pretraining_data.py --input_file='corpus/part-*.txt' \
    --output_file=out/train-0.tfrecord,out/train-1.tfrecord,out/train-2.tfrecord,\
out/train-3.tfrecord \
    --vocab_file=vocab.txt --do_lower_case=True --max_seq_length=128 \
    --max_predictions_per_seq=20 --masked_lm_prob=0.15 --dupe_factor=5 --num_workers=0
"""

import collections
import dataclasses
import glob
import gzip
import multiprocessing
import os
import time

from absl import app
from absl import flags
from absl import logging
import numpy as np

import pretraining_data_lib as lib

FLAGS = flags.FLAGS


def define_flags():
  """Google's create_pretraining_data flags, and ours for the streaming work."""
  flags.DEFINE_string("input_file", None,
                      "Input raw text file (or comma-separated list of files, or globs).")
  flags.DEFINE_string("output_file", None,
                      "Output TF example file (or comma-separated list of files), round-robin.")
  flags.DEFINE_string("vocab_file", None, "The vocabulary file that the BERT model was trained on.")
  flags.DEFINE_string("spm_model_file", None,
                      "A sentencepiece model to use instead of --vocab_file's WordPiece.")
  flags.DEFINE_bool("do_lower_case", True,
                    "Whether to lower case the input text. Should be True for uncased models.")
  flags.DEFINE_bool("do_whole_word_mask", False,
                    "Whether to use whole word masking rather than per-WordPiece masking.")
  flags.DEFINE_integer("max_seq_length", 128, "Maximum sequence length.")
  flags.DEFINE_integer("max_predictions_per_seq", 20,
                       "Maximum number of masked LM predictions per sequence.")
  flags.DEFINE_integer("random_seed", 12345, "Random seed for data generation.")
  flags.DEFINE_integer("dupe_factor", 10,
                       "Number of times to duplicate the input data (with different masks).")
  flags.DEFINE_float("masked_lm_prob", 0.15, "Masked LM probability.")
  flags.DEFINE_float("short_seq_prob", 0.1,
                     "Probability of creating sequences which are shorter than the maximum length.")
  flags.DEFINE_integer("num_workers", 0, "Worker processes; 0 means one per CPU core.")
  flags.DEFINE_bool("gzip", False, "Write GZIP-compressed TFRecords.")
  flags.DEFINE_bool("skip_invalid_utf8", False,
                    "Skip (and count) lines that are not valid UTF-8 instead of failing.")
  flags.DEFINE_bool("no_masking", False,
                    "Write unmasked instances (no masked_lm_* features) for dynamic masking.")
  flags.DEFINE_integer("chunk_bytes", 1 << 18,
                       "Text per unit of work; the random next sentence comes from the same chunk. "
                       "Part of the output's definition: changing it changes the records.")
  flags.DEFINE_float("progress_seconds", 10.0, "Seconds between progress lines.")


@dataclasses.dataclass
class Summary:
  """What a run wrote."""
  instances: int = 0
  tokens: int = 0
  masked: int = 0
  random_next: int = 0
  documents: int = 0
  empty_documents: int = 0
  empty_files: int = 0
  skipped_lines: int = 0
  seconds: float = 0.0

  def add(self, result: lib.ChunkResult):
    self.instances += len(result.record_lengths)
    self.tokens += result.tokens
    self.masked += result.masked
    self.random_next += result.random_next
    self.documents += result.documents
    self.empty_documents += result.empty_documents
    self.skipped_lines += result.skipped_lines


def expand_input_files(input_file: str) -> list[str]:
  """Comma-separated paths or globs -> files, in the order given (each glob sorted).

  Raises:
    ValueError naming a pattern that matches no file.
  """
  files = []
  for pattern in filter(None, (p.strip() for p in input_file.split(","))):
    matches = sorted(glob.glob(pattern))
    if not matches:
      raise ValueError(f"--input_file: {pattern!r} matches no file.")
    files.extend(matches)
  return files


# Set in the parent before the worker processes fork, so each worker inherits them.
_WORKER_STATE = {}


def _process_in_worker(chunk_index, pieces):
  return lib.process_chunk(chunk_index, pieces, _WORKER_STATE["tokenizer"],
                           _WORKER_STATE["config"])


class RoundRobinWriter:
  """Writes framed records round-robin across files, like Google's writer_index loop."""

  def __init__(self, output_files: list[str], use_gzip: bool):
    for path in output_files:
      if os.path.dirname(path):
        os.makedirs(os.path.dirname(path), exist_ok=True)
    self._raw_files = [open(p, "wb") for p in output_files]
    self._files = ([self._gzip(f) for f in self._raw_files] if use_gzip else self._raw_files)
    self._next = 0  # Index of the file that gets the next record.

  @staticmethod
  def _gzip(raw_file):
    # No file name and mtime 0 in the header, so equal runs give equal bytes. Level 6 is
    # zlib's default, which TFRecordOptions("GZIP") also uses.
    return gzip.GzipFile(filename="", mode="wb", compresslevel=6, fileobj=raw_file, mtime=0)

  def write(self, records: bytes, record_lengths: np.ndarray):
    num_files = len(self._files)
    if num_files == 1:
      self._files[0].write(records)
    else:
      ends = np.cumsum(record_lengths).tolist()
      starts = [0] + ends[:-1]
      view = memoryview(records)
      for offset in range(num_files):
        file_index = (self._next + offset) % num_files
        self._files[file_index].write(b"".join(
            view[s:e] for s, e in zip(starts[offset::num_files], ends[offset::num_files])))
    self._next = (self._next + len(record_lengths)) % num_files

  def close(self):
    for f in self._files:
      f.close()
    for f in self._raw_files:  # GzipFile leaves a file object it was given open.
      f.close()


def _chunk_bytes_of(pieces) -> int:
  return sum(len(p.data) for p in pieces)


def create_pretraining_data(input_files: list[str], output_files: list[str], tokenizer,
                            config: lib.InstanceConfig, num_workers: int = 1,
                            use_gzip: bool = False, chunk_bytes: int = 1 << 18,
                            progress_seconds: float = 10.0) -> Summary:
  """Streams `input_files` into TFRecords in `output_files`; returns what was written."""
  start_time = time.time()
  total_bytes = sum(os.path.getsize(p) for p in input_files)
  compressed_input = any(p.endswith(".gz") for p in input_files)
  read_stats = lib.ReadStats()
  summary = Summary()
  writer = RoundRobinWriter(output_files, use_gzip)
  chunks = enumerate(lib.read_chunks(input_files, chunk_bytes, read_stats))
  done_bytes, last_log = 0, start_time

  def consume(result, pieces_bytes):
    nonlocal done_bytes, last_log
    writer.write(result.records, result.record_lengths)
    summary.add(result)
    done_bytes += pieces_bytes
    now = time.time()
    if now - last_log >= progress_seconds:
      last_log = now
      _log_progress(summary, now - start_time, done_bytes, total_bytes, compressed_input)

  try:
    if num_workers <= 1:
      for index, pieces in chunks:
        consume(lib.process_chunk(index, pieces, tokenizer, config), _chunk_bytes_of(pieces))
    else:
      _WORKER_STATE.update(tokenizer=tokenizer, config=config)
      context = multiprocessing.get_context("fork")
      with context.Pool(num_workers) as pool:
        pending = collections.deque()  # Bounded, so memory does not grow with the corpus.
        for index, pieces in chunks:
          pending.append((pool.apply_async(_process_in_worker, (index, pieces)),
                          _chunk_bytes_of(pieces)))
          while len(pending) >= 2 * num_workers:
            future, size = pending.popleft()
            consume(future.get(), size)
        while pending:
          future, size = pending.popleft()
          consume(future.get(), size)
  finally:
    writer.close()
  summary.empty_files = read_stats.empty_files
  summary.seconds = time.time() - start_time
  return summary


def _log_progress(summary: Summary, elapsed: float, done_bytes: int, total_bytes: int,
                  compressed_input: bool):
  elapsed = max(elapsed, 1e-9)
  eta = "?"
  if not compressed_input and done_bytes:
    eta = f"{elapsed * max(total_bytes - done_bytes, 0) / done_bytes:.0f} s"
  logging.info("%d documents (%.0f/s), %d instances (%.0f/s), %.1f%% of input, ETA %s",
               summary.documents, summary.documents / elapsed, summary.instances,
               summary.instances / elapsed,
               100.0 * done_bytes / max(total_bytes, 1) if not compressed_input else float("nan"),
               eta)


def log_summary(summary: Summary, output_files: list[str]):
  instances = max(summary.instances, 1)
  logging.info(
      "Wrote %d instances to %d file(s) in %.1f s (%.0f instances/s): %d tokens "
      "(%.1f per instance), masked ratio %.4f (%.2f per instance), NSP random-next ratio %.4f; "
      "%d documents, %d empty documents, %d empty files, %d lines of invalid UTF-8 skipped.",
      summary.instances, len(output_files), summary.seconds,
      summary.instances / max(summary.seconds, 1e-9), summary.tokens,
      summary.tokens / instances, summary.masked / max(summary.tokens, 1),
      summary.masked / instances, summary.random_next / instances, summary.documents,
      summary.empty_documents, summary.empty_files, summary.skipped_lines)


def main(_):
  input_files = expand_input_files(FLAGS.input_file)
  output_files = [p.strip() for p in FLAGS.output_file.split(",") if p.strip()]
  tokenizer, vocab, vocab_source = lib.load_tokenizer_and_vocab(
      FLAGS.vocab_file, FLAGS.spm_model_file, FLAGS.do_lower_case)
  masking = lib.masking_config(vocab, vocab_source, FLAGS.masked_lm_prob,
                               FLAGS.max_predictions_per_seq, FLAGS.do_whole_word_mask,
                               is_sentencepiece=bool(FLAGS.spm_model_file),
                               max_seq_length=FLAGS.max_seq_length)
  config = lib.InstanceConfig(
      max_seq_length=FLAGS.max_seq_length, short_seq_prob=FLAGS.short_seq_prob,
      dupe_factor=FLAGS.dupe_factor, random_seed=FLAGS.random_seed, masking=masking,
      apply_masking=not FLAGS.no_masking, skip_invalid_utf8=FLAGS.skip_invalid_utf8)
  num_workers = FLAGS.num_workers or os.cpu_count() or 1
  logging.info("*** Reading from %d input file(s) with %d worker(s) ***", len(input_files),
               num_workers)
  summary = create_pretraining_data(input_files, output_files, tokenizer, config, num_workers,
                                    FLAGS.gzip, FLAGS.chunk_bytes, FLAGS.progress_seconds)
  log_summary(summary, output_files)


if __name__ == "__main__":
  define_flags()
  flags.mark_flag_as_required("input_file")
  flags.mark_flag_as_required("output_file")
  app.run(main)
