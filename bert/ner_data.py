"""CoNLL-2003 token classification data for run_ner.py: reading, windows, entity metrics.

* `read_conll`: one `token ... tag` line per word (whitespace-separated columns; which column
  holds the token and which the tag is configurable), blank lines between sentences,
  `-DOCSTART-` lines mark a new document and are not words. Every word keeps its file line,
  so errors (too few columns, a tag outside the label list) name the file and the line.
* `convert_sentences_to_features`: each word is WordPiece-tokenised on its own; its label
  goes on its first piece, the other pieces get weight 0 in the loss (as GluonNLP and Hugging
  Face do). A sentence longer than max_seq_length - 2 pieces is cut into windows doc_stride
  pieces apart (squad_data.make_doc_spans), so no word is lost; each word is predicted by the
  window that gives its first piece the most context (squad_data's max-context rule: the
  largest min(pieces to the left, pieces to the right), ties to the longer, then the first
  window). Training uses the labels of every window.
* `entity_scores`: entity-level precision / recall / F1, micro-averaged and per type, with
  the entities read from BIO / IOB1 / IOBES tags exactly as seqeval's default (conlleval)
  mode does: `get_entities`.
"""
import collections
import dataclasses
import re
from collections.abc import Sequence

import numpy as np

from bert import squad_data

DOCSTART = "-DOCSTART-"
# Tags that carry an entity: a B/I/E/S prefix, a dash, a type ("B-PER", "S-MISC"); or "O".
_ENTITY_TAG = re.compile(r"^[BIES]-.+$")


@dataclasses.dataclass
class Sentence:
  """One sentence of a CoNLL file.

  words, labels: str per word; line_numbers: the 1-based file line of each word;
  starts_document: a -DOCSTART- line came before it (kept when writing predictions back).
  """
  words: list
  labels: list
  line_numbers: list
  starts_document: bool = False


# ------------------------------------------------------------------------------ reading

def _column_indices(num_columns: int, token_column: int, label_column: int):
  """(token index, label index) in a row of num_columns, or None when the row is too short
  (a negative column counts from the end; the two must be different columns)."""
  token = token_column if token_column >= 0 else num_columns + token_column
  label = label_column if label_column >= 0 else num_columns + label_column
  if not (0 <= token < num_columns and 0 <= label < num_columns) or token == label:
    return None
  return token, label


def read_conll(path: str, token_column: int = 0, label_column: int = -1) -> list:
  """Reads a CoNLL file into Sentences.

  Args:
    path: UTF-8 text, one `token ... tag` line per word, blank lines between sentences.
    token_column, label_column: 0-based columns of the word and of its tag (negative: from
      the end; default: first and last, which fits CoNLL-2003's `word POS chunk NER`).
  Raises:
    ValueError naming the file and the line: a row too short for both columns, bytes that
      are not UTF-8.
  """
  sentences = []
  words, labels, line_numbers = [], [], []
  starts_document = False

  def end_sentence():
    nonlocal words, labels, line_numbers, starts_document
    if words:
      sentences.append(Sentence(words, labels, line_numbers, starts_document))
      starts_document = False
    words, labels, line_numbers = [], [], []

  with open(path, "rb") as f:
    for line_number, raw in enumerate(f, start=1):
      try:
        line = raw.decode("utf-8")
      except UnicodeDecodeError as e:
        raise ValueError(f"{path}:{line_number}: not UTF-8 ({e.reason} at byte "
                         f"{e.start})") from None
      columns = line.split()
      if not columns:
        end_sentence()
        continue
      if columns[0] == DOCSTART:
        end_sentence()
        starts_document = True
        continue
      indices = _column_indices(len(columns), token_column, label_column)
      if indices is None:
        raise ValueError(
            f"{path}:{line_number}: expected whitespace-separated columns with the token in "
            f"column {token_column} and the tag in column {label_column}, found "
            f"{len(columns)} column(s): {line.rstrip()!r}")
      words.append(columns[indices[0]])
      labels.append(columns[indices[1]])
      line_numbers.append(line_number)
  end_sentence()
  return sentences


def label_list_from(sentences: Sequence[Sentence]) -> list:
  """The sorted distinct tags of the sentences (deterministic whatever the order)."""
  return sorted({label for sentence in sentences for label in sentence.labels})


def check_labels(sentences: Sequence[Sentence], label_list: Sequence[str], path: str,
                 label_source: str) -> None:
  """Raises ValueError naming path and line at the first tag not in label_list."""
  known = set(label_list)
  for sentence in sentences:
    for label, line_number in zip(sentence.labels, sentence.line_numbers):
      if label not in known:
        raise ValueError(f"{path}:{line_number}: tag {label!r} is not in the label list "
                         f"{list(label_list)} ({label_source})")


