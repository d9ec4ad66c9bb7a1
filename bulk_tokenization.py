"""Bulk WordPiece ids for corpora, identical to tokenization.FullTokenizer, without TensorFlow.

tokenization.py imports TensorFlow, which costs seconds and ~650 MB per process: more than
create_pretraining_data.py spends on a whole 3 MB corpus. `WordPieceIds.encode_lines` is
Google's BasicTokenizer + WordpieceTokenizer recast for throughput: ASCII lines are lower-cased,
cleaned and split over a whole batch at once, each distinct whitespace token is tokenized once
and cached; lines with other characters use per-character tables learned as they appear.
tests/test_create_pretraining_data.py checks the ids against tokenization.FullTokenizer on Austen
and on random Unicode text, cased and uncased.
"""

import itertools
import re
import unicodedata

import numpy as np

# Printable ASCII punctuation, which Google's BasicTokenizer splits into tokens of its own.
_ASCII_PUNCTUATION = r"!-/:-@\[-`{-~"
_ASCII_WORD_ONLY = re.compile(f"[^ {_ASCII_PUNCTUATION}]+|[{_ASCII_PUNCTUATION}]")
# Google's _clean_text drops ASCII control characters (tab, newline and return are whitespace).
_ASCII_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_LINE_END = "\x00"  # Marks line ends in a batch; a control character, so never a token.
# Google's CJK ideograph blocks (split character by character).
_CJK = re.compile("([\u4e00-\u9fff\u3400-\u4dbf\U00020000-\U0002a6df\U0002a700-\U0002b73f"
                  "\U0002b740-\U0002b81f\U0002b820-\U0002ceaf\uf900-\ufaff\U0002f800-\U0002fa1f])")
_WORD_CACHE_LIMIT = 200_000  # Entries per process; bounds memory on huge vocabularies of words.
def load_vocab(vocab_file: str) -> dict[str, int]:
  """token -> id (line number) of a WordPiece vocab file, lines stripped as in Google's.

  Raises:
    ValueError when a token appears twice (as tokenization.load_vocab does).
  """
  with open(vocab_file, "r", encoding="utf-8") as reader:
    tokens = [line.strip() for line in reader]
  vocab = {token: index for index, token in enumerate(tokens)}
  if len(vocab) != len(tokens):  # Find the first repeated token to name it.
    seen = {}
    for index, token in enumerate(tokens):
      if token in seen and token:
        raise ValueError(f"{vocab_file}:{index + 1}: token {token!r} already appeared on line "
                         f"{seen[token] + 1}; a vocab file needs one distinct token per line.")
      seen[token] = index
  return vocab


class _UnicodeTables:
  """Per-character decisions for non-ASCII text, filled in as characters appear."""

  def __init__(self):
    self.clean = {0: None, 0xFFFD: None}  # str.translate table: dropped or -> " ".
    self.marks = {}  # Nonspacing marks, dropped after NFD when lower-casing.
    self.punctuation = []
    self.seen = set()
    self.word = _ASCII_WORD_ONLY

  def learn(self, text: str):
    new = set(text) - self.seen
    if not new:
      return
    self.seen |= new
    added_punctuation = False
    for char in new:
      cp, category = ord(char), unicodedata.category(char)
      if char in "\t\n\r" or category == "Zs":
        self.clean[cp] = " "
      elif category in ("Cc", "Cf"):
        self.clean[cp] = None
      if category == "Mn":
        self.marks[cp] = None
      if category.startswith("P") and cp > 127:
        self.punctuation.append(re.escape(char))
        added_punctuation = True
    if added_punctuation:
      punct_class = _ASCII_PUNCTUATION + "".join(self.punctuation)
      self.word = re.compile(f"[^{punct_class}]+|[{punct_class}]")


class _TokenIdCache(dict):
  """Whitespace-delimited ASCII token -> tuple of ids, computed on first lookup.

  A token such as "handsome," splits at punctuation into basic tokens, each WordPiece-tokenized.
  The line separator _LINE_END maps to () (real tokens always give at least one id).
  """

  def __init__(self, wordpiece, known_words):
    super().__init__(known_words)
    self[_LINE_END] = ()
    self._wordpiece = wordpiece

  def __missing__(self, token):
    if token.isalnum():  # No punctuation: the token is one word.
      ids = self[token] = self._wordpiece(token)
    else:
      ids = self[token] = tuple(itertools.chain.from_iterable(
          map(self._wordpiece, _ASCII_WORD_ONLY.findall(token))))
    return ids


