"""BERT tokenization: Google's exact algorithm, a fast C batch path, SentencePiece.

The public API is that of google-research/bert's tokenization.py (FullTokenizer, BasicTokenizer,
WordpieceTokenizer, load_vocab, ...) so scripts written against it run unchanged. Additions:

* `FullTokenizer.tokenize_to_ids(texts)` / `tokenize_to_id_arrays(texts)`: the batch path for
  bulk work. A C extension (native/wordpiece.c) applies Google's algorithm character by
  character from tables this module computes (`normalized_char`), and returns ids identical
  to `convert_tokens_to_ids(tokenize(text))` for every text: the rare texts whose result
  depends on context (`depends_on_context`) take the Python path. Without the extension built,
  the batch path is the Python path, with a warning.
* `SentencePieceTokenizer(model_file)`: the same interface over a sentencepiece model.
* `Tokenizer`: that interface, which both satisfy and the data modules take.
* `create_tokenizer(vocab_file, spm_model_file, do_lower_case)`: picks one of the two.

This module never imports TensorFlow. The same tokenizers in-graph (tensorflow-text, for
tf.data and SavedModels) are bert/graph_tokenizer.py's `for_tokenizer(tokenizer)`.
"""

import collections
import concurrent.futures
import contextlib
import gc
import itertools
import os
import re
import unicodedata
import warnings
from typing import Protocol

import numpy as np

try:
  import _wordpiece  # The C fast path, built by scripts/setup.sh from native/.
except ImportError:
  _wordpiece = None

SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
_LOWERED_SPECIAL = re.compile("|".join(re.escape(token.lower()) for token in SPECIAL_TOKENS))


def validate_case_matches_checkpoint(do_lower_case, init_checkpoint):
  """Raises ValueError when `do_lower_case` contradicts a Google checkpoint's name.

  Google's released checkpoints say in their folder name whether they are cased; a mismatch
  silently ruins fine-tuning, so we refuse it. Unknown names are accepted.
  """
  if not init_checkpoint:
    return
  match = re.match("^.*?([A-Za-z0-9_-]+)/bert_model.ckpt", str(init_checkpoint))
  if match is None:
    return
  model_name = match.group(1)
  lower_models = [
      "uncased_L-24_H-1024_A-16", "uncased_L-12_H-768_A-12", "multilingual_L-12_H-768_A-12",
      "chinese_L-12_H-768_A-12"
  ]
  cased_models = [
      "cased_L-12_H-768_A-12", "cased_L-24_H-1024_A-16", "multi_cased_L-12_H-768_A-12"
  ]
  if model_name in lower_models and not do_lower_case:
    actual_flag, case_name, opposite_flag = "False", "lowercased", "True"
  elif model_name in cased_models and do_lower_case:
    actual_flag, case_name, opposite_flag = "True", "cased", "False"
  else:
    return
  raise ValueError(
      f"You passed in `--do_lower_case={actual_flag}` with `--init_checkpoint={init_checkpoint}`. "
      f"However, `{model_name}` seems to be a {case_name} model, so you should pass in "
      f"`--do_lower_case={opposite_flag}` so that the fine-tuning matches how the model was "
      "pre-trained. If this error is wrong, rename the checkpoint folder.")


def convert_to_unicode(text):
  """Returns `text` as `str`, decoding UTF-8 bytes (invalid bytes are dropped, as Google does)."""
  if isinstance(text, str):
    return text
  if isinstance(text, bytes):
    return text.decode("utf-8", "ignore")
  raise ValueError(f"Unsupported string type: {type(text)}; expected str or bytes.")


def printable_text(text):
  """Returns `text` as `str` suitable for print or logging (same as convert_to_unicode in Py3)."""
  return convert_to_unicode(text)


def load_vocab(vocab_file):
  """Loads a vocabulary file (one token per line, id = line number) into an OrderedDict.

  Like Google's, each line is stripped of surrounding whitespace. Unlike Google's, a token that
  appears twice is an error (Google silently keeps the later id, which makes the earlier id
  unreachable and the file ambiguous).
  """
  vocab = collections.OrderedDict()
  with open(vocab_file, encoding="utf-8") as reader:
    for index, line in enumerate(reader):
      token = line.strip()
      if token in vocab and token:
        raise ValueError(f"{vocab_file}:{index + 1}: token {token!r} already appeared on line "
                         f"{vocab[token] + 1}; a vocab file needs one distinct token per line.")
      vocab[token] = index
  return vocab


def convert_by_vocab(vocab, items):
  """Maps each item through `vocab` (a dict); raises KeyError on a missing item, as Google's."""
  return [vocab[item] for item in items]


