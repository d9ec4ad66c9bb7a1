"""The fast tokenizer paths as TensorFlow modules (tensorflow-text), exact to tokenization.py.

`FastWordpieceIds` reproduces Google's BasicTokenizer + WordpieceTokenizer in-graph and
`SentencePieceIds` runs a sentencepiece model in-graph; both map a string tensor [batch] to
ragged int64 ids [batch, None] and work inside tf.data and SavedModels. `for_tokenizer`
builds the one of a tokenization.FullTokenizer or SentencePieceTokenizer.
"""

import collections
import re
import unicodedata

import numpy as np
import tensorflow as tf
import tensorflow_text as tf_text

import tokenization
from tokenization import CJK_RANGES
from tokenization import SPECIAL_TOKENS
from tokenization import depends_on_context
from tokenization import is_chinese_char
from tokenization import is_reordering_mark
from tokenization import normalized_char


def for_tokenizer(tokenizer: tokenization.Tokenizer) -> tf.Module:
  """The in-graph tokenizer of `tokenizer`: string [batch] -> ragged int64 ids [batch, None].

  A FullTokenizer gives a FastWordpieceIds (see it for the tiny class of strings on which it
  may differ from `tokenize`), a SentencePieceTokenizer a SentencePieceIds.
  """
  if isinstance(tokenizer, tokenization.SentencePieceTokenizer):
    return SentencePieceIds(tokenizer.model_proto, tokenizer.do_lower_case)
  unk_token = tokenizer.wordpiece_tokenizer.unk_token
  if unk_token not in tokenizer.vocab:
    raise ValueError(f"{tokenizer.vocab_file}: the unknown token {unk_token!r} is not in the "
                     "vocabulary; the in-graph tokenizer needs it.")
  return FastWordpieceIds(
      tokenization.vocab_list(tokenizer.vocab), do_lower_case=tokenizer.do_lower_case,
      unk_token=unk_token,
      max_input_chars_per_word=tokenizer.wordpiece_tokenizer.max_input_chars_per_word)


# Blocks where tensorflow-text's FastBertTokenizer was checked, code point by code point, to
# agree with Google's algorithm once the exclusions of `_fast_bert_safe` are applied (and
# tests/test_tokenization.py re-checks every code point of the resulting class). Elsewhere it
# differs: it turns control characters into spaces instead of removing them, applies
# compatibility decompositions (NFKD: "…" -> "...", "½" -> "1/2"), case-folds instead of
# lower-casing ("ß" -> "ss"), and uses a newer Unicode version than Python.
_FAST_BERT_BLOCKS = ((0x00A0, 0x1FFF), (0x2010, 0x205E), (0x3040, 0x30FF), (0xAC00, 0xD7A3),
                     *CJK_RANGES)
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
    if char.lower() != char.casefold() or cp == 0x3A3 or is_reordering_mark(char):
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

  table: {char: normalized_char(char)} for every character the normalisation changes;
  python_only: compiled regex of the characters only the Python path handles exactly
    (tokenization.depends_on_context);
  python_only_chars: the same characters but the surrogates, as a tuple of str;
  fast_bert_class: RE2 character class of the characters FastBertTokenizer gets right.
  """
  if do_lower_case in _CHAR_TABLES_CACHE:
    return _CHAR_TABLES_CACHE[do_lower_case]
  category, decomposition = unicodedata.category, unicodedata.decomposition
  table, python_only, fast_bert = {}, [], []
  for cp in range(0x110000):
    if 0xD800 <= cp <= 0xDFFF:
      continue
    char = chr(cp)
    cat = category(char)
    is_chinese = is_chinese_char(cp)  # Google's ranges include a few unassigned points.
    if cat in ("Cn", "Co") and not is_chinese:  # Every step keeps these as they are.
      continue
    if is_chinese and not decomposition(char):  # The bulk: ~90k ideographs.
      table[char] = f" {char} "
      if cat != "Cn":  # What _fast_bert_safe would say, faster.
        fast_bert.append(char)
      continue
    canonical_decomposition = decomposition(char)[:1] not in ("", "<")
    # Only these can change; testing first saves most of the scan's time.
    may_change = (cp < 0x80 or cp == 0xFFFD or cat[0] in "CPZ" or char.isspace() or
                  is_chinese or (do_lower_case and (cat == "Mn" or char.lower() != char or
                                      canonical_decomposition or
                                      _HANGUL_SYLLABLES[0] <= cp <= _HANGUL_SYLLABLES[1])))
    normalized = normalized_char(char, do_lower_case) if may_change else char
    if normalized != char:
      table[char] = normalized
    if depends_on_context(char, do_lower_case):  # Surrogates are skipped: the regex adds them.
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
    generated from Google's own functions (`normalized_char`), whitespace split, the
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
