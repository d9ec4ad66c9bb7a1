"""SQuAD v1.1 / v2.0 pre-processing for run_squad.py: examples, sliding-window features.

The format and algorithms are Google's run_squad.py, re-implemented:

* `read_squad_examples`: the context is split on whitespace into `doc_tokens`, with a
  char -> word map that turns the gold `answer_start` into word positions. When the gold text
  cannot be found in the words it maps to, the question is skipped with a warning and counted.
* `convert_examples_to_features`: WordPiece sub-tokens keep a map back to their original word;
  documents longer than the window are cut into windows `doc_stride` sub-tokens apart; every
  sub-token records whether this window gives it its maximum context; training targets point
  at [CLS] (position 0) when the answer is outside the window or the question is unanswerable.

Postprocessing (n-best spans, final text, v2.0 null scores, EM/F1) lives in
bert/squad_predictions.py and is re-exported here, so run_squad.py needs only this module.
"""
import collections
import dataclasses
import logging
from collections.abc import Callable
from collections.abc import Iterable
from collections.abc import Iterator
from collections.abc import Sequence

import numpy as np

from bert import files

logger = logging.getLogger(__name__)

# Google's run_squad starts unique ids here so they never collide with example indices.
FIRST_UNIQUE_ID = 1000000000


@dataclasses.dataclass
class SquadExample:
  """One question with its whitespace-tokenised context.

  start_position/end_position are inclusive indices into doc_tokens (training only; -1 for
  an unanswerable question, None at prediction time). Examples of the same paragraph share
  one doc_tokens list.
  """
  qas_id: str
  question_text: str
  doc_tokens: list
  orig_answer_text: str | None = None
  start_position: int | None = None
  end_position: int | None = None
  is_impossible: bool = False


@dataclasses.dataclass
class InputFeatures:
  """One window of one example, ready for the model.

  tokens: [CLS] query [SEP] window [SEP] as strings (no padding); input_ids, input_mask,
  segment_ids: int lists of length max_seq_length. token_to_orig_map / token_is_max_context
  are keyed by the position in `tokens` of each document sub-token. start_position and
  end_position index `tokens` (training only; 0 means [CLS]).
  """
  unique_id: int
  example_index: int
  doc_span_index: int
  tokens: list
  token_to_orig_map: dict
  token_is_max_context: dict
  input_ids: list
  input_mask: list
  segment_ids: list
  start_position: int | None = None
  end_position: int | None = None
  is_impossible: bool = False


DocSpan = collections.namedtuple("DocSpan", ["start", "length"])


def _is_whitespace(char: str) -> bool:
  # U+202F (narrow no-break space) occurs in SQuAD contexts; Google treats it as a separator.
  return char in (" ", "\t", "\r", "\n") or ord(char) == 0x202F


def split_on_whitespace(text: str) -> tuple[list, list]:
  """Whitespace-split words of `text` and the word index of every character.

  Returns:
    (doc_tokens, char_to_word_offset): char_to_word_offset[i] is the index in doc_tokens of
    the word holding character i (whitespace maps to the preceding word, -1 before the first).
  """
  doc_tokens, char_to_word_offset = [], []
  previous_is_whitespace = True
  for char in text:
    if _is_whitespace(char):
      previous_is_whitespace = True
    else:
      if previous_is_whitespace:
        doc_tokens.append(char)
      else:
        doc_tokens[-1] += char
      previous_is_whitespace = False
    char_to_word_offset.append(len(doc_tokens) - 1)
  return doc_tokens, char_to_word_offset


def load_squad_json(input_file: str) -> list:
  """The "data" list of a SQuAD JSON file, with errors naming the file."""
  squad = files.load_json(input_file, "SQuAD", dict)
  if not isinstance(squad.get("data"), list):
    raise ValueError(f"{input_file}: expected SQuAD JSON {{\"version\": ..., \"data\": "
                     f"[{{\"paragraphs\": [{{\"context\": ..., \"qas\": [...]}}]}}]}}")
  return squad["data"]


