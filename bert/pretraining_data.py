"""BERT pre-training instances from sentence-per-line text: Google's algorithm, vectorised.

The algorithm is google-research/bert's create_pretraining_data.py; the implementation is built
for throughput and streaming:

* Text arrives in *chunks*: runs of whole documents of about `chunk_bytes` (see `read_chunks`).
  Everything random about a chunk comes from seeds derived from (random_seed, chunk index), so
  the output does not depend on how many processes share the work.
* A chunk is tokenized once (tokenize_to_id_arrays, C) into one flat id array; every instance is
  then five integers (`create_instance_spans`): where segment A and segment B start and end in that
  array, and whether B is a random next. Truncation is decided in closed form: which side loses
  each token depends only on the lengths, and the number taken from the front of a side is
  Binomial(removed, 1/2), exactly the distribution of Google's token-by-token coin flips.
* Layout, masking and serialisation run on whole batches in C (native/instances.c,
  native/tfrecord.c): `build_input_ids`, `mask_batch`, `encode_tfrecords`.

Deliberate differences from Google's script, none of which changes the distributions
(tests/test_create_pretraining_data.py compares them with bench/reference_pretraining_data.py):
* Google draws the random next document from the whole corpus; here it comes from the same
  chunk (at least two documents; by default ~256 KB of text, tens of documents).
* Google shuffles all instances of all dupes; here the instances of a chunk (all its dupes) are
  shuffled together. Training input pipelines shuffle again across files and records.
* The end of an input file also ends a document (Google lets a document run on into the next
  file when the file does not end with a blank line).
"""

import bisect
import dataclasses
import gzip
import random
from collections.abc import Iterator
from typing import NamedTuple

import numpy as np
from absl import logging

import tokenization

try:
  import _instances  # native/instances.c and native/tfrecord.c, built by scripts/setup.sh.
  import _tfrecord
except ImportError as error:
  raise ImportError(f"{error}: the C extensions of native/ are not built; run "
                    "scripts/setup.sh (or `pip install --no-build-isolation ./native`).") from error

# Of tokenization.SPECIAL_TOKENS, those that pre-training data and masking need.
MASKING_TOKENS = ("[CLS]", "[SEP]", "[MASK]")

# ----------------------------------------------------------------------------------------------
# Google's pre-training features: the one schema the writer and every reader use.

# name -> (dtype on disk, length: "seq" = max_seq_length, "predictions" =
# max_predictions_per_seq, or a number). In memory, int64 features are int32.
FEATURES = {
    "input_ids": ("int64", "seq"),
    "input_mask": ("int64", "seq"),
    "segment_ids": ("int64", "seq"),
    "masked_lm_positions": ("int64", "predictions"),
    "masked_lm_ids": ("int64", "predictions"),
    "masked_lm_weights": ("float32", "predictions"),
    "next_sentence_labels": ("int64", 1),
}
MASKED_LM_FEATURES = ("masked_lm_positions", "masked_lm_ids", "masked_lm_weights")


def feature_lengths(max_seq_length: int, max_predictions_per_seq: int,
                    masked: bool = True) -> dict[str, int]:
  """{name: length} of the features of masked (or unmasked: no masked_lm_*) instances."""
  sizes = {"seq": max_seq_length, "predictions": max_predictions_per_seq}
  return {name: sizes.get(length, length) for name, (_, length) in FEATURES.items()
          if masked or name not in MASKED_LM_FEATURES}


class InstanceSpan(NamedTuple):
  """One instance as offsets into its chunk's token ids: segment A is
  token_ids[start_a:end_a], B is token_ids[start_b:end_b]. Arrays of spans are int64
  [N, 5] in this field order."""
  start_a: int
  end_a: int
  start_b: int
  end_b: int
  is_random_next: int


IS_RANDOM_NEXT = InstanceSpan._fields.index("is_random_next")  # Its column in span arrays.


def span_array(spans: list[InstanceSpan]) -> np.ndarray:
  """int64 [len(spans), 5] (also for no spans)."""
  return np.asarray(spans, dtype=np.int64).reshape(-1, len(InstanceSpan._fields))


# ----------------------------------------------------------------------------------------------
# Reading: files -> chunks of whole documents.


