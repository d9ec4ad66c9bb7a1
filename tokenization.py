"""BERT tokenization: Google's exact algorithm, a fast tensorflow-text batch path, SentencePiece.

The public API is that of google-research/bert's tokenization.py (FullTokenizer, BasicTokenizer,
WordpieceTokenizer, load_vocab, ...) so scripts written against it run unchanged. Additions:

* `FullTokenizer.tokenize_to_ids(texts)`: the batch path for bulk work. It runs
  tensorflow-text's FastBertTokenizer (C++) and returns ids identical to
  `convert_tokens_to_ids(tokenize(text))` for every text; see `_FastBertPath` for how the few
  places where tensorflow-text's normalisation differs from Google's are handled.
* `FullTokenizer.tf_tokenizer()`: the same fast path as a `tf.Module` usable inside tf.data or
  a SavedModel (string tensor in, ragged int64 ids out).
* `SentencePieceTokenizer(model_file)`: the same interface over a sentencepiece model.
* `create_tokenizer(vocab_file, spm_model_file, do_lower_case)`: picks one of the two.
"""

import collections
import concurrent.futures
import contextlib
import gc
import os
import re
import unicodedata

import numpy as np
import tensorflow as tf
import tensorflow_text as tf_text

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
  with open(vocab_file, "r", encoding="utf-8") as reader:
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


# The CJK Unified Ideographs blocks Google's BERT splits character by character. Hangul,
# Hiragana and Katakana are deliberately absent: they are written with spaces.
_CJK_RANGES = ((0x4E00, 0x9FFF), (0x3400, 0x4DBF), (0x20000, 0x2A6DF), (0x2A700, 0x2B73F),
               (0x2B740, 0x2B81F), (0x2B820, 0x2CEAF), (0xF900, 0xFAFF), (0x2F800, 0x2FA1F))


def _is_chinese_char(cp):
  return any(low <= cp <= high for low, high in _CJK_RANGES)