class WordPieceIds:
  """Text lines -> WordPiece ids, identical to tokenization.FullTokenizer without TensorFlow.

  tokenization.py imports TensorFlow (seconds and ~650 MB per process), which would dominate
  this script's time and memory. This is Google's BasicTokenizer + WordpieceTokenizer recast
  for bulk text: ASCII lines are lower-cased, cleaned and split by one regex over the whole
  batch; other lines use per-character tables; each distinct word is WordPiece-tokenized once.
  tests/test_create_pretraining_data.py checks ids against tokenization.FullTokenizer.
  """

  def __init__(self, vocab: dict[str, int], do_lower_case: bool, unk_token: str = "[UNK]",
               max_input_chars_per_word: int = 200):
    self.vocab = vocab
    self.do_lower_case = do_lower_case
    self.unk_token = unk_token
    self.max_input_chars_per_word = max_input_chars_per_word
    # Every vocabulary entry made of ASCII letters and digits is its own single piece; knowing
    # them up front (inherited by forked workers) spares each worker most cache misses.
    self._known_words = {token: (index,) for token, index in vocab.items()
                         if token.isascii() and token.isalnum()}
    self._word_ids = dict(self._known_words)
    self._token_ids = _TokenIdCache(self._cached_wordpiece, self._known_words)
    self._unicode = _UnicodeTables()

  def _cached_wordpiece(self, word: str) -> tuple[int, ...]:
    ids = self._word_ids.get(word)
    if ids is None:
      ids = self._word_ids[word] = self._wordpiece(word)
    return ids

  def _wordpiece(self, word: str) -> tuple[int, ...]:
    """Greedy longest-match-first WordPiece of one basic token."""
    vocab = self.vocab
    if len(word) > self.max_input_chars_per_word:
      return (vocab[self.unk_token],)
    if word in vocab:
      return (vocab[word],)
    ids, start = [], 0
    while start < len(word):
      end = len(word)
      while start < end:
        piece = word[start:end] if start == 0 else "##" + word[start:end]
        if piece in vocab:
          ids.append(vocab[piece])
          break
        end -= 1
      else:
        return (vocab[self.unk_token],)
      start = end
    return tuple(ids)

  def _unicode_words(self, line: str) -> list[str]:
    """Google's BasicTokenizer.tokenize on any line."""
    tables = self._unicode
    tables.learn(line)
    text = _CJK.sub(r" \1 ", line.translate(tables.clean))
    words = []
    for token in text.split():
      if self.do_lower_case:
        token = token.lower()
        if not token.isascii():
          normalized = unicodedata.normalize("NFD", token)
          tables.learn(normalized)
          token = normalized.translate(tables.marks)
      words.extend(tables.word.findall(token))
    return words

  def encode_lines(self, lines: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Tokenizes lines that contain no "\n".

    Returns:
      (ids int32 [total], counts int64 [len(lines)]): every line's ids back to back, and how
      many each line has.
    """
    learned = len(self._word_ids) + len(self._token_ids) - 2 * len(self._known_words)
    if learned > _WORD_CACHE_LIMIT:
      self._word_ids = dict(self._known_words)
      self._token_ids = _TokenIdCache(self._cached_wordpiece, self._known_words)
    text = "\n".join(lines)
    all_ascii = text.isascii()
    if not all_ascii:
      is_ascii = [line.isascii() for line in lines]
      text = "\n".join(line if ascii_line else "" for line, ascii_line in zip(lines, is_ascii))
    if self.do_lower_case:
      text = text.lower()
    if _ASCII_CONTROL.search(text):
      text = _ASCII_CONTROL.sub("", text)
    # str.split() separates at space, tab and return (the rest of Python's whitespace set are
    # control characters, gone by now); punctuation splitting happens per distinct token.
    tokens = text.replace("\n", f" {_LINE_END} ").split()
    tokens.append(_LINE_END)
    token_ids = list(map(self._token_ids.__getitem__, tokens))
    token_counts = np.fromiter(map(len, token_ids), dtype=np.int64, count=len(token_ids))
    ids = np.fromiter(itertools.chain.from_iterable(token_ids), dtype=np.int32,
                      count=int(token_counts.sum()))
    line_ends = np.cumsum(token_counts)[token_counts == 0]
    counts = np.diff(line_ends, prepend=0)
    if all_ascii:
      return ids, counts
    # Lines with non-ASCII characters were left empty above; tokenize and splice them in.
    per_line = np.split(ids, line_ends[:-1])
    for index, ascii_line in enumerate(is_ascii):
      if not ascii_line:
        line_ids = list(itertools.chain.from_iterable(
            map(self._cached_wordpiece, self._unicode_words(lines[index]))))
        per_line[index] = np.asarray(line_ids, dtype=np.int32)
        counts[index] = len(line_ids)
    return np.concatenate(per_line) if per_line else ids, counts


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
