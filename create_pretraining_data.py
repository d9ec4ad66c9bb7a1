"""Creates BERT pre-training TFRecords from sentence-per-line text: Google's flags and output.

Input: one sentence per line, documents separated by blank lines (and by the end of a file).
Output: `tf.train.Example`s with Google's features (docs/DEVELOPING.md), written round-robin
across the comma-separated `--output_file`s; `--gzip` compresses them (TFRecord GZIP).

With `--no_masking` the records hold unmasked instances for dynamic masking at read time:
`input_ids`, `input_mask`, `segment_ids` (int64[max_seq_length]) and `next_sentence_labels`
(int64[1]), no `masked_lm_*` features; `pretraining_data.mask_batch` masks them.

The work streams: the parent reads the input in chunks of whole documents, `--num_workers`
processes turn chunks into framed records, already split per output file and, with `--gzip`,
compressed (zlib level 6, in parallel), and hand them back through spool files in a hidden
folder next to the output; the parent appends them in chunk order, so memory does not grow
with the corpus and the bytes written do not depend on the number of workers.
See bert/pretraining_data.py for the algorithm and where it differs from Google's script.

Example (a large corpus, 4 output shards, all cores):
  python create_pretraining_data.py --input_file='corpus/part-*.txt' \
    --output_file=out/train-0.tfrecord,out/train-1.tfrecord,out/train-2.tfrecord,\
out/train-3.tfrecord \
    --vocab_file=vocab.txt --do_lower_case=True --max_seq_length=128 \
    --max_predictions_per_seq=20 --masked_lm_prob=0.15 --dupe_factor=5 --num_workers=0
"""

import collections
import dataclasses
import errno
import multiprocessing
import os
import shutil
import struct
import tempfile
import time
import zlib

import numpy as np
from absl import app
from absl import flags
from absl import logging

from bert import files
from bert import pretraining_data as lib

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


# Set in the parent before the worker processes fork, so each worker inherits them.
_WORKER_STATE = {}


def _process_in_worker(chunk_index, pieces):
  """A worker's whole job. The records go back through a spool file in the page cache, which
  the parent appends in the kernel (copy_file_range): through the pool's pipe they cost the
  parent ~4x more CPU, which the workers need on a small machine."""
  state = dict(_WORKER_STATE)
  spool_dir = state.pop("spool_dir")
  result, parts, _ = _process_and_pack(chunk_index, pieces, **state)
  spool_path = os.path.join(spool_dir, f"chunk-{chunk_index}")
  with open(spool_path, "wb") as spool:
    for part in parts:
      spool.write(part.data)
  return result, [dataclasses.replace(part, data=None) for part in parts], spool_path


def _process_and_pack(chunk_index, pieces, tokenizer, config, num_files, use_gzip):
  """A chunk's records, split per output file and packed: returns the ChunkResult without its
  records, the OutputParts, and None (no spool file)."""
  result = lib.process_chunk(chunk_index, pieces, tokenizer, config)
  parts = pack_output_parts(result.records, result.record_lengths, num_files, use_gzip)
  return dataclasses.replace(result, records=b""), parts, None


# ----------------------------------------------------------------------------------------------
# Output: records split round-robin, gzip members assembled from independently compressed parts.


@dataclasses.dataclass
class OutputPart:
  """A chunk's records for one output file: `data` as written (with --gzip, raw deflate blocks
  that end byte-aligned, ready to be spliced into one gzip member; None once in a spool file),
  its `length`, and the CRC-32 and size of the uncompressed records (for the gzip trailer)."""
  data: bytes | None
  length: int
  crc: int
  size: int


def pack_output_parts(records: bytes, record_lengths: np.ndarray, num_files: int,
                      use_gzip: bool) -> list[OutputPart]:
  """Splits a chunk's records round-robin (part k: records k, k + num_files, ...) and with
  `use_gzip` compresses each part on its own, so that workers compress in parallel."""
  if num_files == 1:
    parts = [records]
  else:
    ends = np.cumsum(record_lengths).tolist()
    starts = [0] + ends[:-1]
    view = memoryview(records)
    parts = [b"".join(view[s:e] for s, e in zip(starts[k::num_files], ends[k::num_files]))
             for k in range(num_files)]
  if not use_gzip:
    return [OutputPart(part, len(part), 0, len(part)) for part in parts]
  packed = []
  for part in parts:
    # Raw deflate (no header) ending in a sync flush: byte-aligned, not final, so parts
    # concatenate into one deflate stream.
    compressor = zlib.compressobj(6, zlib.DEFLATED, -15)
    data = compressor.compress(part) + compressor.flush(zlib.Z_SYNC_FLUSH) if part else b""
    packed.append(OutputPart(data, len(data), zlib.crc32(part), len(part)))
  return packed


_CRC32_POLYNOMIAL = 0xEDB88320  # Reflected, as zlib.


def _multiply_mod_crc32(a: int, b: int) -> int:
  """a * b modulo the CRC-32 polynomial, both reflected 32-bit polynomials (a != 0)."""
  product, bit = 0, 1 << 31
  while True:
    if a & bit:
      product ^= b
      if not a & (bit - 1):
        return product
    bit >>= 1
    b = (b >> 1) ^ _CRC32_POLYNOMIAL if b & 1 else b >> 1