def write_label_list(path: str, label_list: Sequence[str]) -> None:
  """One tag per line, in label-id order."""
  with open(path, "w", encoding="utf-8") as f:
    f.write("".join(f"{label}\n" for label in label_list))


def read_label_list(path: str) -> list:
  """The tags of write_label_list's file, in label-id order."""
  try:
    with open(path, encoding="utf-8") as f:
      labels = [line.strip() for line in f]
  except FileNotFoundError:
    raise FileNotFoundError(f"label list not found: {path} (run_ner.py writes it into "
                            "--output_dir when training)") from None
  labels = [label for label in labels if label]
  if not labels or len(set(labels)) != len(labels):
    raise ValueError(f"{path}: expected one distinct tag per line, got {labels}")
  return labels


def write_conll_predictions(path: str, sentences: Sequence[Sentence],
                            predicted: Sequence[Sequence[str]]) -> None:
  """CoNLL lines `token gold predicted` (conlleval's input), a blank line after each
  sentence, and `-DOCSTART- O O` where the input had document markers."""
  with open(path, "w", encoding="utf-8") as f:
    for sentence, tags in zip(sentences, predicted):
      if sentence.starts_document:
        f.write(f"{DOCSTART} O O\n\n")
      for word, gold, tag in zip(sentence.words, sentence.labels, tags):
        f.write(f"{word} {gold} {tag}\n")
      f.write("\n")


# ----------------------------------------------------------------------------- features

# From this many words on, the tokenizer's batch path (tokenize_to_ids, same ids by contract)
# is used: its one-time graph build costs seconds, which pays off only on large files.
BATCH_TOKENIZATION_MIN_WORDS = 20000


def word_piece_ids(sentences: Sequence[Sentence], tokenizer) -> list:
  """The WordPiece ids of every word: list (per sentence) of lists (per word) of int lists.

  Words are tokenised one by one (as split in the file); large inputs go in one batch
  through the tokenizer's tokenize_to_ids. A word that tokenises to nothing
  (e.g. only control characters) becomes [UNK], so that every word has a first piece.
  """
  words = [word for sentence in sentences for word in sentence.words]
  if len(words) >= BATCH_TOKENIZATION_MIN_WORDS:
    ids = [list(piece_ids) for piece_ids in tokenizer.tokenize_to_ids(words)]
  else:
    ids = [tokenizer.convert_tokens_to_ids(tokenizer.tokenize(word)) for word in words]
  unk_id = tokenizer.convert_tokens_to_ids(["[UNK]"])[0]
  ids = [piece_ids or [unk_id] for piece_ids in ids]
  per_sentence, position = [], 0
  for sentence in sentences:
    per_sentence.append(ids[position:position + len(sentence.words)])
    position += len(sentence.words)
  return per_sentence