def convert_tokens_to_ids(vocab, tokens):
  return convert_by_vocab(vocab, tokens)


def convert_ids_to_tokens(inv_vocab, ids):
  return convert_by_vocab(inv_vocab, ids)


def whitespace_tokenize(text):
  """Strips and splits `text` on whitespace (Python's `str.split()` definition)."""
  return text.split()


def _is_whitespace(char):
  """True for space, tab, newline, carriage return and Unicode category Zs."""
  if char in " \t\n\r":
    return True
  return unicodedata.category(char) == "Zs"


def _is_control(char):
  """True for categories Cc and Cf, except tab, newline and carriage return (whitespace)."""
  if char in "\t\n\r":
    return False
  return unicodedata.category(char) in ("Cc", "Cf")


def _is_punctuation(char):
  """True for Unicode P* and for every non-alphanumeric printable ASCII character ($+<=>^`|~)."""
  cp = ord(char)
  if 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126:
    return True
  return unicodedata.category(char).startswith("P")


def _cleaned_char(char):
  """Google's _clean_text of one character: "" for NUL, U+FFFD and control characters, " " for
  whitespace, else the character itself."""
  cp = ord(char)
  if cp == 0 or cp == 0xFFFD or _is_control(char):
    return ""
  if _is_whitespace(char):
    return " "
  return char


# The CJK Unified Ideographs blocks Google's BERT splits character by character. Hangul,
# Hiragana and Katakana are deliberately absent: they are written with spaces.
CJK_RANGES = ((0x4E00, 0x9FFF), (0x3400, 0x4DBF), (0x20000, 0x2A6DF), (0x2A700, 0x2B73F),
               (0x2B740, 0x2B81F), (0x2B820, 0x2CEAF), (0xF900, 0xFAFF), (0x2F800, 0x2FA1F))


def is_chinese_char(cp):
  return any(low <= cp <= high for low, high in CJK_RANGES)


def normalized_char(char, do_lower_case):
  """Google's BasicTokenizer applied to one character on its own, with token breaks as spaces.

  Every step of Google's algorithm is per character except the context-dependent ones that
  `depends_on_context` lists, so joining these strings and splitting on spaces reproduces
  BasicTokenizer.tokenize for any text without those characters. The fast paths (the C
  extension and graph_tokenizer) are built on this function.
  """
  cleaned = _cleaned_char(char)
  if cleaned != char:
    return cleaned
  text = char
  if do_lower_case:
    text = "".join(c for c in unicodedata.normalize("NFD", char.lower())
                   if unicodedata.category(c) != "Mn")
  # str.split() also breaks on U+2028/U+2029 (Zl/Zp), which Google's cleaning keeps.
  text = "".join(f" {c} " if _is_punctuation(c) else (" " if c.isspace() else c) for c in text)
  # CJK splitting happens before lower-casing, on the original character.
  return f" {text} " if is_chinese_char(ord(char)) else text


def is_reordering_mark(char):
  """True if NFD(char) holds a combining mark that survives accent stripping (not Mn).

  Canonical reordering can move such marks past each other, which a per-character table
  cannot reproduce.
  """
  if not unicodedata.combining(char) and unicodedata.decomposition(char)[:1] in ("", "<"):
    return False  # NFD leaves it alone and it is no mark: the cheap, common answer.
  return any(unicodedata.combining(c) and unicodedata.category(c) != "Mn"
             for c in unicodedata.normalize("NFD", char))


def depends_on_context(char, do_lower_case):
  """True where Google's result for `char` depends on its neighbours, so that only the Python
  path is exact: a capital sigma (str.lower() picks the final form by context) and reordering
  marks when lower-casing; lone surrogates (no UTF-8 form) always."""
  if 0xD800 <= ord(char) <= 0xDFFF:
    return True
  return do_lower_case and (char == "\u03a3" or is_reordering_mark(char))


