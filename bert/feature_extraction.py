"""extract_features.py input and output: text lines -> features -> Google's JSONL, streamed.

Input: one example per line, "text_a ||| text_b" for a pair (Google's regex: the last
" ||| " splits). The line index is the example's unique id.

Output: one JSON object per input line, in input order, exactly as Google's extract_features:

  {"linex_index": 0, "features": [{"token": "[CLS]", "layers": [{"index": -1,
   "values": [0.123457, ...]}, ...]}, ...]}

(the key really is "linex_index"); [CLS] and [SEP] are included, padding is not, values are
Python's round(float(x), 6), written by json.dumps.

Everything here is a generator or a streaming writer: memory does not grow with the input.
"""
import dataclasses
import json
import re
from collections.abc import Iterable
from collections.abc import Iterator
from collections.abc import Sequence
from typing import IO

import numpy as np

from bert import classifier_features

try:
  import _jsonl  # native/jsonl.c, built by scripts/setup.sh.
except ImportError as error:
  raise ImportError(f"{error}: the C extensions of native/ are not built; run "
                    "scripts/setup.sh (or `pip install --no-build-isolation ./native`).") from error

_PAIR_SEPARATOR = re.compile(r"^(.*) \|\|\| (.*)$")


@dataclasses.dataclass
class InputExample:
  unique_id: int
  text_a: str
  text_b: str | None = None


@dataclasses.dataclass
class InputFeatures:
  """tokens: [CLS] a [SEP] (b [SEP]) without padding; ids/mask/type ids: [seq_length]."""
  unique_id: int
  tokens: list
  input_ids: list
  input_mask: list
  input_type_ids: list


def parse_layer_indexes(layers: str) -> list[int]:
  """"-1,-2,-3,-4" -> [-1, -2, -3, -4] (Google's --layers flag)."""
  try:
    indexes = [int(x) for x in layers.split(",")]
  except ValueError:
    raise ValueError(f"--layers={layers!r}: expected comma-separated integers such as "
                     f"-1,-2,-3,-4") from None
  return indexes


def read_examples(input_file: str) -> Iterator[InputExample]:
  """Yields one InputExample per line of input_file (UTF-8), unique_id = line index.

  Lines are split on "\\n" only and stripped of surrounding whitespace; an empty line is an
  example with empty text, so that linex_index always equals the input line index.
  """
  try:
    f = open(input_file, "rb")  # noqa: SIM115 (closed by the `with f` below)
  except FileNotFoundError:
    raise FileNotFoundError(f"input file not found: {input_file}") from None
  with f:
    for unique_id, raw_line in enumerate(f):
      try:
        line = raw_line.decode("utf-8").strip()
      except UnicodeDecodeError as e:
        raise ValueError(f"{input_file}:{unique_id + 1}: not valid UTF-8 ({e.reason}); "
                         f"expected one text (or 'text_a ||| text_b') per line") from None
      match = _PAIR_SEPARATOR.match(line)
      if match is None:
        yield InputExample(unique_id, line)
      else:
        yield InputExample(unique_id, match.group(1), match.group(2))


def _tokenize(tokenizer, texts: list) -> list:
  """Token lists of texts, through the batch path tokenize_to_ids."""
  inv_vocab = tokenizer.inv_vocab
  return [[inv_vocab[int(i)] for i in ids] for ids in tokenizer.tokenize_to_ids(texts)]


def convert_examples_to_features(examples: Iterable[InputExample], seq_length: int,
                                 tokenizer, chunk_size: int = 1024
                                 ) -> Iterator[InputFeatures]:
  """Yields Google's extract_features InputFeatures, tokenising chunk_size lines at a time.

  [CLS] a [SEP] (type 0) b [SEP] (type 1); a pair is trimmed (longer text first) to
  seq_length - 3 tokens, a single text to seq_length - 2; zero padding to seq_length.
  """
  if seq_length < 3:
    raise ValueError(f"max_seq_length={seq_length} leaves no room for text")
  chunk = []
  for example in examples:
    chunk.append(example)
    if len(chunk) == chunk_size:
      yield from _convert_chunk(chunk, seq_length, tokenizer)
      chunk = []
  if chunk:
    yield from _convert_chunk(chunk, seq_length, tokenizer)


def _convert_chunk(chunk: list, seq_length: int, tokenizer) -> Iterator[InputFeatures]:
  pairs = [i for i, e in enumerate(chunk) if e.text_b]
  tokenized = _tokenize(tokenizer, [e.text_a for e in chunk]
                        + [chunk[i].text_b for i in pairs])
  tokens_b_of = dict(zip(pairs, tokenized[len(chunk):]))
  for i, example in enumerate(chunk):
    tokens_a, tokens_b = tokenized[i], tokens_b_of.get(i)
    if tokens_b:
      classifier_features.truncate_seq_pair(tokens_a, tokens_b, seq_length - 3)
    else:
      tokens_b = None
      del tokens_a[seq_length - 2:]
    tokens = ["[CLS]"] + tokens_a + ["[SEP]"]
    input_type_ids = [0] * len(tokens)
    if tokens_b:
      tokens += tokens_b + ["[SEP]"]
      input_type_ids += [1] * (len(tokens_b) + 1)
    input_ids = tokenizer.convert_tokens_to_ids(tokens)
    padding = [0] * (seq_length - len(tokens))
    yield InputFeatures(unique_id=example.unique_id, tokens=tokens,
                        input_ids=list(input_ids) + padding,
                        input_mask=[1] * len(tokens) + padding,
                        input_type_ids=input_type_ids + padding)