def convert_sentences_to_features(sentences: Sequence[Sentence], label_list: Sequence[str],
                                  tokenizer, max_seq_length: int, doc_stride: int) -> dict:
  """The windows of every sentence, as numpy arrays for the model (see the module doc).

  Each window is [CLS] pieces [SEP], padded with 0 to max_seq_length.

  Returns:
    {"input_ids", "input_mask", "segment_ids": int32 [n, max_seq_length];
     "label_ids": int32 [n, max_seq_length], the tag index on first pieces, 0 elsewhere;
     "label_weights": float32 [n, max_seq_length], 1.0 on first pieces, 0.0 elsewhere;
     "word_index": int32 [n, max_seq_length], the index in its sentence of the word this
       position predicts (first pieces in the window of most context), -1 elsewhere;
     "sentence_index": int32 [n]}
  Raises:
    ValueError: max_seq_length < 3 or doc_stride < 1.
  """
  max_pieces = max_seq_length - 2
  if max_pieces < 1 or doc_stride < 1:
    raise ValueError(f"max_seq_length={max_seq_length} (must be >= 3) and doc_stride="
                     f"{doc_stride} (must be >= 1)")
  label_map = {label: i for i, label in enumerate(label_list)}
  cls_id, sep_id = tokenizer.convert_tokens_to_ids(["[CLS]", "[SEP]"])
  rows = collections.defaultdict(list)
  for sentence_index, (sentence, word_ids) in enumerate(
      zip(sentences, word_piece_ids(sentences, tokenizer))):
    piece_ids = [i for ids in word_ids for i in ids]
    first_piece = np.cumsum([0] + [len(ids) for ids in word_ids[:-1]])  # [num_words]
    spans = squad_data.make_doc_spans(len(piece_ids), max_pieces, doc_stride)
    is_max_context = squad_data.max_context_flags(spans, len(piece_ids))
    for span_index, span in enumerate(spans):
      input_ids = np.zeros(max_seq_length, np.int32)
      input_ids[0] = cls_id
      input_ids[1:1 + span.length] = piece_ids[span.start:span.start + span.length]
      input_ids[1 + span.length] = sep_id
      input_mask = (np.arange(max_seq_length) < span.length + 2).astype(np.int32)
      label_ids = np.zeros(max_seq_length, np.int32)
      label_weights = np.zeros(max_seq_length, np.float32)
      word_index = np.full(max_seq_length, -1, np.int32)
      inside = np.flatnonzero((first_piece >= span.start)
                              & (first_piece < span.start + span.length))
      positions = 1 + first_piece[inside] - span.start  # after [CLS]
      label_ids[positions] = [label_map[sentence.labels[w]] for w in inside]
      label_weights[positions] = 1.0
      predicts = is_max_context[span_index, first_piece[inside]]
      word_index[positions[predicts]] = inside[predicts]
      for name, value in (("input_ids", input_ids), ("input_mask", input_mask),
                          ("label_ids", label_ids), ("label_weights", label_weights),
                          ("word_index", word_index)):
        rows[name].append(value)
      rows["sentence_index"].append(sentence_index)
  if not rows:
    return {name: np.zeros((0, max_seq_length), dtype) for name, dtype in (
        ("input_ids", np.int32), ("input_mask", np.int32), ("segment_ids", np.int32),
        ("label_ids", np.int32), ("label_weights", np.float32), ("word_index", np.int32))
    } | {"sentence_index": np.zeros(0, np.int32)}
  arrays = {name: np.stack(values) for name, values in rows.items()
            if name != "sentence_index"}
  arrays["segment_ids"] = np.zeros_like(arrays["input_ids"])
  arrays["sentence_index"] = np.array(rows["sentence_index"], np.int32)
  return arrays


def word_predictions(arrays: dict, position_predictions: np.ndarray,
                     sentences: Sequence[Sentence]) -> list:
  """Gathers each word's prediction from the window position that predicts it.

  Args:
    arrays: convert_sentences_to_features's output for `sentences`.
    position_predictions: [n, max_seq_length], any per-position value (e.g. tag ids).
  Returns:
    list (per sentence) of lists (per word) of the values.
  Raises:
    RuntimeError: a word predicted by no window or by several (the windows are broken).
  """
  predicted = [[None] * len(sentence.words) for sentence in sentences]
  counts = [np.zeros(len(sentence.words), np.int64) for sentence in sentences]
  rows, positions = np.nonzero(arrays["word_index"] >= 0)
  for row, position in zip(rows, positions):
    sentence_index = arrays["sentence_index"][row]
    word = arrays["word_index"][row, position]
    predicted[sentence_index][word] = position_predictions[row, position]
    counts[sentence_index][word] += 1
  for sentence_index, count in enumerate(counts):
    if np.any(count != 1):
      raise RuntimeError(f"sentence {sentence_index}: words predicted {count.tolist()} times "
                         "(each must come from exactly one window)")
  return predicted


# ------------------------------------------------------------------------------ metrics

def is_entity_scheme(label_list: Sequence[str]) -> bool:
  """Whether every tag is "O" or a B-/I-/E-/S- tag, so entity metrics make sense."""
  return all(label == "O" or _ENTITY_TAG.match(label) for label in label_list)


def _split_tag(tag: str):
  """("B", "PER") of "B-PER"; ("O", "") of "O"."""
  return (tag[0], tag[2:]) if tag != "O" else ("O", "")


def _ends_entity(prev_prefix, prefix, prev_type, entity_type) -> bool:
  if prev_prefix in ("E", "S"):
    return True
  if prev_prefix in ("B", "I") and prefix in ("B", "S", "O"):
    return True
  return prev_prefix != "O" and prev_type != entity_type


def _starts_entity(prev_prefix, prefix, prev_type, entity_type) -> bool:
  if prefix in ("B", "S"):
    return True
  if prev_prefix in ("E", "S", "O") and prefix in ("E", "I"):
    return True
  return prefix != "O" and prev_type != entity_type