@dataclasses.dataclass
class TextPiece:
  """Consecutive raw lines of one input file."""
  path: str
  byte_offset: int  # Of `data` in the file (decompressed bytes for .gz files).
  line_number: int  # 1-based line number of the first line of `data`.
  data: bytes


@dataclasses.dataclass
class ReadStats:
  files: int = 0
  empty_files: int = 0
  bytes_read: int = 0


def _open_binary(path: str):
  return gzip.open(path, "rb") if path.endswith(".gz") else open(path, "rb")


def read_chunks(input_files: list[str], chunk_bytes: int,
                stats: ReadStats) -> Iterator[list[TextPiece]]:
  """Yields chunks: lists of `TextPiece`s holding whole documents, >= 2 documents when possible.

  Documents are separated by blank lines and by the end of a file. A chunk closes at the first
  document boundary after it holds `chunk_bytes` bytes and two documents; the chunking depends
  only on the input, never on the number of workers.
  """
  pieces, chunk_size, chunk_documents = [], 0, 0
  for path in input_files:
    stats.files += 1
    lines, piece_offset, piece_line, offset, has_text, in_document = [], 0, 1, 0, False, False
    with _open_binary(path) as reader:
      for line_number, line in enumerate(reader, start=1):
        lines.append(line)
        offset += len(line)
        if line.strip():
          has_text = in_document = True
          continue
        if in_document:
          chunk_documents += 1
          in_document = False
        if chunk_size + offset - piece_offset >= chunk_bytes and chunk_documents >= 2:
          pieces.append(TextPiece(path, piece_offset, piece_line, b"".join(lines)))
          stats.bytes_read += offset - piece_offset
          yield pieces
          pieces, chunk_size, chunk_documents = [], 0, 0
          lines, piece_offset, piece_line = [], offset, line_number + 1
    if in_document:
      chunk_documents += 1
    if lines:
      pieces.append(TextPiece(path, piece_offset, piece_line, b"".join(lines)))
      chunk_size += offset - piece_offset
      stats.bytes_read += offset - piece_offset
    if not has_text:
      stats.empty_files += 1
  if pieces:
    yield pieces


@dataclasses.dataclass
class TokenizedChunk:
  """A chunk's documents as one flat id array.

  token_ids: int32 [num_tokens]. sentence_starts: list of num_sentences + 1 offsets into it.
  document_starts: list of num_documents + 1 offsets into the sentences.
  """
  token_ids: np.ndarray
  sentence_starts: list[int]
  document_starts: list[int]
  empty_documents: int
  skipped_lines: int


def decode_piece(piece: TextPiece, skip_invalid_utf8: bool) -> tuple[list[str], int]:
  """Returns (lines, number of lines skipped for invalid UTF-8).

  Raises:
    ValueError naming the file, line and byte offset of invalid UTF-8 unless skipping.
  """
  try:
    # Lines end at "\n" only, as Google's readline (str.splitlines also splits at \x0c, \u2028...).
    return piece.data.decode("utf-8").split("\n"), 0
  except UnicodeDecodeError as error:
    if not skip_invalid_utf8:
      line = piece.line_number + piece.data.count(b"\n", 0, error.start)
      raise ValueError(
          f"{piece.path}:{line}: invalid UTF-8 at byte offset {piece.byte_offset + error.start} "
          f"({error.reason}); expected UTF-8 text. Pass --skip_invalid_utf8 to skip such lines."
      ) from None
  lines, skipped = [], 0
  for raw in piece.data.split(b"\n"):
    try:
      lines.append(raw.decode("utf-8"))
    except UnicodeDecodeError:
      skipped += 1
  return lines, skipped


def tokenize_chunk(pieces: list[TextPiece], tokenizer,
                   skip_invalid_utf8: bool) -> TokenizedChunk:
  """Decodes and tokenizes a chunk; lines without tokens and documents without lines vanish."""
  all_lines, skipped = [], 0
  for piece in pieces:
    lines, piece_skipped = decode_piece(piece, skip_invalid_utf8)
    all_lines.extend(lines)
    all_lines.append("")  # The end of a file ends a document.
    skipped += piece_skipped
  stripped = [line.strip() for line in all_lines]
  ids, counts = tokenizer.tokenize_to_id_arrays([line for line in stripped if line])
  counts = iter(counts.tolist())
  sentence_starts, document_starts = [0], [0]
  empty_documents, in_document, document_has_tokens, position = 0, False, False, 0
  for line in stripped:
    if not line:
      if in_document and not document_has_tokens:
        empty_documents += 1
      if document_has_tokens:
        document_starts.append(len(sentence_starts) - 1)
      in_document = document_has_tokens = False
      continue
    in_document = True
    count = next(counts)
    if count:
      position += count
      sentence_starts.append(position)
      document_has_tokens = True
  return TokenizedChunk(ids, sentence_starts, document_starts, empty_documents, skipped)