def read_squad_examples(input_file: str, is_training: bool,
                        version_2_with_negative: bool = False):
  """Reads a SQuAD JSON file into SquadExamples.

  Args:
    input_file: SQuAD v1.1 or v2.0 JSON.
    is_training: compute answer word positions (each answerable question must then have
      exactly one answer, as in the SQuAD training files).
    version_2_with_negative: read `is_impossible` (SQuAD v2.0).

  Returns:
    (examples, num_skipped): the examples, and how many training questions were skipped
    because their gold answer text was not found where answer_start points.
  """
  dataset = load_squad_json(input_file)
  examples, num_skipped = [], 0
  for article in dataset:
    for paragraph in article.get("paragraphs", []):
      try:
        context = paragraph["context"]
        questions = paragraph["qas"]
      except KeyError as e:
        raise ValueError(f"{input_file}: a paragraph of {article.get('title', '?')!r} has no "
                         f"{e.args[0]!r} key (expected \"context\" and \"qas\")") from None
      doc_tokens, char_to_word_offset = split_on_whitespace(context)
      for qa in questions:
        try:
          example = _read_question(qa, doc_tokens, char_to_word_offset, is_training,
                                   version_2_with_negative)
        except KeyError as e:
          raise ValueError(f"{input_file}: question {qa.get('id', '?')!r} has no "
                           f"{e.args[0]!r} key") from None
        except _BadQuestion as e:
          raise ValueError(f"{input_file}: question {qa['id']!r}: {e}") from None
        if example is None:
          num_skipped += 1
          continue
        examples.append(example)
  if num_skipped:
    logger.warning("%s: skipped %d of %d training questions whose answer was not found in "
                   "the context", input_file, num_skipped, num_skipped + len(examples))
  return examples, num_skipped


class _BadQuestion(ValueError):
  pass


def _read_question(qa, doc_tokens, char_to_word_offset, is_training, version_2_with_negative):
  """One SquadExample, or None when the training answer is not found in the context."""
  is_impossible = bool(qa.get("is_impossible", False)) if version_2_with_negative else False
  example = SquadExample(qas_id=qa["id"], question_text=qa["question"],
                         doc_tokens=doc_tokens, is_impossible=is_impossible)
  if not is_training:
    return example
  if is_impossible:
    example.start_position, example.end_position, example.orig_answer_text = -1, -1, ""
    return example
  answers = qa["answers"]
  if len(answers) != 1:
    raise _BadQuestion(f"for training, each question should have exactly 1 answer, found "
                       f"{len(answers)}")
  answer_text = answers[0]["text"]
  answer_offset = answers[0]["answer_start"]
  answer_end = answer_offset + len(answer_text) - 1
  if not answer_text or answer_offset < 0 or answer_end >= len(char_to_word_offset):
    logger.warning("Could not find answer of %s: answer_start %d, text %r is outside the "
                   "context", qa["id"], answer_offset, answer_text)
    return None
  start_position = char_to_word_offset[answer_offset]
  end_position = char_to_word_offset[answer_end]
  actual_text = " ".join(doc_tokens[start_position:end_position + 1])
  cleaned_answer_text = " ".join(answer_text.split())
  if actual_text.find(cleaned_answer_text) == -1:
    logger.warning("Could not find answer of %s: %r vs. %r", qa["id"], actual_text,
                   cleaned_answer_text)
    return None
  example.orig_answer_text = answer_text
  example.start_position, example.end_position = start_position, end_position
  return example


