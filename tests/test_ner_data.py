"""bert/ner_data.py: CoNLL reading and its errors, first-wordpiece labels, windows that lose no
word, the max-context choice, and the entity metrics on hand-computed cases."""
import pathlib

import numpy as np
import pytest

import tokenization
from bert import ner_data

NER = pathlib.Path(__file__).parent / "data" / "ner"
TRAIN = NER / "train.txt"
# 14 pieces per window, windows 5 pieces apart: the long sentences of train.txt are cut
# into several windows, some through a multi-piece name.
MAX_SEQ_LENGTH, DOC_STRIDE = 16, 5


@pytest.fixture(scope="module")
def tokenizer(uncased_vocab):
  return tokenization.FullTokenizer(str(uncased_vocab), do_lower_case=True)


@pytest.fixture(scope="module")
def sentences():
  return ner_data.read_conll(str(TRAIN))


# ------------------------------------------------------------------------------ reading

def test_read_conll(sentences):
  assert len(sentences) == 10
  first = sentences[0]
  assert first.words[:3] == ["Elizabeth", "Bennet", "walked"]
  assert first.labels[:3] == ["B-PER", "I-PER", "O"]
  assert first.line_numbers[:3] == [3, 4, 5]  # after "-DOCSTART- O" and a blank line
  assert [s.starts_document for s in sentences] == [True] + [False] * 3 + [True] + [False] * 5
  assert all("-DOCSTART-" not in s.words for s in sentences)
  assert ner_data.label_list_from(sentences) == [
      "B-LOC", "B-MISC", "B-ORG", "B-PER", "I-LOC", "I-MISC", "I-ORG", "I-PER", "O"]
  # The label list does not depend on the order of the sentences.
  assert ner_data.label_list_from(sentences[::-1]) == ner_data.label_list_from(sentences)


def test_columns():
  path = str(NER / "conll2003_columns.txt")
  ner = ner_data.read_conll(path)  # token first, tag last
  assert [s.words for s in ner] == [["Jane", "Austen", "lived", "in", "Bath", "."],
                                    ["Chawton", "Cottage", "is", "in", "Hampshire", "."]]
  assert ner[0].labels == ["B-PER", "I-PER", "O", "O", "B-LOC", "O"]
  assert [s.starts_document for s in ner] == [True, True]
  pos = ner_data.read_conll(path, token_column=0, label_column=1)
  assert pos[0].labels == ["NNP", "NNP", "VBD", "IN", "NNP", "."]
  assert not ner_data.is_entity_scheme(ner_data.label_list_from(pos))
  assert ner_data.is_entity_scheme(ner_data.label_list_from(ner))
  chunks = ner_data.read_conll(path, token_column=-4, label_column=-2)
  assert chunks[1].labels[:2] == ["B-NP", "I-NP"]


def test_too_few_columns_names_file_and_line(tmp_path):
  path = tmp_path / "bad.txt"
  path.write_text("Emma B-PER\nWoodhouse I-PER\n\nHighbury\n")
  with pytest.raises(ValueError, match=rf"{path}:4: expected .*token in column 0 and the tag "
                                       r"in column -1, found 1 column"):
    ner_data.read_conll(str(path))
  path.write_text("Emma NNP B-PER\nWoodhouse NNP\n")
  with pytest.raises(ValueError, match=rf"{path}:2: .* found 2 column"):
    ner_data.read_conll(str(path), label_column=2)


def test_not_utf8_names_the_line(tmp_path):
  path = tmp_path / "latin1.txt"
  path.write_bytes("Emma B-PER\n\nJos\xe9 B-PER\n".encode("latin-1"))
  with pytest.raises(ValueError, match=rf"{path}:3: not UTF-8"):
    ner_data.read_conll(str(path))


def test_unknown_label_names_file_and_line(tmp_path, sentences):
  path = tmp_path / "dev.txt"
  path.write_text("Emma B-PER\nWoodhouse I-PER\n\nHighbury B-GPE\n")
  dev = ner_data.read_conll(str(path))
  label_list = ner_data.label_list_from(sentences)
  with pytest.raises(ValueError, match=rf"{path}:4: tag 'B-GPE' is not in the label list"):
    ner_data.check_labels(dev, label_list, str(path), "the tags of train.txt")
  ner_data.check_labels(sentences, label_list, str(TRAIN), "itself")


