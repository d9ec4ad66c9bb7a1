"""Bulk WordPiece ids for corpora, identical to tokenization.FullTokenizer, without TensorFlow.

tokenization.FullTokenizer's exact path works text by text, and its fast batch path needs
TensorFlow, which costs seconds and ~650 MB per process: more than create_pretraining_data.py
spends on a whole 3 MB corpus. `WordPieceIds.encode_lines` is Google's BasicTokenizer +
WordpieceTokenizer recast for throughput: ASCII lines are lower-cased, cleaned and split over a
whole batch at once, each distinct whitespace token is tokenized once and cached; lines with
other characters use per-character tables learned as they appear. The character classes, the
CJK blocks and WordPiece itself are tokenization.py's (which imports TensorFlow only for its
fast path); what is here is how they are applied to a batch.
tests/test_create_pretraining_data.py checks the ids against tokenization.FullTokenizer on Austen
and on random Unicode text, cased and uncased.
"""

import itertools
import re
import unicodedata

import numpy as np

import tokenization

# tokenization's private character classes are the definitions this module must match.
# pylint: disable=protected-access


def _ascii_class(predicate) -> str:
  """The body of a regex character class: the ASCII characters for which predicate holds."""
  return "".join(re.escape(chr(cp)) for cp in range(128) if predicate(chr(cp)))


# Printable ASCII punctuation, which Google's BasicTokenizer splits into tokens of its own.
_ASCII_PUNCTUATION = _ascii_class(tokenization._is_punctuation)
_ASCII_WORD_ONLY = re.compile(f"[^ {_ASCII_PUNCTUATION}]+|[{_ASCII_PUNCTUATION}]")
# Google's _clean_text drops ASCII control characters (tab, newline and return are whitespace).
_ASCII_CONTROL = re.compile(f"[{_ascii_class(lambda char: not tokenization._cleaned_char(char))}]")
_LINE_END = "\x00"  # Marks line ends in a batch; a control character, so never a token.
# Google's CJK ideograph blocks (split character by character).
_CJK = re.compile("([" + "".join(f"{chr(low)}-{chr(high)}"
                                 for low, high in tokenization._CJK_RANGES) + "])")
_WORD_CACHE_LIMIT = 200_000  # Entries per process; bounds memory on huge vocabularies of words.


def load_vocab(vocab_file: str) -> dict[str, int]:
  """tokenization.load_vocab (Google's stripped lines; a repeated token is an error naming the
  file and lines) as a plain dict."""
  return dict(tokenization.load_vocab(vocab_file))


_NEVER = re.compile("(?!)")  # Matches nothing.


def _class_regex(chars: set[str]) -> re.Pattern:
  return re.compile("[" + "".join(re.escape(c) for c in sorted(chars)) + "]") if chars else _NEVER


class _UnicodeTables:
  """Google's per-character classes for any text, learned as characters appear.

  Each class is a regex over the characters seen so far (a regex scan is ~10x faster than
  str.translate with a dict on non-ASCII text).
  """

  def __init__(self):
    self.dropped = set()  # NUL, U+FFFD and control characters: tokenization._cleaned_char "".
    self.spaces = set()  # Whitespace other than " " and the "\n" between lines: -> " ".
    self.marks = set()  # Nonspacing marks, dropped after NFD when lower-casing.
    self.punctuation = set()  # Beyond ASCII's.
    self.seen = set()
    self._compile()

  def _compile(self):
    self.dropped_regex = _class_regex(self.dropped)
    self.spaces_regex = _class_regex(self.spaces)
    self.marks_regex = _class_regex(self.marks)
    punct_class = _ASCII_PUNCTUATION + "".join(re.escape(c) for c in sorted(self.punctuation))
    self.word = re.compile(f"[^{punct_class}]+|[{punct_class}]")

  def learn(self, text: str):
    new = set(text) - self.seen
    if not new:
      return
    self.seen |= new
    for char in new:
      if char in " \n":
        continue  # "\n" only ever separates the lines of a batch.
      cleaned = tokenization._cleaned_char(char)
      if cleaned == " ":
        self.spaces.add(char)
      elif not cleaned:
        self.dropped.add(char)
      if unicodedata.category(char) == "Mn":  # As tokenization's _run_strip_accents.
        self.marks.add(char)
      if ord(char) > 127 and tokenization._is_punctuation(char):
        self.punctuation.add(char)
    self._compile()