def crc32_combine(crc_a: int, crc_b: int, length_b: int) -> int:
  """CRC-32 of A + B from crc32(A), crc32(B) and len(B) (zlib's crc32_combine): crc_a is
  carried over len(B) zero bytes, i.e. multiplied by x^(8 len(B)), then crc_b added."""
  shift, square = 1 << 31, 1 << 23  # x^0; x^8, one byte (bit 31 - k holds x^k).
  while length_b:
    if length_b & 1:
      shift = _multiply_mod_crc32(square, shift)
    square = _multiply_mod_crc32(square, square)
    length_b >>= 1
  return _multiply_mod_crc32(shift, crc_a) ^ crc_b


# A gzip member header without name or time (equal runs give equal bytes), and the final empty
# deflate block that ends the concatenated parts.
_GZIP_HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"
_FINAL_DEFLATE_BLOCK = b"\x03\x00"


class RoundRobinWriter:
  """Writes chunks' OutputParts round-robin across files, like Google's writer_index loop; with
  gzip, each file is one gzip member whose trailer `finish` writes."""

  def __init__(self, output_files: list[str], use_gzip: bool):
    for path in output_files:
      if os.path.dirname(path):
        os.makedirs(os.path.dirname(path), exist_ok=True)
    # Unbuffered: spooled parts are appended at the file descriptor.
    self._files = [open(p, "wb", buffering=0) for p in output_files]  # noqa: SIM115 (close())
    self._use_gzip = use_gzip
    self._crcs = [0] * len(self._files)
    self._sizes = [0] * len(self._files)
    self._next = 0  # Index of the file that gets the chunk's first record.
    if use_gzip:
      for f in self._files:
        f.write(_GZIP_HEADER)

  def write(self, parts: list[OutputPart], num_records: int, spool_path: str | None = None):
    """Writes a chunk's parts: their `data`, or with `spool_path` the file holding the parts'
    bytes back to back (deleted once copied)."""
    num_files = len(self._files)
    spool = os.open(spool_path, os.O_RDONLY) if spool_path else None
    spool_offset = 0
    for offset, part in enumerate(parts):
      index = (self._next + offset) % num_files
      if spool is None:
        self._files[index].write(part.data)
      else:
        _append(spool, spool_offset, part.length, self._files[index].fileno())
        spool_offset += part.length
      if self._use_gzip:
        self._crcs[index] = crc32_combine(self._crcs[index], part.crc, part.size)
        self._sizes[index] += part.size
    self._next = (self._next + num_records) % num_files
    if spool is not None:
      os.close(spool)
      os.unlink(spool_path)

  def finish(self):
    """Ends the gzip members. Not called after an error, so a partial file stays invalid."""
    if self._use_gzip:
      for f, crc, size in zip(self._files, self._crcs, self._sizes):
        f.write(_FINAL_DEFLATE_BLOCK + struct.pack("<II", crc, size & 0xFFFFFFFF))

  def close(self):
    for f in self._files:
      f.close()


def _append(source: int, offset: int, length: int, destination: int):
  """Appends bytes [offset, offset + length) of file descriptor `source` to `destination`,
  inside the kernel where the file systems allow it."""
  end = offset + length
  try:
    while offset < end:
      copied = os.copy_file_range(source, destination, end - offset, offset)
      if copied == 0:
        raise EOFError(f"spool file ended {end - offset} bytes early")
      offset += copied
  except OSError as error:
    if error.errno not in (errno.EXDEV, errno.ENOSYS, errno.EOPNOTSUPP, errno.EINVAL):
      raise
    while offset < end:  # Through user space: a copy per 1 MiB.
      data = os.pread(source, min(end - offset, 1 << 20), offset)
      if not data:
        raise EOFError(f"spool file ended {end - offset} bytes early") from error
      os.write(destination, data)
      offset += len(data)


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
  done_bytes, last_log, spool_dir = 0, start_time, None

  def consume(packed, pieces_bytes):
    nonlocal done_bytes, last_log
    result, parts, spool_path = packed
    writer.write(parts, len(result.record_lengths), spool_path)
    summary.add(result)
    done_bytes += pieces_bytes
    now = time.time()
    if now - last_log >= progress_seconds:
      last_log = now
      _log_progress(summary, now - start_time, done_bytes, total_bytes, compressed_input)

  try:
    work = dict(tokenizer=tokenizer, config=config, num_files=len(output_files),
                use_gzip=use_gzip)
    if num_workers <= 1:
      for index, pieces in chunks:
        consume(_process_and_pack(index, pieces, **work), _chunk_bytes_of(pieces))
    else:
      # Next to the first output: the same file system, so appending stays in the kernel.
      spool_dir = tempfile.mkdtemp(prefix=".create_pretraining_data-spool-",
                                   dir=os.path.dirname(os.path.abspath(output_files[0])))
      _WORKER_STATE.update(work, spool_dir=spool_dir)
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
    writer.finish()
  finally:
    writer.close()
    if spool_dir:
      shutil.rmtree(spool_dir, ignore_errors=True)
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
  input_files = files.expand_input_files(FLAGS.input_file)
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