def test_label_list_round_trip(tmp_path, sentences):
  path = tmp_path / "label_list.txt"
  labels = ner_data.label_list_from(sentences)
  ner_data.write_label_list(str(path), labels)
  assert ner_data.read_label_list(str(path)) == labels
  path.write_text("O\nB-PER\nO\n")
  with pytest.raises(ValueError, match="one distinct tag per line"):
    ner_data.read_label_list(str(path))
  with pytest.raises(FileNotFoundError, match="label list not found"):
    ner_data.read_label_list(str(tmp_path / "missing.txt"))


# ----------------------------------------------------------------------------- features

def _sentence_pieces(sentence, tokenizer):
  """(piece ids, whether each piece is its word's first, the word of each piece), from
  Google's word-by-word tokenize."""
  ids, is_first, word_of = [], [], []
  for word_index, word in enumerate(sentence.words):
    pieces = tokenizer.convert_tokens_to_ids(tokenizer.tokenize(word))
    ids += pieces
    is_first += [True] + [False] * (len(pieces) - 1)
    word_of += [word_index] * len(pieces)
  return ids, is_first, word_of


def test_labels_on_first_pieces_only(sentences, tokenizer):
  """Every window holds a run of its sentence's pieces starting k * doc_stride pieces in;
  exactly the first pieces carry weight 1 and their word's tag."""
  label_list = ner_data.label_list_from(sentences)
  arrays = ner_data.convert_sentences_to_features(sentences, label_list, tokenizer,
                                                  MAX_SEQ_LENGTH, DOC_STRIDE)
  assert tokenizer.tokenize("Pemberley") == ["pe", "##mber", "##ley"]
  cls_id, sep_id = tokenizer.convert_tokens_to_ids(["[CLS]", "[SEP]"])
  window_of_sentence = {}
  for row in range(len(arrays["input_ids"])):
    sentence_index = int(arrays["sentence_index"][row])
    k = window_of_sentence[sentence_index] = window_of_sentence.get(sentence_index, -1) + 1
    sentence = sentences[sentence_index]
    ids, is_first, word_of = _sentence_pieces(sentence, tokenizer)
    length = int(arrays["input_mask"][row].sum()) - 2
    start = k * DOC_STRIDE
    assert length == min(MAX_SEQ_LENGTH - 2, len(ids) - start)
    input_ids = arrays["input_ids"][row]
    assert input_ids[0] == cls_id and input_ids[length + 1] == sep_id
    assert input_ids[1:length + 1].tolist() == ids[start:start + length]
    assert not input_ids[length + 2:].any() and not arrays["segment_ids"][row].any()
    weights = arrays["label_weights"][row]
    assert weights[1:length + 1].tolist() == [float(f) for f in is_first[start:start + length]]
    assert weights[0] == 0 and not weights[length + 1:].any()
    tags = [label_list[i] for i in arrays["label_ids"][row][1:length + 1]]
    for tag, first, word in zip(tags, is_first[start:], word_of[start:]):
      assert tag == (sentence.labels[word] if first else "B-LOC")  # B-LOC is label id 0
  assert max(window_of_sentence.values()) >= 2  # some sentence has 3+ windows


def test_windows_cover_every_word_and_cut_entities(sentences, tokenizer):
  label_list = ner_data.label_list_from(sentences)
  arrays = ner_data.convert_sentences_to_features(sentences, label_list, tokenizer,
                                                  MAX_SEQ_LENGTH, DOC_STRIDE)
  # Every word is predicted by exactly one window (word_predictions checks it); gathering
  # the gold label ids gives back every tag.
  gathered = ner_data.word_predictions(arrays, arrays["label_ids"], sentences)
  assert [[label_list[i] for i in ids] for ids in gathered] == [s.labels for s in sentences]
  # Some window holds only part of a gold entity's pieces: the data tests what it claims.
  cut = []
  for row in range(len(arrays["input_ids"])):
    sentence = sentences[arrays["sentence_index"][row]]
    ids, _, word_of = _sentence_pieces(sentence, tokenizer)
    k = int((arrays["sentence_index"][:row] == arrays["sentence_index"][row]).sum())
    window = set(range(k * DOC_STRIDE, k * DOC_STRIDE + MAX_SEQ_LENGTH - 2)) & set(
        range(len(ids)))
    for _, first, last in ner_data.get_entities(sentence.labels):
      pieces = {p for p, w in enumerate(word_of) if first <= w <= last}
      if pieces & window and pieces - window:
        cut.append(" ".join(sentence.words[first:last + 1]))
  assert "Catherine de Bourgh" in cut, cut  # an entity of several words
  assert "Hartfield" in cut, cut  # one word of several pieces