class _WordPieces:
  """WordPiece sub-tokens and ids of paragraphs and questions, one batch per chunk.

  Examples of one paragraph share its word list, so each paragraph is tokenised once. With
  `batched` the tokenizer's `tokenize_to_ids` tokenises a whole chunk of paragraphs in one
  call (ids identical to tokenize + convert_tokens_to_ids by contract) and inv_vocab gives
  the tokens back; otherwise Google's word-by-word `tokenize`.
  """

  def __init__(self, tokenizer, batched: bool):
    self._tokenizer = tokenizer
    self._batched = batched
    self._paragraphs = {}  # id(doc_tokens) -> (doc_tokens, tokenised paragraph).
    self._questions = {}  # question text -> (tokens, ids).

  def _tokens_and_ids(self, texts: list) -> list:
    if self._batched:
      inv_vocab = self._tokenizer.inv_vocab
      ids_per_text = [list(ids) for ids in self._tokenizer.tokenize_to_ids(texts)]
      return [([inv_vocab[i] for i in ids], ids) for ids in ids_per_text]
    result = []
    for text in texts:
      tokens = self._tokenizer.tokenize(text)
      result.append((tokens, self._tokenizer.convert_tokens_to_ids(tokens)))
    return result

  def prepare(self, examples: Sequence[SquadExample]) -> None:
    """Tokenises the paragraphs and questions of `examples`, forgetting earlier ones."""
    paragraphs = {}
    for example in examples:
      paragraphs.setdefault(id(example.doc_tokens), example.doc_tokens)
    words = [word for doc_tokens in paragraphs.values() for word in doc_tokens]
    questions = list(dict.fromkeys(e.question_text for e in examples))
    tokenised = self._tokens_and_ids(words + questions) if words or questions else []
    self._questions = dict(zip(questions, tokenised[len(words):]))
    self._paragraphs, position = {}, 0
    for key, doc_tokens in paragraphs.items():
      all_doc_tokens, all_doc_ids, tok_to_orig_index, orig_to_tok_index = [], [], [], []
      for word_index, (sub_tokens, ids) in enumerate(
          tokenised[position:position + len(doc_tokens)]):
        orig_to_tok_index.append(len(all_doc_tokens))
        all_doc_tokens.extend(sub_tokens)
        all_doc_ids.extend(ids)
        tok_to_orig_index.extend([word_index] * len(sub_tokens))
      position += len(doc_tokens)
      self._paragraphs[key] = (doc_tokens, (all_doc_tokens, all_doc_ids, tok_to_orig_index,
                                            orig_to_tok_index))

  def paragraph(self, doc_tokens: list):
    """(all_doc_tokens, all_doc_ids, tok_to_orig_index, orig_to_tok_index) of the words."""
    return self._paragraphs[id(doc_tokens)][1]

  def question(self, question_text: str):
    """(tokens, ids) of the question."""
    return self._questions[question_text]


def improve_answer_span(doc_tokens: Sequence[str], input_start: int, input_end: int,
                        tokenizer, orig_answer_text: str) -> tuple[int, int]:
  """The tightest sub-token span inside [input_start, input_end] matching the answer.

  The word-level span can be too wide: for the answer "1895" in "(1895-1943)." the word maps
  to sub-tokens ( 1895 - 1943 ) . and the answer is only the second one.
  """
  tokenized_answer = " ".join(tokenizer.tokenize(orig_answer_text))
  for new_start in range(input_start, input_end + 1):
    for new_end in range(input_end, new_start - 1, -1):
      if " ".join(doc_tokens[new_start:new_end + 1]) == tokenized_answer:
        return new_start, new_end
  return input_start, input_end


def make_doc_spans(num_doc_tokens: int, max_tokens_for_doc: int, doc_stride: int) -> list:
  """Windows of at most max_tokens_for_doc sub-tokens, starting doc_stride apart.

  The last window ends at the end of the document; windows never start past it.
  """
  doc_spans, start_offset = [], 0
  while start_offset < num_doc_tokens:
    length = min(num_doc_tokens - start_offset, max_tokens_for_doc)
    doc_spans.append(DocSpan(start=start_offset, length=length))
    if start_offset + length == num_doc_tokens:
      break
    start_offset += min(length, doc_stride)
  return doc_spans