# ----------------------------------------------------------------------------------------------
# Instances: documents -> (segment A, segment B, is_random_next) spans.


def _truncate_pair(start_a, end_a, start_b, end_b, max_num_tokens, rng: random.Random):
  """Google's truncate_seq_pair in closed form; returns the new (start_a, end_a, start_b, end_b).

  Google removes one token at a time from the longer side (B on ties), from the front or the
  back with probability 1/2. Which side loses how many depends only on the lengths; the number
  taken from the front is Binomial(n, 1/2), drawn here as the popcount of n random bits.
  """
  length_a, length_b = end_a - start_a, end_b - start_b
  excess = length_a + length_b - max_num_tokens
  if excess <= 0:
    return start_a, end_a, start_b, end_b
  unequal = min(excess, abs(length_a - length_b))
  remove_a, remove_b = (unequal, 0) if length_a > length_b else (0, unequal)
  remove_b += (excess - unequal + 1) // 2
  remove_a += (excess - unequal) // 2
  front_a = rng.getrandbits(remove_a).bit_count() if remove_a else 0
  front_b = rng.getrandbits(remove_b).bit_count() if remove_b else 0
  return (start_a + front_a, end_a - (remove_a - front_a),
          start_b + front_b, end_b - (remove_b - front_b))


def create_instance_spans(chunk: TokenizedChunk, max_seq_length: int, short_seq_prob: float,
                          rng: random.Random) -> list[InstanceSpan]:
  """One pass of Google's create_instances_from_document over every document of the chunk.

  Google's rng.randint(a, b) is drawn as a + floor(rng.random() * (b - a + 1)), the same
  distribution up to 2**-53 and several times cheaper.

  Returns:
    an InstanceSpan per instance, offsets into chunk.token_ids.
  """
  max_num_tokens = max_seq_length - 3
  starts = chunk.sentence_starts
  documents = chunk.document_starts
  num_documents = len(documents) - 1
  spans = []
  for document in range(num_documents):
    first, last = documents[document], documents[document + 1]  # Sentence index range.
    # As in Google's code, the target is drawn once per document, not once per instance.
    target_length = max_num_tokens
    if rng.random() < short_seq_prob:
      target_length = 2 + int(rng.random() * (max_num_tokens - 1))
    group_first = first
    while group_first < last:
      # Google's "current_chunk": a group of sentences that grows until it reaches the target
      # length or the document ends.
      end_sentence = bisect.bisect_left(starts, starts[group_first] + target_length,
                                        group_first + 1, last)
      num_segments = end_sentence - group_first
      a_end_sentence = group_first + 1
      if num_segments >= 2:
        a_end_sentence += int(rng.random() * (num_segments - 1))
      start_a, end_a = starts[group_first], starts[a_end_sentence]
      if num_segments == 1 or rng.random() < 0.5:
        is_random_next = 1
        target_b_length = target_length - (end_a - start_a)
        for _ in range(10):
          random_document = int(rng.random() * num_documents)
          if random_document != document:
            break
        random_first = documents[random_document]
        random_last = documents[random_document + 1]
        random_start = random_first + int(rng.random() * (random_last - random_first))
        start_b = starts[random_start]
        # Whole sentences until B reaches its target (at least one sentence).
        end_b = starts[bisect.bisect_left(starts, start_b + target_b_length, random_start + 1,
                                          random_last)]
        # The sentences not used for A go back to start the next group.
        next_group_first = a_end_sentence
      else:
        is_random_next = 0
        start_b, end_b = end_a, starts[end_sentence]
        next_group_first = end_sentence
      spans.append(InstanceSpan(
          *_truncate_pair(start_a, end_a, start_b, end_b, max_num_tokens, rng), is_random_next))
      group_first = next_group_first
  return spans