def batch_features(features: Iterable[InputFeatures], batch_size: int
                   ) -> Iterator[tuple[list, dict]]:
  """Groups features into model batches, in order (the last batch may be smaller).

  Yields:
    (features of the batch, {"unique_ids": int64 [b], "input_ids", "input_mask",
     "input_type_ids": int32 [b, seq_length]}).
  """
  batch = []
  for feature in features:
    batch.append(feature)
    if len(batch) == batch_size:
      yield batch, _stack(batch)
      batch = []
  if batch:
    yield batch, _stack(batch)


def _stack(batch: list) -> dict:
  return {
      "unique_ids": np.array([f.unique_id for f in batch], np.int64),
      "input_ids": np.array([f.input_ids for f in batch], np.int32),
      "input_mask": np.array([f.input_mask for f in batch], np.int32),
      "input_type_ids": np.array([f.input_type_ids for f in batch], np.int32),
  }


def round_values(values: np.ndarray) -> np.ndarray:
  """Python's round(float(x), 6) of every value, as float64.

  For float32 (or narrower) input this is exact and vectorised: x * 1e6 of a float32 needs
  24 + 20 mantissa bits, so it is exact in float64, and numpy's round-half-even of it then
  equals Python's correctly rounded round(); dividing by 1e6 gives the same nearest double.
  float64 input takes Python's round() value by value.
  """
  values = np.asarray(values)
  if values.dtype.itemsize <= 4 and np.issubdtype(values.dtype, np.floating):
    return np.round(values.astype(np.float64), 6)
  if values.dtype == np.float64:
    flat = [round(x, 6) for x in values.reshape(-1).tolist()]
    return np.array(flat, np.float64).reshape(values.shape)
  # Other dtypes (e.g. bfloat16 from ml_dtypes): exactly representable in float32.
  return np.round(values.astype(np.float32).astype(np.float64), 6)


def format_example(unique_id: int, tokens: Sequence[str], layer_indexes: Sequence[int],
                   rounded_layers: Sequence) -> str:
  """One JSONL line (without newline) in Google's format.

  Byte for byte json.dumps of Google's nested dicts, without making a Python float of every
  value: the values' text comes from C (_jsonl.float_rows: json.dumps' float repr) and the
  frame around it is joined here, with json.dumps' separators.

  Args:
    rounded_layers: per entry of layer_indexes, the example's rounded values as a float
      array [>= len(tokens), hidden] (rows past the tokens, i.e. padding, are ignored).
  """
  layer_prefixes = ['{"index": ' + json.dumps(index) + ', "values": '
                    for index in layer_indexes]
  values_per_layer = [
      _jsonl.float_rows(np.ascontiguousarray(np.asarray(layer)[:len(tokens)], np.float64))
      for layer in rounded_layers]
  features = ", ".join(
      '{"token": ' + json.dumps(token) + ', "layers": ['
      + ", ".join(prefix + values[position] + "}"
                  for prefix, values in zip(layer_prefixes, values_per_layer))
      + "]}"
      for position, token in enumerate(tokens))
  return '{"linex_index": ' + json.dumps(unique_id) + ', "features": [' + features + "]}"


class JsonlFeatureWriter:
  """Streams Google's extract_features JSONL, one batch of model outputs at a time.

  Usage:
    with JsonlFeatureWriter(output_file, layer_indexes) as writer:
      for batch, arrays in batch_features(features, batch_size):
        writer.write_batch(batch, [outputs of each layer index: float [b, seq, hidden]])
  """

  def __init__(self, output: "str | IO[str]", layer_indexes: Sequence[int]):
    self._owns_file = isinstance(output, str)
    # The writer owns a file it opened and closes it in close().
    self._file = (open(output, "w", encoding="utf-8")  # noqa: SIM115
                  if self._owns_file else output)
    self.layer_indexes = list(layer_indexes)
    self.num_written = 0
    self.bytes_written = 0  # UTF-8 bytes, for write rates.

  def write_batch(self, features: Sequence[InputFeatures], layer_outputs: Sequence) -> None:
    """Writes one line per feature, in order.

    Args:
      features: the batch's InputFeatures (their tokens decide what is written).
      layer_outputs: one float array [batch, seq, hidden] per layer index, seq >= each
        feature's number of tokens (rows past them, i.e. padding, are ignored).
    """
    if len(layer_outputs) != len(self.layer_indexes):
      raise ValueError(f"{len(layer_outputs)} layer outputs for layer indexes "
                       f"{self.layer_indexes}")
    layer_outputs = [np.asarray(layer) for layer in layer_outputs]
    for i, feature in enumerate(features):
      # Rounds the token rows only: padding can be most of a batch.
      rounded = [round_values(layer[i, :len(feature.tokens)]) for layer in layer_outputs]
      line = format_example(feature.unique_id, feature.tokens, self.layer_indexes, rounded)
      self._file.write(line + "\n")
      # json.dumps escapes non-ASCII characters: one byte a character.
      self.bytes_written += len(line) + 1
    self.num_written += len(features)

  def close(self) -> None:
    if self._owns_file:
      self._file.close()

  def __enter__(self):
    return self

  def __exit__(self, *exc_info):
    self.close()