class _TokenIdCache(dict):
  """Whitespace-delimited ASCII token -> tuple of ids, computed on first lookup.

  A token such as "handsome," splits at punctuation into basic tokens, each WordPiece-tokenized.
  The line separator _LINE_END maps to () (real tokens always give at least one id).
  """

  def __init__(self, wordpiece, known_words, split_punctuation):
    super().__init__(known_words)
    self[_LINE_END] = ()
    self._wordpiece = wordpiece
    self._split_punctuation = split_punctuation

  def __missing__(self, token):
    if token.isalnum():  # No punctuation: the token is one word.
      ids = self[token] = self._wordpiece(token)
    else:
      ids = self[token] = tuple(itertools.chain.from_iterable(
          map(self._wordpiece, self._split_punctuation(token))))
    return ids


class WordPieceIds:
  """Text lines -> WordPiece ids, identical to tokenization.FullTokenizer without TensorFlow.

  FullTokenizer's fast path imports TensorFlow (seconds and ~650 MB per process), which would
  dominate create_pretraining_data's time and memory. This is Google's BasicTokenizer +
  WordpieceTokenizer recast for bulk text: ASCII lines are lower-cased, cleaned and split by one
  regex over the whole batch; other lines use per-character tables; each distinct word is
  WordPiece-tokenized once, by tokenization.WordpieceTokenizer.
  tests/test_create_pretraining_data.py checks ids against tokenization.FullTokenizer.
  """

  def __init__(self, vocab: dict[str, int], do_lower_case: bool, unk_token: str = "[UNK]",
               max_input_chars_per_word: int = 200):
    self.vocab = vocab
    self.do_lower_case = do_lower_case
    self._wordpiece_tokenizer = tokenization.WordpieceTokenizer(vocab, unk_token,
                                                                max_input_chars_per_word)
    # Every vocabulary entry made of ASCII letters and digits is its own single piece; knowing
    # them up front (inherited by forked workers) spares each worker most cache misses.
    self._known_words = {token: (index,) for token, index in vocab.items()
                         if token.isascii() and token.isalnum()}
    self._unicode = _UnicodeTables()
    self._new_caches()

  def _new_caches(self):
    self._word_ids = dict(self._known_words)
    self._ascii_token_ids = _TokenIdCache(self._cached_wordpiece, self._known_words,
                                          _ASCII_WORD_ONLY.findall)
    # Punctuation outside ASCII is learned as it appears, so look the current regex up.
    self._unicode_token_ids = _TokenIdCache(self._cached_wordpiece, self._known_words,
                                            lambda token: self._unicode.word.findall(token))

  def _cached_wordpiece(self, word: str) -> tuple[int, ...]:
    ids = self._word_ids.get(word)
    if ids is None:
      ids = self._word_ids[word] = self._wordpiece(word)
    return ids

  def _wordpiece(self, word: str) -> tuple[int, ...]:
    """Google's greedy longest-match-first WordPiece of one basic token, as ids."""
    return tuple(map(self.vocab.__getitem__, self._wordpiece_tokenizer.tokenize(word)))

  def _clean_ascii(self, text: str) -> str:
    """Google's BasicTokenizer up to the punctuation split, on ASCII text."""
    if self.do_lower_case:
      text = text.lower()
    if _ASCII_CONTROL.search(text):
      text = _ASCII_CONTROL.sub("", text)
    return text

  def _clean_unicode(self, text: str) -> str:
    """Google's BasicTokenizer up to the punctuation split, on any text.

    Google lower-cases and strips accents token by token; doing it on the whole text gives the
    same tokens (neither operation looks across whitespace).
    """
    tables = self._unicode
    tables.learn(text)
    text = tables.spaces_regex.sub(" ", tables.dropped_regex.sub("", text))
    text = _CJK.sub(r" \1 ", text)
    if self.do_lower_case:
      text = text.lower()
      if not text.isascii():
        text = unicodedata.normalize("NFD", text)
        tables.learn(text)
        text = tables.marks_regex.sub("", text)
    return text

  @staticmethod
  def _encode_text(text: str, token_ids: _TokenIdCache) -> tuple[np.ndarray, np.ndarray]:
    """Ids of cleaned lines joined by "\n": (ids int32 [total], counts int64 [lines])."""
    # str.split() is Google's whitespace_tokenize; punctuation splitting happens once per
    # distinct token, in the cache.
    tokens = text.replace("\n", f" {_LINE_END} ").split()
    tokens.append(_LINE_END)
    per_token = list(map(token_ids.__getitem__, tokens))
    token_counts = np.fromiter(map(len, per_token), dtype=np.int64, count=len(per_token))
    ids = np.fromiter(itertools.chain.from_iterable(per_token), dtype=np.int32,
                      count=int(token_counts.sum()))
    line_ends = np.cumsum(token_counts)[token_counts == 0]  # _LINE_END has no ids.
    return ids, np.diff(line_ends, prepend=0)

  def encode_lines(self, lines: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Tokenizes lines that contain no "\n".

    Returns:
      (ids int32 [total], counts int64 [len(lines)]): every line's ids back to back, and how
      many each line has.
    """
    learned = (len(self._word_ids) + len(self._ascii_token_ids) + len(self._unicode_token_ids)
               - 3 * len(self._known_words))
    if learned > _WORD_CACHE_LIMIT:
      self._new_caches()
    if not lines:
      return np.zeros(0, np.int32), np.zeros(0, np.int64)
    text = "\n".join(lines)
    if text.isascii():
      return self._encode_text(self._clean_ascii(text), self._ascii_token_ids)
    # ASCII lines and the others go through separate batches, then interleave back.
    is_ascii = np.fromiter(map(str.isascii, lines), dtype=bool, count=len(lines))
    counts = np.zeros(len(lines), dtype=np.int64)
    source_start = np.zeros(len(lines), dtype=np.int64)
    parts, offset = [], 0
    for mask, clean, cache in ((is_ascii, self._clean_ascii, self._ascii_token_ids),
                               (~is_ascii, self._clean_unicode, self._unicode_token_ids)):
      if not mask.any():
        continue
      text = "\n".join(line for line, keep in zip(lines, mask.tolist()) if keep)
      ids, part_counts = self._encode_text(clean(text), cache)
      counts[mask] = part_counts
      source_start[mask] = offset + np.cumsum(part_counts) - part_counts
      parts.append(ids)
      offset += len(ids)
    output_start = np.cumsum(counts) - counts
    index = np.repeat(source_start - output_start, counts) + np.arange(offset)
    return np.concatenate(parts)[index], counts


class BatchTokenizerIds:
  """Any tokenizer with `tokenize_to_ids(lines)` and `vocab` (e.g. SentencePieceTokenizer)."""

  def __init__(self, tokenizer):
    self.vocab = tokenizer.vocab
    self._tokenizer = tokenizer

  def encode_lines(self, lines: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """(ids int32 [total], counts int64 [len(lines)]), as WordPieceIds.encode_lines."""
    per_line = self._tokenizer.tokenize_to_ids(lines)
    counts = np.fromiter(map(len, per_line), dtype=np.int64, count=len(per_line))
    ids = np.fromiter(itertools.chain.from_iterable(per_line), dtype=np.int32,
                      count=int(counts.sum()))
    return ids, counts