def build_input_ids(token_ids: np.ndarray, spans: np.ndarray, max_seq_length: int, cls_id: int,
                    sep_id: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """Lays out [CLS] A [SEP] B [SEP] and padding.

  Args:
    token_ids: int32 [num_tokens]; spans: int [N, 5] from `create_instance_spans`.
  Returns:
    input_ids int32 [N, max_seq_length], segment_ids int32 [N, max_seq_length], lengths int64
    [N].
  """
  num_rows = len(spans)
  input_ids = np.zeros((num_rows, max_seq_length), dtype=np.int32)
  segment_ids = np.zeros((num_rows, max_seq_length), dtype=np.int32)
  lengths = np.zeros(num_rows, dtype=np.int64)
  _instances.build_input_ids(np.ascontiguousarray(token_ids, np.int32),
                             np.ascontiguousarray(spans, np.int64),
                             input_ids, segment_ids, lengths, cls_id, sep_id)
  return input_ids, segment_ids, lengths


# ----------------------------------------------------------------------------------------------
# Masking.


@dataclasses.dataclass(frozen=True)
class MaskingConfig:
  """What masking needs to know about the flags and the vocabulary.

  continues_word: bool [vocab_size], True for pieces that continue the previous word ("##x" in
  WordPiece); set only for whole-word masking.
  """
  masked_lm_prob: float
  max_predictions_per_seq: int
  vocab_size: int
  cls_id: int
  sep_id: int
  mask_id: int
  continues_word: np.ndarray | None = None


def load_tokenizer_and_vocab(vocab_file: str | None = None, spm_model_file: str | None = None,
                           do_lower_case: bool = True):
  """The tokenizer and vocabulary of --vocab_file (WordPiece) or --spm_model_file.

  Returns:
    (tokenizer with tokenize_to_id_arrays for tokenize_chunk, vocab {token: id}, its file
    for errors).
  Raises:
    ValueError when neither file is given.
  """
  if spm_model_file:
    tokenizer = tokenization.SentencePieceTokenizer(spm_model_file, do_lower_case=do_lower_case)
    return tokenizer, tokenizer.vocab, spm_model_file
  if not vocab_file:
    raise ValueError("No vocabulary: pass --vocab_file (WordPiece) or --spm_model_file "
                     "(SentencePiece); [CLS], [SEP] and [MASK] take their ids from it.")
  tokenizer = tokenization.FullTokenizer(vocab_file, do_lower_case=do_lower_case)
  return tokenizer, tokenizer.vocab, vocab_file


def masking_config(vocab: dict[str, int], vocab_source: str, masked_lm_prob: float,
                   max_predictions_per_seq: int, do_whole_word_mask: bool,
                   is_sentencepiece: bool = False,
                   max_seq_length: int | None = None) -> MaskingConfig:
  """The MaskingConfig of the masking flags and a vocabulary, checked.

  Random replacements are drawn from the vocab's ids, [0, len(vocab)). With max_seq_length
  (create_pretraining_data.py), it must hold [CLS] A [SEP] B [SEP], and a warning says when
  --max_predictions_per_seq caps what --masked_lm_prob asks of a full sequence.
  Raises:
    ValueError naming the vocab file when it lacks [CLS], [SEP] or [MASK], or a flag is invalid.
  """
  missing = [token for token in MASKING_TOKENS if token not in vocab]
  if missing:
    raise ValueError(f"{vocab_source}: the vocabulary lacks {', '.join(missing)}; BERT "
                     "pre-training data and masking need [CLS], [SEP] and [MASK].")
  if max_seq_length is not None and max_seq_length < 5:
    raise ValueError(f"--max_seq_length={max_seq_length}: need at least 5 "
                     "([CLS] A [SEP] B [SEP]).")
  if max_predictions_per_seq < 1:
    raise ValueError(f"--max_predictions_per_seq={max_predictions_per_seq}: expected >= 1.")
  if not 0.0 < masked_lm_prob < 1.0:
    raise ValueError(f"--masked_lm_prob={masked_lm_prob}: expected a probability in (0, 1).")
  if max_seq_length is not None:
    implied = max(1, round(max_seq_length * masked_lm_prob))  # Google's count, full sequence.
    if max_predictions_per_seq < implied:
      logging.warning(
          "--max_predictions_per_seq=%d is smaller than the %d masked tokens that "
          "--max_seq_length=%d and --masked_lm_prob=%g imply for a full sequence; full "
          "sequences will get only %d.", max_predictions_per_seq, implied, max_seq_length,
          masked_lm_prob, max_predictions_per_seq)
  continues_word = None
  if do_whole_word_mask:
    # A piece continues the previous word: "##x" in WordPiece; in SentencePiece every piece
    # that does not start with "\u2581" (word start) and is not a special token.
    continues_word = np.zeros(max(vocab.values()) + 1, dtype=bool)
    specials = {"[CLS]", "[SEP]", "[MASK]", "[PAD]", "[UNK]"}
    for token, index in vocab.items():
      continues_word[index] = (not token.startswith("\u2581") and token not in specials
                               if is_sentencepiece else token.startswith("##"))
  return MaskingConfig(
      masked_lm_prob=masked_lm_prob, max_predictions_per_seq=max_predictions_per_seq,
      vocab_size=len(vocab), cls_id=vocab["[CLS]"], sep_id=vocab["[SEP]"],
      mask_id=vocab["[MASK]"], continues_word=continues_word)


@dataclasses.dataclass
class MaskedBatch:
  """input_ids int32 [N, S] after masking; masked_lm_positions, masked_lm_ids int32 [N, P];
  masked_lm_weights float32 [N, P] (1 for a prediction, 0 for padding); P = max predictions."""
  input_ids: np.ndarray
  masked_lm_positions: np.ndarray
  masked_lm_ids: np.ndarray
  masked_lm_weights: np.ndarray


def num_to_predict(lengths: np.ndarray, config: MaskingConfig) -> np.ndarray:
  """Google's min(max_predictions, max(1, round(length * prob))), round half to even."""
  wanted = np.maximum(1, np.round(np.asarray(lengths) * config.masked_lm_prob)).astype(np.int64)
  return np.minimum(config.max_predictions_per_seq, wanted)


def mask_batch(input_ids: np.ndarray, lengths: np.ndarray, config: MaskingConfig,
               rng: np.random.Generator) -> MaskedBatch:
  """Google's create_masked_lm_predictions on a batch of instances.

  Args:
    input_ids: int [N, S] unmasked, [CLS] A [SEP] B [SEP] then padding.
    lengths: int [N], tokens before the padding.
    rng: the masks are a function of one 64-bit draw from it.
  Every token but [CLS], [SEP] and padding is a candidate; min(P, max(1, round(length * prob)))
  of them are chosen uniformly (whole words only, with `config.continues_word`); each chosen
  token becomes [MASK] with probability 0.8, stays with 0.1, or becomes a uniformly random
  vocabulary id with 0.1 (native/instances.c).
  """
  masked = np.array(input_ids, dtype=np.int32, order="C")  # A copy, masked in place.
  num_rows = len(masked)
  shape = (num_rows, config.max_predictions_per_seq)
  positions, labels = np.zeros(shape, np.int32), np.zeros(shape, np.int32)
  weights = np.zeros(shape, np.float32)
  lengths = np.ascontiguousarray(lengths, np.int64)
  seed = int(rng.integers(0, 2**64, dtype=np.uint64))
  _instances.mask_rows(masked, lengths, num_to_predict(lengths, config), config.continues_word,
                       positions, labels, weights, config.cls_id, config.sep_id,
                       config.mask_id, config.vocab_size, seed)
  return MaskedBatch(masked, positions, labels, weights)


def mask_instance(input_ids: np.ndarray, config: MaskingConfig,
                  rng: np.random.Generator) -> MaskedBatch:
  """`mask_batch` for one instance: input_ids int [L] without padding; outputs have N = 1."""
  input_ids = np.asarray(input_ids)
  return mask_batch(input_ids[None, :], np.array([len(input_ids)]), config, rng)


# ----------------------------------------------------------------------------------------------
# A whole chunk: text -> serialised, framed TFRecords.


@dataclasses.dataclass(frozen=True)
class InstanceConfig:
  max_seq_length: int
  short_seq_prob: float
  dupe_factor: int
  random_seed: int
  masking: MaskingConfig
  apply_masking: bool = True  # False writes unmasked instances for dynamic masking.
  skip_invalid_utf8: bool = False


@dataclasses.dataclass
class ChunkResult:
  """Framed TFRecords of one chunk (records back to back) and what they hold."""
  records: bytes
  record_lengths: np.ndarray  # int64 [num_instances], framed lengths.
  documents: int
  empty_documents: int
  skipped_lines: int
  tokens: int  # Non-padding tokens, [CLS] and [SEP] included.
  masked: int
  random_next: int


_SERIALIZE_BATCH = 2048


def chunk_rngs(config: InstanceConfig, chunk_index: int):
  """(Python RNG per dupe for the spans, numpy Generator for shuffling and masking)."""
  children = np.random.SeedSequence([config.random_seed, chunk_index]).spawn(
      config.dupe_factor + 1)
  span_rngs = [random.Random(int.from_bytes(c.generate_state(4).tobytes(), "little"))
               for c in children[:-1]]
  return span_rngs, np.random.default_rng(children[-1])


def process_chunk(chunk_index: int, pieces: list[TextPiece], tokenizer,
                  config: InstanceConfig) -> ChunkResult:
  """Tokenizes a chunk, creates `dupe_factor` passes of instances, shuffles, masks, encodes."""
  chunk = tokenize_chunk(pieces, tokenizer, config.skip_invalid_utf8)
  span_rngs, rng = chunk_rngs(config, chunk_index)
  spans = []
  if len(chunk.document_starts) > 1:
    for span_rng in span_rngs:
      spans.extend(create_instance_spans(chunk, config.max_seq_length, config.short_seq_prob,
                                         span_rng))
  spans = span_array(spans)[rng.permutation(len(spans))]
  records, lengths, tokens, masked = [], [], 0, 0
  masking = config.masking
  for begin in range(0, len(spans), _SERIALIZE_BATCH):
    batch = spans[begin:begin + _SERIALIZE_BATCH]
    input_ids, segment_ids, seq_lengths = build_input_ids(
        chunk.token_ids, batch, config.max_seq_length, masking.cls_id, masking.sep_id)
    input_mask = (np.arange(config.max_seq_length)[None, :] < seq_lengths[:, None])
    tokens += int(seq_lengths.sum())
    features = {"input_ids": input_ids, "input_mask": input_mask.astype(np.int32),
                "segment_ids": segment_ids,
                "next_sentence_labels": batch[:, IS_RANDOM_NEXT:IS_RANDOM_NEXT + 1]}
    if config.apply_masking:
      masked_batch = mask_batch(input_ids, seq_lengths, masking, rng)
      masked += int(masked_batch.masked_lm_weights.sum())
      features.update(input_ids=masked_batch.input_ids,
                      masked_lm_positions=masked_batch.masked_lm_positions,
                      masked_lm_ids=masked_batch.masked_lm_ids,
                      masked_lm_weights=masked_batch.masked_lm_weights)
    # In the schema's order.
    framed, framed_lengths = encode_tfrecords(
        [(name, features[name]) for name in FEATURES if name in features])
    records.append(framed)
    lengths.append(framed_lengths)
  return ChunkResult(
      records=b"".join(records),
      record_lengths=np.concatenate(lengths) if lengths else np.zeros(0, np.int64),
      documents=len(chunk.document_starts) - 1, empty_documents=chunk.empty_documents,
      skipped_lines=chunk.skipped_lines, tokens=tokens, masked=masked,
      random_next=int(spans[:, IS_RANDOM_NEXT].sum()))


def encode_tfrecords(features: list[tuple[str, np.ndarray]]) -> tuple[bytes, np.ndarray]:
  """Serialises N `tf.train.Example`s of fixed-width features as framed TFRecords.

  Args:
    features: (name, values) pairs in output order; values int [N, K] (int64_list) or float
      [N, K] (float_list, stored as float32).
  Returns:
    (the N framed records back to back, exactly TFRecordWriter's bytes; int64 [N] framed
    lengths).
  """
  records, lengths = _tfrecord.encode_examples([
      (name, np.ascontiguousarray(values, _native_dtype(np.asarray(values).dtype)))
      for name, values in features])
  return records, np.frombuffer(lengths, np.int64)


def _native_dtype(dtype: np.dtype) -> type:
  """What _tfrecord reads without a conversion: float32, int32 or int64."""
  if dtype.kind == "f":
    return np.float32
  return np.int32 if dtype == np.int32 else np.int64