def test_max_context_window_predicts(tokenizer):
  """Ten one-piece words, 6 pieces per window, stride 2: windows start at 0, 2, 4. A word's
  context in a window is min(pieces left, pieces right); hand-computed best windows."""
  sentence = ner_data.Sentence(words=["the"] * 10, labels=["O"] * 10,
                               line_numbers=list(range(1, 11)))
  arrays = ner_data.convert_sentences_to_features([sentence], ["O"], tokenizer,
                                                  max_seq_length=8, doc_stride=2)
  assert len(arrays["input_ids"]) == 3
  window_of_word = {}
  for row, position in zip(*np.nonzero(arrays["word_index"] >= 0)):
    window_of_word[int(arrays["word_index"][row, position])] = int(row)
  assert [window_of_word[w] for w in range(10)] == [0, 0, 0, 0, 1, 1, 2, 2, 2, 2]


def test_batch_path_gives_the_same_ids(sentences, tokenizer, monkeypatch):
  """Large inputs go through tokenize_to_ids in one call and are split back per sentence
  and word. (The fast path's ids equal tokenize's by contract, tested with tokenization;
  here a Python stand-in keeps the test quick and checks the plumbing.)"""
  expected = ner_data.word_piece_ids(sentences, tokenizer)

  class BatchOnly:
    def __init__(self):
      self.batches = []

    def tokenize_to_ids(self, words):
      self.batches.append(len(words))
      return [tokenizer.convert_tokens_to_ids(tokenizer.tokenize(w)) for w in words]

    def convert_tokens_to_ids(self, tokens):
      return tokenizer.convert_tokens_to_ids(tokens)

  batch_only = BatchOnly()
  monkeypatch.setattr(ner_data, "BATCH_TOKENIZATION_MIN_WORDS", 1)
  assert ner_data.word_piece_ids(sentences, batch_only) == expected
  assert batch_only.batches == [sum(len(s.words) for s in sentences)]


def test_word_without_pieces_becomes_unk(tokenizer):
  """A soft hyphen alone tokenises to nothing; it still gets a ([UNK]) piece and a tag."""
  assert tokenizer.tokenize("\u00ad") == []
  sentence = ner_data.Sentence(words=["Emma", "\u00ad", "wrote"], labels=["B-PER", "O", "O"],
                               line_numbers=[1, 2, 3])
  arrays = ner_data.convert_sentences_to_features([sentence], ["B-PER", "O"], tokenizer, 8, 4)
  unk = tokenizer.convert_tokens_to_ids(["[UNK]"])[0]
  assert arrays["input_ids"][0, 2] == unk
  assert arrays["label_weights"][0, :5].tolist() == [0, 1, 1, 1, 0]
  assert arrays["word_index"][0, :5].tolist() == [-1, 0, 1, 2, -1]


def test_bad_window_sizes(sentences, tokenizer):
  with pytest.raises(ValueError, match="max_seq_length=2"):
    ner_data.convert_sentences_to_features(sentences, ["O"], tokenizer, 2, 1)
  with pytest.raises(ValueError, match="doc_stride=0"):
    ner_data.convert_sentences_to_features(sentences, ["O"], tokenizer, 16, 0)


def test_write_conll_predictions(tmp_path):
  path = tmp_path / "predictions.txt"
  sentences = [ner_data.Sentence(["Emma", "smiled"], ["B-PER", "O"], [3, 4], True),
               ner_data.Sentence(["Bath"], ["B-LOC"], [6])]
  ner_data.write_conll_predictions(str(path), sentences, [["B-PER", "O"], ["O"]])
  assert path.read_text() == ("-DOCSTART- O O\n\nEmma B-PER B-PER\nsmiled O O\n\n"
                              "Bath B-LOC O\n\n")


# ------------------------------------------------------------------------------ metrics

@pytest.mark.parametrize("tags, entities", [
    # BIO
    (["B-PER", "I-PER", "O", "B-LOC"], [("PER", 0, 1), ("LOC", 3, 3)]),
    (["B-PER", "B-PER", "I-PER"], [("PER", 0, 0), ("PER", 1, 2)]),
    # I- without B- starts an entity (IOB1 / conlleval), also after O.
    (["I-PER", "I-PER", "O", "I-LOC"], [("PER", 0, 1), ("LOC", 3, 3)]),
    # A type change inside ends one entity and starts another.
    (["B-PER", "I-LOC", "I-LOC"], [("PER", 0, 0), ("LOC", 1, 2)]),
    (["O", "O"], []),
    # IOBES
    (["S-PER", "O", "B-LOC", "I-LOC", "E-LOC"], [("PER", 0, 0), ("LOC", 2, 4)]),
    (["B-LOC", "E-LOC", "E-LOC"], [("LOC", 0, 1), ("LOC", 2, 2)]),
    (["S-LOC", "S-LOC", "I-LOC", "E-LOC"], [("LOC", 0, 0), ("LOC", 1, 1), ("LOC", 2, 3)]),
    (["B-ORG", "O", "E-ORG"], [("ORG", 0, 0), ("ORG", 2, 2)]),
    (["B-MISC-X", "I-MISC-X"], [("MISC-X", 0, 1)]),
])
def test_get_entities(tags, entities):
  assert ner_data.get_entities(tags) == entities