class BasicTokenizer:
  """Google's BasicTokenizer: cleaning, CJK splitting, lower-casing, accent and punctuation split.

  The result is exactly Google's; per-character decisions are memoised because the same few
  hundred characters make up almost all text.
  """

  def __init__(self, do_lower_case=True):
    self.do_lower_case = do_lower_case
    self._clean_char = {}  # char -> "" (dropped), " " (whitespace) or the char itself.

  def tokenize(self, text):
    """Returns the list of basic tokens (str) of `text`."""
    text = convert_to_unicode(text)
    text = self._clean_text(text)
    text = self._tokenize_chinese_chars(text)
    split_tokens = []
    for token in whitespace_tokenize(text):
      if self.do_lower_case:
        token = self._run_strip_accents(token.lower())
      split_tokens.extend(self._run_split_on_punc(token))
    return whitespace_tokenize(" ".join(split_tokens))

  def _run_strip_accents(self, text):
    """Decomposes (NFD) and drops nonspacing marks (category Mn)."""
    if text.isascii():
      return text
    return "".join(c for c in unicodedata.normalize("NFD", text)
                   if unicodedata.category(c) != "Mn")

  def _run_split_on_punc(self, text):
    """Splits `text` so that each punctuation character is a token of its own."""
    output = []
    start_new_word = True
    for char in text:
      if _is_punctuation(char):
        output.append(char)
        start_new_word = True
      else:
        if start_new_word:
          output.append("")
          start_new_word = False
        output[-1] += char
    return output

  def _tokenize_chinese_chars(self, text):
    """Surrounds each CJK ideograph with spaces."""
    if text.isascii():
      return text
    return "".join(f" {c} " if is_chinese_char(ord(c)) else c for c in text)

  def _clean_text(self, text):
    """Drops NUL, U+FFFD and control characters; turns whitespace into a plain space."""
    cache = self._clean_char
    out = []
    for char in text:
      cleaned = cache.get(char)
      if cleaned is None:
        cleaned = cache[char] = _cleaned_char(char)
      out.append(cleaned)
    return "".join(out)


class WordpieceTokenizer:
  """Greedy longest-match-first WordPiece, as in Google's BERT."""

  def __init__(self, vocab, unk_token="[UNK]", max_input_chars_per_word=200):
    self.vocab = vocab
    self.unk_token = unk_token
    self.max_input_chars_per_word = max_input_chars_per_word

  def tokenize(self, text):
    """Returns the wordpieces of `text`, already whitespace-separated basic tokens.

    A word longer than `max_input_chars_per_word` characters, or one that cannot be covered by
    vocabulary pieces, becomes the single `unk_token`.
    """
    vocab = self.vocab
    output_tokens = []
    for token in whitespace_tokenize(convert_to_unicode(text)):
      if len(token) > self.max_input_chars_per_word:
        output_tokens.append(self.unk_token)
        continue
      if token in vocab:  # The common case: the whole word is a piece.
        output_tokens.append(token)
        continue
      sub_tokens = []
      start = 0
      while start < len(token):
        end = len(token)
        piece = None
        while start < end:
          candidate = token[start:end] if start == 0 else "##" + token[start:end]
          if candidate in vocab:
            piece = candidate
            break
          end -= 1
        if piece is None:
          sub_tokens = [self.unk_token]
          break
        sub_tokens.append(piece)
        start = end
      output_tokens.extend(sub_tokens)
    return output_tokens