def get_entities(tags: Sequence[str]) -> list:
  """The entities of one tag sequence, seqeval's default (conlleval) reading.

  An entity starts at B- or S-, at I-/E- after O, E- or S- (so an I- without a B- starts
  one), or where the type changes; it ends before O, B-, S-, after E- or S-, or where the
  type changes. Works for BIO, IOB1 and IOBES alike.

  Args:
    tags: "O" or "<B|I|E|S>-<type>" per word.
  Returns:
    [(type, first word, last word)], in order.
  """
  entities = []
  prev_prefix, prev_type, begin = "O", "", 0
  for i, tag in enumerate(list(tags) + ["O"]):
    if tag != "O" and not _ENTITY_TAG.match(tag):
      raise ValueError(f"tag {tag!r} at word {i} is neither O nor B-/I-/E-/S-<type>")
    prefix, entity_type = _split_tag(tag)
    if _ends_entity(prev_prefix, prefix, prev_type, entity_type):
      entities.append((prev_type, begin, i - 1))
    if _starts_entity(prev_prefix, prefix, prev_type, entity_type):
      begin = i
    prev_prefix, prev_type = prefix, entity_type
  return entities


def _precision_recall_f1(num_correct: int, num_predicted: int, num_gold: int):
  precision = num_correct / num_predicted if num_predicted else 0.0
  recall = num_correct / num_gold if num_gold else 0.0
  f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
  return precision, recall, f1


def entity_scores(gold: Sequence[Sequence[str]], predicted: Sequence[Sequence[str]]) -> dict:
  """Entity-level scores: an entity is correct when its type, first and last word match.

  Args:
    gold, predicted: per sentence, the tag of every word (same lengths).
  Returns:
    {"precision", "recall", "f1" (micro), "num_gold", "num_predicted", "num_correct",
     "per_type": {type: {"precision", "recall", "f1", "support" (= gold entities)}}}
    (0.0 where a ratio has no denominator, as seqeval).
  """
  gold_entities, predicted_entities = set(), set()
  for index, (gold_tags, predicted_tags) in enumerate(zip(gold, predicted, strict=True)):
    if len(gold_tags) != len(predicted_tags):
      raise ValueError(f"sentence {index}: {len(gold_tags)} gold tags but "
                       f"{len(predicted_tags)} predicted")
    gold_entities.update((index,) + e for e in get_entities(gold_tags))
    predicted_entities.update((index,) + e for e in get_entities(predicted_tags))
  correct = gold_entities & predicted_entities
  scores = dict(zip(("precision", "recall", "f1"), _precision_recall_f1(
      len(correct), len(predicted_entities), len(gold_entities))))
  scores.update(num_gold=len(gold_entities), num_predicted=len(predicted_entities),
                num_correct=len(correct), per_type={})
  types = sorted({e[1] for e in gold_entities | predicted_entities})
  def count(entities, entity_type):
    return sum(1 for e in entities if e[1] == entity_type)
  for entity_type in types:
    precision, recall, f1 = _precision_recall_f1(count(correct, entity_type),
                                                 count(predicted_entities, entity_type),
                                                 count(gold_entities, entity_type))
    scores["per_type"][entity_type] = {"precision": precision, "recall": recall, "f1": f1,
                                       "support": count(gold_entities, entity_type)}
  return scores


def token_accuracy(gold: Sequence[Sequence[str]], predicted: Sequence[Sequence[str]]) -> float:
  """The fraction of words whose predicted tag equals the gold tag (0.0 for no words)."""
  pairs = [(g, p) for gs, ps in zip(gold, predicted) for g, p in zip(gs, ps)]
  return sum(g == p for g, p in pairs) / len(pairs) if pairs else 0.0


def format_report(scores: dict, digits: int = 4) -> str:
  """seqeval's classification_report layout: per type, then the micro and macro averages."""
  per_type = scores["per_type"]
  width = max([len(t) for t in per_type] + [len("micro avg")])
  header = f"{'':>{width}} {'precision':>9} {'recall':>9} {'f1-score':>9} {'support':>9}"
  def row(name, p, r, f, support):
    return f"{name:>{width}} {p:>9.{digits}f} {r:>9.{digits}f} {f:>9.{digits}f} {support:>9}"
  lines = [header, ""]
  lines += [row(t, s["precision"], s["recall"], s["f1"], s["support"])
            for t, s in per_type.items()]
  lines.append("")
  lines.append(row("micro avg", scores["precision"], scores["recall"], scores["f1"],
                   scores["num_gold"]))
  if per_type:
    macro = [float(np.mean([s[k] for s in per_type.values()]))
             for k in ("precision", "recall", "f1")]
    lines.append(row("macro avg", *macro, scores["num_gold"]))
  return "\n".join(lines) + "\n"