def test_get_entities_rejects_tags_without_prefix():
  with pytest.raises(ValueError, match="tag 'PER' at word 1"):
    ner_data.get_entities(["O", "PER"])


def test_entity_scores_bio():
  gold = [["B-PER", "I-PER", "O", "B-LOC", "O"],
          ["B-ORG", "I-ORG", "I-ORG", "O"],
          ["B-PER", "O", "B-LOC"]]
  predicted = [["B-PER", "I-PER", "O", "B-LOC", "B-LOC"],  # 2 right, 1 spurious
               ["B-ORG", "I-ORG", "O", "O"],  # partial match: wrong
               ["B-LOC", "O", "I-LOC"]]  # type mismatch: wrong; I- alone: right
  # gold: PER(0,0-1) LOC(0,3) ORG(1,0-2) PER(2,0) LOC(2,2) -> 5
  # predicted: PER(0,0-1) LOC(0,3) LOC(0,4) ORG(1,0-1) LOC(2,0) LOC(2,2) -> 6, 3 correct
  scores = ner_data.entity_scores(gold, predicted)
  assert (scores["num_gold"], scores["num_predicted"], scores["num_correct"]) == (5, 6, 3)
  assert scores["precision"] == pytest.approx(3 / 6)
  assert scores["recall"] == pytest.approx(3 / 5)
  assert scores["f1"] == pytest.approx(2 * 0.5 * 0.6 / 1.1)
  per_type = scores["per_type"]
  assert list(per_type) == ["LOC", "ORG", "PER"]
  # LOC: gold 2, predicted 4, correct 2. ORG: 1, 1, 0. PER: 2, 1, 1.
  assert per_type["LOC"] == pytest.approx({"precision": 0.5, "recall": 1.0, "f1": 2 / 3,
                                           "support": 2})
  assert per_type["ORG"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}
  assert per_type["PER"] == pytest.approx({"precision": 1.0, "recall": 0.5, "f1": 2 / 3,
                                           "support": 2})
  assert ner_data.token_accuracy(gold, predicted) == pytest.approx(8 / 12)


def test_entity_scores_iobes():
  gold = [["S-PER", "O", "B-LOC", "I-LOC", "E-LOC"], ["B-ORG", "E-ORG", "O"]]
  predicted = [["S-PER", "O", "B-LOC", "E-LOC", "S-LOC"],  # LOC split in two: both wrong
               ["B-ORG", "E-ORG", "O"]]
  scores = ner_data.entity_scores(gold, predicted)
  assert (scores["num_gold"], scores["num_predicted"], scores["num_correct"]) == (3, 4, 2)
  assert scores["precision"] == pytest.approx(0.5)
  assert scores["recall"] == pytest.approx(2 / 3)
  assert scores["per_type"]["LOC"]["f1"] == 0.0


def test_entity_scores_without_entities():
  scores = ner_data.entity_scores([["O", "O"]], [["O", "O"]])
  assert (scores["precision"], scores["recall"], scores["f1"]) == (0.0, 0.0, 0.0)
  assert scores["per_type"] == {}
  with pytest.raises(ValueError, match="sentence 0: 2 gold tags but 1 predicted"):
    ner_data.entity_scores([["O", "O"]], [["O"]])


def test_format_report():
  scores = ner_data.entity_scores([["B-PER", "O", "B-LOC"]], [["B-PER", "O", "O"]])
  lines = ner_data.format_report(scores).splitlines()
  assert lines[0].split() == ["precision", "recall", "f1-score", "support"]
  assert lines[2].split() == ["LOC", "0.0000", "0.0000", "0.0000", "1"]
  assert lines[3].split() == ["PER", "1.0000", "1.0000", "1.0000", "1"]
  assert lines[5].split() == ["micro", "avg", "1.0000", "0.5000", "0.6667", "2"]
  assert lines[6].split() == ["macro", "avg", "0.5000", "0.5000", "0.5000", "2"]