def check_is_max_context(doc_spans: Sequence[DocSpan], cur_span_index: int,
                         position: int) -> bool:
  """Whether window cur_span_index gives sub-token `position` its maximum context.

  A token's context in a window is min(tokens to its left, tokens to its right) in that
  window, plus 0.01 * window length to break ties in favour of longer windows; the first
  window with the best score wins.
  """
  best_score, best_span_index = None, None
  for span_index, doc_span in enumerate(doc_spans):
    end = doc_span.start + doc_span.length - 1
    if position < doc_span.start or position > end:
      continue
    score = min(position - doc_span.start, end - position) + 0.01 * doc_span.length
    if best_score is None or score > best_score:
      best_score, best_span_index = score, span_index
  return cur_span_index == best_span_index


def max_context_flags(doc_spans: Sequence[DocSpan], num_doc_tokens: int) -> np.ndarray:
  """check_is_max_context for every window and sub-token at once.

  Returns:
    bool [num_windows, num_doc_tokens]: [i, p] is check_is_max_context(doc_spans, i, p)
    (False where the window does not hold p). Ties go to the first window, as there.
  """
  starts = np.array([span.start for span in doc_spans], np.int64)[:, None]
  lengths = np.array([span.length for span in doc_spans], np.int64)[:, None]
  ends = starts + lengths - 1
  positions = np.arange(num_doc_tokens)[None, :]
  scores = np.minimum(positions - starts, ends - positions) + 0.01 * lengths
  scores = np.where((positions >= starts) & (positions <= ends), scores, -np.inf)
  best_window = np.argmax(scores, axis=0)  # The first maximum, like Google's strict ">".
  return best_window[None, :] == np.arange(len(doc_spans))[:, None]