class BasicTokenizer:
  """Google's BasicTokenizer: cleaning, CJK splitting, lower-casing, accent and punctuation split.

  The result is exactly Google's; per-character decisions are memoised because the same few
  hundred characters make up almost all text.
  """

  def __init__(self, do_lower_case=True):
    self.do_lower_case = do_lower_case
    self._clean_char = {}  # char -> "" (dropped), " " (whitespace) or the char itself.
    self._split_char = {}  # char -> True when it becomes its own token (CJK or punctuation).

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
    return "".join(f" {c} " if _is_chinese_char(ord(c)) else c for c in text)

  def _clean_text(self, text):
    """Drops NUL, U+FFFD and control characters; turns whitespace into a plain space."""
    cache = self._clean_char
    out = []
    for char in text:
      cleaned = cache.get(char)
      if cleaned is None:
        cp = ord(char)
        if cp == 0 or cp == 0xFFFD or _is_control(char):
          cleaned = ""
        elif _is_whitespace(char):
          cleaned = " "
        else:
          cleaned = char
        cache[char] = cleaned
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

  `tokenize` is the exact Python reference; `tokenize_to_ids` is the fast batch path with
  identical ids, and `tf_tokenizer()` returns that fast path as a TensorFlow module.
  """

  def __init__(self, vocab_file, do_lower_case=True):
    self.vocab_file = vocab_file
    self.do_lower_case = do_lower_case
    self.vocab = load_vocab(vocab_file)
    self.inv_vocab = {index: token for token, index in self.vocab.items()}
    self.basic_tokenizer = BasicTokenizer(do_lower_case=do_lower_case)
    self.wordpiece_tokenizer = WordpieceTokenizer(vocab=self.vocab)
    self._tf_module = None

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

  def tf_tokenizer(self):
    """Returns the fast path as a `tf.Module`: string tensor [batch] -> ragged int64 [batch, None].

    Usable inside tf.data and as part of a SavedModel. See `FastWordpieceIds` for the (tiny)
    class of strings on which it can differ from `tokenize`; `tokenize_to_ids` routes those
    to the Python path.
    """
    if self._tf_module is None:
      unk_token = self.wordpiece_tokenizer.unk_token
      if unk_token not in self.vocab:
        raise ValueError(f"{self.vocab_file}: the unknown token {unk_token!r} is not in the "
                         "vocabulary; the fast path needs it.")
      self._tf_module = FastWordpieceIds(
          _vocab_list(self.vocab), do_lower_case=self.do_lower_case, unk_token=unk_token,
          max_input_chars_per_word=self.wordpiece_tokenizer.max_input_chars_per_word)
    return self._tf_module

  def tokenize_to_ids(self, texts, batch_size=4096, num_threads=None):
    """Fast batch path: `[convert_tokens_to_ids(tokenize(t)) for t in texts]`, same ids.

    Args:
      texts: list of str (or bytes, decoded as UTF-8).
      batch_size: texts per call of the TensorFlow graph; bounds memory.
      num_threads: graph calls run at once (TensorFlow releases the GIL); default: all cores.
    Returns:
      list (len(texts)) of lists of int ids.
    """
    texts = [convert_to_unicode(text) for text in texts]
    module = self.tf_tokenizer()
    python_rows = module.rows_needing_python(texts)
    fast_texts = [text for i, text in enumerate(texts) if i not in python_rows]
    batches = [fast_texts[start:start + batch_size]
               for start in range(0, len(fast_texts), batch_size)]
    num_threads = min(num_threads or os.cpu_count() or 1, len(batches))
    tokenize_batch = lambda batch: _ragged_to_lists(module(batch))  # pylint: disable=unnecessary-lambda-assignment
    with _gc_paused():
      if num_threads > 1:
        with concurrent.futures.ThreadPoolExecutor(num_threads) as pool:
          batch_ids = list(pool.map(tokenize_batch, batches))
      else:
        batch_ids = [tokenize_batch(batch) for batch in batches]
    fast_ids = [ids for batch in batch_ids for ids in batch]
    if not python_rows:
      return fast_ids
    fast_iter = iter(fast_ids)
    return [
        self.convert_tokens_to_ids(self.tokenize(text)) if i in python_rows else next(fast_iter)
        for i, text in enumerate(texts)
    ]


def _vocab_list(vocab):
  """Returns the tokens of `vocab` ordered by id, for tensorflow-text.

  Ids without a usable token (blank lines in the file) get a placeholder with spaces, which no
  word can ever match because words never contain whitespace.
  """
  tokens = [f" <empty vocab line {i + 1}> " for i in range(max(vocab.values()) + 1)]
  for token, index in vocab.items():
    if token:
      tokens[index] = token
  return tokens


def _ragged_to_lists(ragged):
  """RaggedTensor [batch, None] -> list of lists of int, without per-element Python work."""
  values = ragged.flat_values.numpy().tolist()
  splits = ragged.row_splits.numpy().tolist()
  return [values[start:end] for start, end in zip(splits[:-1], splits[1:])]


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


def _normalized_char(char, do_lower_case):
  """Google's BasicTokenizer applied to one character on its own, with token breaks as spaces.

  Every step of Google's algorithm is per character except the context-dependent ones that
  `_CharTables.python_only` lists, so joining these strings and splitting on spaces reproduces
  BasicTokenizer.tokenize for any text without those characters.
  """
  cp = ord(char)
  if cp == 0 or cp == 0xFFFD or _is_control(char):
    return ""
  if _is_whitespace(char):
    return " "
  text = char
  if do_lower_case:
    text = "".join(c for c in unicodedata.normalize("NFD", char.lower())
                   if unicodedata.category(c) != "Mn")
  # str.split() also breaks on U+2028/U+2029 (Zl/Zp), which Google's cleaning keeps.
  text = "".join(f" {c} " if _is_punctuation(c) else (" " if c.isspace() else c) for c in text)
  # CJK splitting happens before lower-casing, on the original character.
  return f" {text} " if _is_chinese_char(cp) else text


def _is_reordering_mark(char):
  """True if NFD(char) holds a combining mark that survives accent stripping (not Mn).

  Canonical reordering can move such marks past each other, which a per-character table
  cannot reproduce.
  """
  return any(unicodedata.combining(c) and unicodedata.category(c) != "Mn"
             for c in unicodedata.normalize("NFD", char))


# Blocks where tensorflow-text's FastBertTokenizer was checked, code point by code point, to
# agree with Google's algorithm once the exclusions of `_fast_bert_safe` are applied (and
# tests/test_tokenization.py re-checks every code point of the resulting class). Elsewhere it
# differs: it turns control characters into spaces instead of removing them, applies
# compatibility decompositions (NFKD: "…" -> "...", "½" -> "1/2"), case-folds instead of
# lower-casing ("ß" -> "ss"), and uses a newer Unicode version than Python.
_FAST_BERT_BLOCKS = ((0x00A0, 0x1FFF), (0x2010, 0x205E), (0x3040, 0x30FF), (0xAC00, 0xD7A3),
                     *_CJK_RANGES)
_HANGUL_SYLLABLES = (0xAC00, 0xD7A3)  # NFD decomposes them algorithmically, without a table.


def _fast_bert_safe(char, normalized, do_lower_case):
  """True if FastBertTokenizer treats `char` (normalising to `normalized`) as Google does."""
  cp = ord(char)
  if 0x20 <= cp <= 0x7E or char in "\t\n\r":
    return True
  if not any(low <= cp <= high for low, high in _FAST_BERT_BLOCKS):
    return False
  if unicodedata.category(char) in ("Cc", "Cf", "Cn", "Co", "Cs", "Zl", "Zp"):
    return False
  if (unicodedata.decomposition(char) and  # FastBert applies NFKD, Google NFD.
      unicodedata.normalize("NFKD", char) != unicodedata.normalize("NFD", char)):
    return False
  if cp in (0x115F, 0x1160):  # Hangul fillers: default-ignorable for ICU, letters for Python.
    return False
  if do_lower_case:
    if char.lower() != char.casefold() or cp == 0x3A3 or _is_reordering_mark(char):
      return False
    # A character that normalises into several (Hangul syllables into jamo) would make a word
    # longer in characters than in the raw text, defeating the raw-text long-word check.
    if len(normalized.strip()) > 1:
      return False
  return True


_CharTables = collections.namedtuple(
    "_CharTables", ["table", "python_only", "python_only_chars", "fast_bert_class"])
_CHAR_TABLES_CACHE = {}


def _char_tables(do_lower_case):
  """Scans Unicode once (cached per case mode) and returns a `_CharTables` of

  table: {char: _normalized_char(char)} for every character the normalisation changes;
  python_only: compiled regex of characters only the Python path handles exactly (capital
    sigma and reordering marks when lower-casing: str.lower() picks the final sigma by context,
    NFD reorders marks; lone surrogates always, they cannot be UTF-8 encoded);
  python_only_chars: the same characters but the surrogates, as a tuple of str;
  fast_bert_class: RE2 character class of the characters FastBertTokenizer gets right.
  """
  if do_lower_case in _CHAR_TABLES_CACHE:
    return _CHAR_TABLES_CACHE[do_lower_case]
  category, decomposition = unicodedata.category, unicodedata.decomposition
  table, python_only, fast_bert = {}, ["\u03a3"] if do_lower_case else [], []
  for cp in range(0x110000):
    if 0xD800 <= cp <= 0xDFFF:
      continue
    char = chr(cp)
    cat = category(char)
    is_chinese = _is_chinese_char(cp)  # Google's ranges include a few unassigned points.
    if cat in ("Cn", "Co") and not is_chinese:  # Every step keeps these as they are.
      continue
    if is_chinese and not decomposition(char):  # The bulk: ~90k ideographs.
      table[char] = f" {char} "
      fast_bert.append(char)
      continue
    canonical_decomposition = decomposition(char)[:1] not in ("", "<")
    # Only these can change; testing first saves most of the scan's time.
    may_change = (cp < 0x80 or cp == 0xFFFD or cat[0] in "CPZ" or char.isspace() or
                  is_chinese or (do_lower_case and (cat == "Mn" or char.lower() != char or
                                      canonical_decomposition or
                                      _HANGUL_SYLLABLES[0] <= cp <= _HANGUL_SYLLABLES[1])))
    normalized = _normalized_char(char, do_lower_case) if may_change else char
    if normalized != char:
      table[char] = normalized
    if (do_lower_case and (unicodedata.combining(char) or canonical_decomposition) and
        _is_reordering_mark(char)):
      python_only.append(char)
    if (cp < 0x80 or cp >= 0xA0) and _fast_bert_safe(char, normalized, do_lower_case):
      fast_bert.append(char)
  tables = _CharTables(
      table=table,
      python_only=re.compile("[" + re.escape("".join(python_only)) + "\ud800-\udfff]"),
      python_only_chars=tuple(python_only),
      fast_bert_class=_char_class(fast_bert))
  _CHAR_TABLES_CACHE[do_lower_case] = tables
  return tables


def _char_class(chars):
  """RE2 character class matching exactly `chars` (an iterable of single-character str)."""
  cps = sorted(ord(c) for c in chars)
  ranges = []
  for cp in cps:
    if ranges and ranges[-1][1] == cp - 1:
      ranges[-1][1] = cp
    else:
      ranges.append([cp, cp])
  return "[" + "".join(f"\\x{{{a:x}}}" if a == b else f"\\x{{{a:x}}}-\\x{{{b:x}}}"
                       for a, b in ranges) + "]"


class SentencePieceTokenizer:
  """FullTokenizer's interface over a sentencepiece model (`--spm_model_file`).

  Special tokens: `[CLS] [SEP] [MASK]` must be pieces of the model (learn_vocab.py adds them as
  user-defined symbols, so they also survive in raw text); `[UNK]` and `[PAD]` name the model's
  unk and pad ids whatever their pieces are called (e.g. `<unk>`), so `tokenize` returns `[UNK]`
  for unknown text and `convert_tokens_to_ids(["[PAD]"])` is the pad id.
  """

  def __init__(self, model_file, do_lower_case=False):
    import sentencepiece  # pylint: disable=import-outside-toplevel
    self.model_file = model_file
    self.do_lower_case = do_lower_case
    with open(model_file, "rb") as f:
      self._model_proto = f.read()
    self.sp_model = sentencepiece.SentencePieceProcessor()
    try:
      self.sp_model.LoadFromSerializedProto(self._model_proto)
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
    self._tf_module = None

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

  def tf_tokenizer(self):
    """Returns a `tf.Module`: string [batch] -> ragged int64 ids [batch, None].

    With do_lower_case, lower-casing runs in-graph with ICU (tf.strings.lower), which agrees
    with Python's str.lower() except on context-dependent cases such as a final capital sigma.
    """
    if self._tf_module is None:
      self._tf_module = SentencePieceIds(self._model_proto, self.do_lower_case)
    return self._tf_module


class SentencePieceIds(tf.Module):
  """A sentencepiece model in-graph: string [batch] -> ragged int64 [batch, None]."""

  def __init__(self, model_proto, do_lower_case=False):
    super().__init__(name="sentencepiece_ids")
    self._sentencepiece = tf_text.SentencepieceTokenizer(model=model_proto, out_type=tf.int32)
    self._do_lower_case = do_lower_case

  @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
  def __call__(self, texts):
    if self._do_lower_case:
      texts = tf.strings.lower(texts, encoding="utf-8")
      for token in SPECIAL_TOKENS:
        texts = tf.strings.regex_replace(texts, re.escape(token.lower()), token)
    return tf.cast(self._sentencepiece.tokenize(texts), tf.int64)


def create_tokenizer(vocab_file=None, spm_model_file=None, do_lower_case=True):
  """Returns a FullTokenizer (WordPiece `vocab_file`) or a SentencePieceTokenizer."""
  if bool(vocab_file) == bool(spm_model_file):
    raise ValueError("Pass exactly one of vocab_file (WordPiece vocab.txt) and spm_model_file "
                     f"(sentencepiece model); got vocab_file={vocab_file!r}, "
                     f"spm_model_file={spm_model_file!r}.")
  if spm_model_file:
    return SentencePieceTokenizer(spm_model_file, do_lower_case=do_lower_case)
  return FullTokenizer(vocab_file, do_lower_case=do_lower_case)


_MAX_CODE_POINT = 0x10FFFF


def _code_point_table(table):
  """Turns {char: str} into a ragged int32 tensor [0x110000, (code points)]: row c holds the
  code points `chr(c)` normalises to (itself when absent from `table`, none when deleted)."""
  num_rows = _MAX_CODE_POINT + 1
  mapped = np.array(sorted(ord(c) for c in table), dtype=np.int64)
  replacements = "".join(table[chr(cp)] for cp in mapped)
  replacement_cps = np.frombuffer(replacements.encode("utf-32-le"), dtype=np.uint32)
  mapped_lengths = np.array([len(table[chr(cp)]) for cp in mapped], dtype=np.int64)
  lengths = np.ones(num_rows, dtype=np.int64)
  lengths[mapped] = mapped_lengths
  row_splits = np.concatenate([[0], np.cumsum(lengths)])
  is_mapped = np.zeros(num_rows, dtype=bool)
  is_mapped[mapped] = True
  mapped_starts = np.zeros(num_rows, dtype=np.int64)
  mapped_starts[mapped] = np.concatenate([[0], np.cumsum(mapped_lengths)[:-1]])
  row_of_value = np.repeat(np.arange(num_rows), lengths)
  offset_in_row = np.arange(row_splits[-1]) - row_splits[row_of_value]
  values = np.where(
      is_mapped[row_of_value],
      replacement_cps[np.minimum(mapped_starts[row_of_value] + offset_in_row,
                                 len(replacement_cps) - 1)],
      row_of_value).astype(np.int32)
  return tf.RaggedTensor.from_row_splits(values, row_splits, validate=False)


class FastWordpieceIds(tf.Module):
  """The fast WordPiece path as a TensorFlow module: string [batch] -> ragged int64 [batch, None].

  Two in-graph routes, chosen per string by RE2 matching:
  * strings made only of characters where tensorflow-text's FastBertTokenizer provably agrees
    with Google's algorithm (`_fast_bert_safe`; ASCII, Latin, Greek, Cyrillic, CJK, kana, ...)
    and with no run of more than `max_input_chars_per_word` non-blank characters go through
    FastBertTokenizer, fused C++;
  * all other strings go through an exact in-graph normalisation: a per-character lookup table
    generated from Google's own functions (`_normalized_char`), whitespace split, the
    long-word [UNK] rule, then FastWordpieceTokenizer on the words.
  The only strings on which the module can differ from Google's algorithm are uncased strings
  holding a capital sigma or a reordering mark (`_CharTables.python_only`) and strings with lone
  surrogates; `rows_needing_python` finds them and FullTokenizer.tokenize_to_ids sends just
  those to the Python path.
  """

  def __init__(self, vocab_list, do_lower_case, unk_token="[UNK]", max_input_chars_per_word=200):
    super().__init__(name="fast_wordpiece_ids")
    # Google limits words in characters, tensorflow-text in UTF-8 bytes: allow the longest
    # byte length of a legal word and enforce the character limit ourselves.
    max_bytes_per_word = 4 * max_input_chars_per_word
    self._fast_bert = tf_text.FastBertTokenizer(
        vocab=vocab_list, suffix_indicator="##", max_bytes_per_word=max_bytes_per_word,
        token_out_type=tf.int64, unknown_token=unk_token,
        lower_case_nfd_strip_accents=do_lower_case)
    self._wordpiece = tf_text.FastWordpieceTokenizer(
        vocab=vocab_list, suffix_indicator="##", max_bytes_per_word=max_bytes_per_word,
        token_out_type=tf.int64, unknown_token=unk_token, no_pretokenization=True)
    tables = _char_tables(do_lower_case)
    self._code_point_table = _code_point_table(tables.table)
    self._fast_bert_pattern = tables.fast_bert_class + "*"
    self._long_word_pattern = f"(?s).*[^ \t\n\r]{{{max_input_chars_per_word + 1}}}.*"
    self._unk_token = unk_token
    self._max_input_chars_per_word = max_input_chars_per_word
    self._python_only = tables.python_only
    self._python_only_chars = tables.python_only_chars

  def rows_needing_python(self, texts):
    """Indices (a set) of the texts (list of str) this module cannot tokenize exactly."""
    # Quick whole-batch checks settle the usual case (none): `char in str` returns at once when
    # the string's storage cannot hold `char`, and encoding fails only on a surrogate.
    joined = "\n".join(texts)
    if joined.isascii():
      return set()
    try:
      joined.encode("utf-8")
      if not any(char in joined for char in self._python_only_chars):
        return set()
    except UnicodeEncodeError:
      pass
    search = self._python_only.search
    return {i for i, text in enumerate(texts) if search(text)}

  @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
  def __call__(self, texts):
    """texts: string [batch] (UTF-8). Returns ragged int64 ids [batch, (tokens)]."""
    use_fast_bert = tf.logical_and(
        tf.strings.regex_full_match(texts, self._fast_bert_pattern),
        tf.logical_not(tf.strings.regex_full_match(texts, self._long_word_pattern)))
    # Usually every string qualifies; skipping the split and re-merge then saves a third.
    return tf.cond(tf.reduce_all(use_fast_bert),
                   lambda: self._fast_bert.tokenize(texts),
                   lambda: self._mixed_ids(texts, use_fast_bert))

  def _mixed_ids(self, texts, use_fast_bert):
    """Sends texts[use_fast_bert] to FastBert and the rest to `_exact_ids`, keeping order."""
    fast_rows = tf.where(use_fast_bert)[:, 0]
    exact_rows = tf.where(tf.logical_not(use_fast_bert))[:, 0]
    fast_ids = self._fast_bert.tokenize(tf.gather(texts, fast_rows))
    exact_ids = self._exact_ids(tf.gather(texts, exact_rows))
    ids = tf.concat([fast_ids, exact_ids], axis=0)
    return tf.gather(ids, tf.argsort(tf.concat([fast_rows, exact_rows], axis=0)))

  def _exact_ids(self, texts):
    """Google's algorithm in-graph. texts: string [n]. Returns ragged int64 [n, (tokens)]."""
    # Invalid UTF-8 becomes U+FFFD, which the table deletes: Google's decode drops it too.
    code_points = tf.strings.unicode_decode(texts, "UTF-8", errors="replace")  # [n, (chars)]
    normalized = tf.gather(self._code_point_table, code_points.flat_values)  # [chars, (cps)]
    normalized = code_points.with_flat_values(normalized).merge_dims(1, 2)  # [n, (cps)]
    normalized = tf.strings.unicode_encode(normalized, "UTF-8")  # [n]
    words = tf.strings.split(normalized)  # [n, (words)]; the table left only " " as blank.
    too_long = tf.strings.length(words.flat_values, unit="UTF8_CHAR") > (
        self._max_input_chars_per_word)
    words = words.with_flat_values(tf.where(too_long, self._unk_token, words.flat_values))
    return self._wordpiece.tokenize(words).merge_dims(1, 2)