class FullTokenizer:
  """End-to-end WordPiece tokenization: BasicTokenizer then WordpieceTokenizer (Google's API).

  `tokenize` is the exact Python reference; `tokenize_to_ids` and `tokenize_to_id_arrays` are
  the fast batch path (C, native/wordpiece.c) with identical ids.
  """

  _warned_no_native = False  # Warn once per process that the C tokenizer is missing.

  def __init__(self, vocab_file, do_lower_case=True):
    self.vocab_file = vocab_file
    self.do_lower_case = do_lower_case
    self.vocab = load_vocab(vocab_file)
    self.inv_vocab = {index: token for token, index in self.vocab.items()}
    self.basic_tokenizer = BasicTokenizer(do_lower_case=do_lower_case)
    self.wordpiece_tokenizer = WordpieceTokenizer(vocab=self.vocab)
    self._native = None

  def tokenize(self, text):
    """Returns the wordpieces (list of str) of one text."""
    split_tokens = []
    for token in self.basic_tokenizer.tokenize(text):
      split_tokens.extend(self.wordpiece_tokenizer.tokenize(token))
    return split_tokens

  def convert_tokens_to_ids(self, tokens):
    return convert_by_vocab(self.vocab, tokens)

  def convert_ids_to_tokens(self, ids):
    return convert_by_vocab(self.inv_vocab, ids)

  def tokenize_to_ids(self, texts, batch_size=4096, num_threads=None):
    """Fast batch path: `[convert_tokens_to_ids(tokenize(t)) for t in texts]`, same ids.

    Args:
      texts: list of str (or bytes, decoded as UTF-8).
      batch_size: texts per call of the C tokenizer; bounds memory.
      num_threads: batches tokenized at once (the C code releases the GIL); default: all cores.
    Returns:
      list (len(texts)) of lists of int ids.
    """
    texts = [convert_to_unicode(text) for text in texts]
    native = self._native_wordpiece()
    if native is None:
      return [self._exact_ids(text) for text in texts]
    batches = [texts[start:start + batch_size] for start in range(0, len(texts), batch_size)]
    num_threads = min(num_threads or os.cpu_count() or 1, len(batches))
    with _gc_paused():
      if num_threads > 1:
        with concurrent.futures.ThreadPoolExecutor(num_threads) as pool:
          encoded = list(pool.map(native.encode_lists, batches))
      else:
        encoded = [native.encode_lists(batch) for batch in batches]
    ids = []
    for batch, (batch_ids, python_rows) in zip(batches, encoded):
      for row in python_rows:
        batch_ids[row] = self._exact_ids(batch[row])
      ids.extend(batch_ids)
    return ids

  def tokenize_to_id_arrays(self, texts):
    """The batch path as arrays: (ids int32 [total], counts int64 [len(texts)]), every text's
    ids back to back and how many each has. For corpora (create_pretraining_data.py)."""
    texts = [convert_to_unicode(text) for text in texts]
    native = self._native_wordpiece()
    if native is None:
      return _ids_to_arrays([self._exact_ids(text) for text in texts])
    ids, counts, python_rows = native.encode_arrays(texts)
    ids, counts = np.frombuffer(ids, np.int32), np.frombuffer(counts, np.int64)
    if not python_rows:
      return ids, counts
    # Splice the exactly tokenized rows in: rebuild per row (rare: few texts need Python).
    per_text = np.split(ids, np.cumsum(counts)[:-1]) if len(texts) else []
    for row in python_rows:
      per_text[row] = self._exact_ids(texts[row])
    return _ids_to_arrays(per_text)

  def _exact_ids(self, text):
    return self.convert_tokens_to_ids(self.tokenize(text))

  def _native_wordpiece(self):
    """The C tokenizer for this vocabulary, or None (with a warning) when it is not built."""
    if self._native is None:
      if _wordpiece is None:
        if not FullTokenizer._warned_no_native:
          FullTokenizer._warned_no_native = True
          warnings.warn("The C WordPiece (_wordpiece) is not built, so batch tokenization "
                        "runs Google's Python algorithm (far slower). Build it with "
                        "scripts/setup.sh or `pip install --no-build-isolation ./native`.",
                        stacklevel=3)
        return None
      do_lower_case = self.do_lower_case

      def normalize_char(cp):
        char = chr(cp)
        if depends_on_context(char, do_lower_case):
          return None
        return normalized_char(char, do_lower_case)

      wordpiece = self.wordpiece_tokenizer
      self._native = _wordpiece.WordPiece(
          tokens=_tokens_by_id(self.vocab), unk_id=self.vocab.get(wordpiece.unk_token, -1),
          max_input_chars_per_word=wordpiece.max_input_chars_per_word,
          normalize_char=normalize_char)
    return self._native


def _tokens_by_id(vocab):
  """The tokens of `vocab` as a list indexed by id; None for ids without a token."""
  tokens = [None] * (max(vocab.values(), default=-1) + 1)
  for token, index in vocab.items():
    if token:
      tokens[index] = token
  return tokens


def vocab_list(vocab):
  """Returns the tokens of `vocab` ordered by id, for tensorflow-text.

  Ids without a usable token (blank lines in the file) get a placeholder with spaces, which no
  word can ever match because words never contain whitespace.
  """
  return [f" <empty vocab line {i + 1}> " if token is None else token
          for i, token in enumerate(_tokens_by_id(vocab))]


def _ids_to_arrays(per_text):
  """List of id sequences -> (ids int32 [total], counts int64 [len(per_text)])."""
  counts = np.fromiter(map(len, per_text), dtype=np.int64, count=len(per_text))
  ids = np.fromiter(itertools.chain.from_iterable(per_text), dtype=np.int32,
                    count=int(counts.sum()))
  return ids, counts


@contextlib.contextmanager
def _gc_paused():
  """Pauses the cyclic garbage collector, which building many small lists would trigger over
  and over (none of them can form a cycle)."""
  was_enabled = gc.isenabled()
  gc.disable()
  try:
    yield
  finally:
    if was_enabled:
      gc.enable()