def convert_examples_to_features(examples: Sequence[SquadExample], tokenizer,
                                 max_seq_length: int, doc_stride: int, max_query_length: int,
                                 is_training: bool,
                                 output_fn: Callable[[InputFeatures], None] | None = None,
                                 batched_tokenization: bool = True,
                                 chunk_size: int = 1024) -> Iterator[InputFeatures]:
  """Yields the InputFeatures of every window of every example, in order.

  Each window holds [CLS] query [SEP] doc window [SEP]; the query is cut to max_query_length
  sub-tokens and the window takes the rest of max_seq_length. Unique ids count up from
  FIRST_UNIQUE_ID. If output_fn is given it is called on each feature too (Google's hook).
  Text is tokenised chunk_size examples at a time, through the tokenizer's batch path
  tokenize_to_ids unless batched_tokenization is False (same features either way).

  Raises:
    ValueError: when max_seq_length leaves no room for document tokens.
  """
  max_tokens_for_doc = max_seq_length - min(max_query_length, max_seq_length) - 3
  if max_tokens_for_doc <= 0 or doc_stride <= 0:
    raise ValueError(f"max_seq_length={max_seq_length} with max_query_length="
                     f"{max_query_length} leaves {max_tokens_for_doc} document tokens and "
                     f"doc_stride={doc_stride}: both must be positive")
  word_pieces = _WordPieces(tokenizer, batched_tokenization)
  cls_id, sep_id = tokenizer.convert_tokens_to_ids(["[CLS]", "[SEP]"])
  unique_id = FIRST_UNIQUE_ID
  for example_index, example in enumerate(examples):
    if example_index % chunk_size == 0:
      word_pieces.prepare(examples[example_index:example_index + chunk_size])
    query_tokens, query_ids = word_pieces.question(example.question_text)
    query_tokens, query_ids = query_tokens[:max_query_length], query_ids[:max_query_length]
    all_doc_tokens, all_doc_ids, tok_to_orig_index, orig_to_tok_index = (
        word_pieces.paragraph(example.doc_tokens))

    tok_start_position = tok_end_position = None
    if is_training and example.is_impossible:
      tok_start_position = tok_end_position = -1
    elif is_training:
      tok_start_position = orig_to_tok_index[example.start_position]
      if example.end_position < len(example.doc_tokens) - 1:
        tok_end_position = orig_to_tok_index[example.end_position + 1] - 1
      else:
        tok_end_position = len(all_doc_tokens) - 1
      tok_start_position, tok_end_position = improve_answer_span(
          all_doc_tokens, tok_start_position, tok_end_position, tokenizer,
          example.orig_answer_text)

    max_tokens_for_doc = max_seq_length - len(query_tokens) - 3
    doc_spans = make_doc_spans(len(all_doc_tokens), max_tokens_for_doc, doc_stride)
    doc_offset = len(query_tokens) + 2  # [CLS] query [SEP]
    is_max_context = max_context_flags(doc_spans, len(all_doc_tokens)) if doc_spans else None
    for doc_span_index, doc_span in enumerate(doc_spans):
      window = range(doc_span.start, doc_span.start + doc_span.length)
      tokens = ["[CLS]"] + query_tokens + ["[SEP]"] + [all_doc_tokens[i] for i in window]
      tokens.append("[SEP]")
      token_to_orig_map = {doc_offset + j: tok_to_orig_index[i] for j, i in enumerate(window)}
      token_is_max_context = dict(zip(
          range(doc_offset, doc_offset + doc_span.length),
          is_max_context[doc_span_index, doc_span.start:doc_span.start + doc_span.length]
          .tolist()))
      input_ids = ([cls_id] + query_ids + [sep_id]
                   + all_doc_ids[doc_span.start:doc_span.start + doc_span.length] + [sep_id])
      segment_ids = [0] * doc_offset + [1] * (doc_span.length + 1)
      num_padding = max_seq_length - len(input_ids)
      input_mask = [1] * len(input_ids) + [0] * num_padding
      input_ids = input_ids + [0] * num_padding
      segment_ids = segment_ids + [0] * num_padding

      start_position = end_position = None
      if is_training and example.is_impossible:
        start_position = end_position = 0
      elif is_training:
        doc_end = doc_span.start + doc_span.length - 1
        if tok_start_position >= doc_span.start and tok_end_position <= doc_end:
          start_position = tok_start_position - doc_span.start + doc_offset
          end_position = tok_end_position - doc_span.start + doc_offset
        else:  # The answer is not entirely in this window: point at [CLS].
          start_position = end_position = 0

      feature = InputFeatures(
          unique_id=unique_id, example_index=example_index, doc_span_index=doc_span_index,
          tokens=tokens, token_to_orig_map=token_to_orig_map,
          token_is_max_context=token_is_max_context, input_ids=input_ids,
          input_mask=input_mask, segment_ids=segment_ids, start_position=start_position,
          end_position=end_position, is_impossible=example.is_impossible)
      if output_fn is not None:
        output_fn(feature)
      yield feature
      unique_id += 1


def features_to_arrays(features: Iterable[InputFeatures], is_training: bool) -> dict:
  """Stacks features into numpy arrays, the model's input dict.

  Returns:
    {"unique_ids": int64 [n], "input_ids", "input_mask", "segment_ids": int32 [n, seq]} and,
    when is_training, "start_positions", "end_positions" (int32 [n]) and "is_impossible"
    (int32 [n]).
  """
  features = list(features)
  arrays = {
      "unique_ids": np.array([f.unique_id for f in features], dtype=np.int64),
      "input_ids": np.array([f.input_ids for f in features], dtype=np.int32),
      "input_mask": np.array([f.input_mask for f in features], dtype=np.int32),
      "segment_ids": np.array([f.segment_ids for f in features], dtype=np.int32),
  }
  if is_training:
    arrays["start_positions"] = np.array([f.start_position for f in features], np.int32)
    arrays["end_positions"] = np.array([f.end_position for f in features], np.int32)
    arrays["is_impossible"] = np.array([int(f.is_impossible) for f in features], np.int32)
  return arrays