class SentencePieceTokenizer:
  """FullTokenizer's interface over a sentencepiece model (`--spm_model_file`).

  Special tokens: `[CLS] [SEP] [MASK]` must be pieces of the model (learn_vocab.py adds them as
  user-defined symbols, so they also survive in raw text); `[UNK]` and `[PAD]` name the model's
  unk and pad ids whatever their pieces are called (e.g. `<unk>`), so `tokenize` returns `[UNK]`
  for unknown text and `convert_tokens_to_ids(["[PAD]"])` is the pad id.
  """

  def __init__(self, model_file, do_lower_case=False):
    import sentencepiece
    self.model_file = model_file
    self.do_lower_case = do_lower_case
    with open(model_file, "rb") as f:
      self.model_proto = f.read()
    self.sp_model = sentencepiece.SentencePieceProcessor()
    try:
      self.sp_model.LoadFromSerializedProto(self.model_proto)
    except RuntimeError as e:
      raise ValueError(f"{model_file}: not a sentencepiece model ({e}).") from e
    size = self.sp_model.get_piece_size()
    self.inv_vocab = {i: self.sp_model.id_to_piece(i) for i in range(size)}
    if self.sp_model.unk_id() >= 0:
      self.inv_vocab[self.sp_model.unk_id()] = "[UNK]"
    if self.sp_model.pad_id() >= 0:
      self.inv_vocab[self.sp_model.pad_id()] = "[PAD]"
    self.vocab = {piece: i for i, piece in self.inv_vocab.items()}
    missing = [token for token in SPECIAL_TOKENS if token not in self.vocab]
    if missing:
      raise ValueError(f"{model_file}: the sentencepiece model lacks the special tokens "
                       f"{missing} (it needs a pad and an unk id and the pieces [CLS], [SEP], "
                       "[MASK]); learn one with learn_vocab.py --model_type=sentencepiece.")

  @staticmethod
  def lower_case_keeping_special_tokens(text):
    """str.lower(), except that special tokens written in the text stay special."""
    return _LOWERED_SPECIAL.sub(lambda match: match.group(0).upper(), text.lower())

  def _prepare(self, text):
    text = convert_to_unicode(text)
    return self.lower_case_keeping_special_tokens(text) if self.do_lower_case else text

  def tokenize(self, text):
    """Returns the pieces (list of str) of one text; unknown pieces are `[UNK]`."""
    inv_vocab = self.inv_vocab
    return [inv_vocab[i] for i in self.sp_model.encode(self._prepare(text))]

  def convert_tokens_to_ids(self, tokens):
    return convert_by_vocab(self.vocab, tokens)

  def convert_ids_to_tokens(self, ids):
    return convert_by_vocab(self.inv_vocab, ids)

  def tokenize_to_ids(self, texts):
    """Batch path: list of str -> list of lists of int (sentencepiece's C++ batch encoder)."""
    return self.sp_model.encode([self._prepare(text) for text in texts])

  def tokenize_to_id_arrays(self, texts):
    """(ids int32 [total], counts int64 [len(texts)]), as FullTokenizer.tokenize_to_id_arrays."""
    return _ids_to_arrays(self.tokenize_to_ids(texts))


class Tokenizer(Protocol):
  """What FullTokenizer and SentencePieceTokenizer both offer, and the data modules use."""

  do_lower_case: bool
  vocab: dict  # token -> id
  inv_vocab: dict  # id -> token

  def tokenize(self, text: str) -> list[str]:
    """The tokens of one text."""

  def convert_tokens_to_ids(self, tokens: list[str]) -> list[int]:
    """Ids of tokens."""

  def convert_ids_to_tokens(self, ids: list[int]) -> list[str]:
    """Tokens of ids."""

  def tokenize_to_ids(self, texts: list[str]) -> list[list[int]]:
    """The batch path: convert_tokens_to_ids(tokenize(text)) of each text, same ids."""

  def tokenize_to_id_arrays(self, texts: list[str]):
    """(ids int32 [total], counts int64 [len(texts)]): tokenize_to_ids, flat."""


def create_tokenizer(vocab_file=None, spm_model_file=None, do_lower_case=True,
                     init_checkpoint=None):
  """Returns a FullTokenizer (WordPiece `vocab_file`) or a SentencePieceTokenizer.

  With init_checkpoint, first checks do_lower_case against the name of a known Google
  checkpoint (validate_case_matches_checkpoint).
  """
  validate_case_matches_checkpoint(do_lower_case, init_checkpoint)
  if bool(vocab_file) == bool(spm_model_file):
    raise ValueError("Pass exactly one of vocab_file (WordPiece vocab.txt) and spm_model_file "
                     f"(sentencepiece model); got vocab_file={vocab_file!r}, "
                     f"spm_model_file={spm_model_file!r}.")
  if spm_model_file:
    return SentencePieceTokenizer(spm_model_file, do_lower_case=do_lower_case)
  return FullTokenizer(vocab_file, do_lower_case=do_lower_case)
