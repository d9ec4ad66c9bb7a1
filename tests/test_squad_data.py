"""squad_data / squad_predictions on hand-written SQuAD v1.1 and v2.0 files."""
import json
import pathlib

import numpy as np
import pytest

import tokenization
from bert import squad_data
from bert import squad_predictions

SQUAD_DIR = pathlib.Path(__file__).parent / "data" / "squad"
V1_FILE = SQUAD_DIR / "squad_v1.1_train.json"
V2_FILE = SQUAD_DIR / "squad_v2.0_train.json"

# Small windows so that the 50-sub-token "Poets" paragraph is cut into several.
MAX_SEQ_LENGTH, DOC_STRIDE, MAX_QUERY_LENGTH = 32, 6, 10

# The final texts the postprocessing must recover from logits peaked at the gold spans.
V1_EXPECTED = {
    "eiffel-when": "1889",
    "eiffel-who": "Gustave Eiffel's company",  # "company." in the words: '.' trimmed.
    "owen-born": "1893",  # Inside the word "(1893-1918)".
    "owen-publisher": "Chatto and Windus",
    "owen-strength": "quiet strength of his verse",  # Context has 3 spaces after "quiet".
}


@pytest.fixture(scope="module")
def tokenizer(uncased_vocab):
  return tokenization.FullTokenizer(str(uncased_vocab), do_lower_case=True)


@pytest.fixture(scope="module")
def v1_train(tokenizer):
  examples, num_skipped = squad_data.read_squad_examples(str(V1_FILE), is_training=True)
  features = list(squad_data.convert_examples_to_features(
      examples, tokenizer, MAX_SEQ_LENGTH, DOC_STRIDE, MAX_QUERY_LENGTH, is_training=True))
  return examples, num_skipped, features


def test_split_on_whitespace():
  doc_tokens, offsets = squad_data.split_on_whitespace(" ab  c\u202fd")
  assert doc_tokens == ["ab", "c", "d"]
  assert offsets == [-1, 0, 0, 0, 0, 1, 1, 2]


def test_read_v1_positions_and_skipped_answer(v1_train, caplog):
  examples, num_skipped, _ = v1_train
  assert num_skipped == 1  # "eiffel-bad": "Berlin" is not at its answer_start.
  assert [e.qas_id for e in examples] == list(V1_EXPECTED)
  when, who, born, _, strength = examples
  assert when.doc_tokens[:7] == ["The", "Eiffel", "Tower", "was", "completed", "in", "1889"]
  assert (when.start_position, when.end_position) == (6, 6)
  assert (who.start_position, who.end_position) == (8, 10)  # Gustave Eiffel's company.
  assert (born.start_position, born.end_position) == (9, 9)  # (1893-1918)
  assert strength.doc_tokens[strength.start_position:strength.end_position + 1] == [
      "quiet", "strength", "of", "his", "verse,"]
  assert when.doc_tokens is who.doc_tokens  # One word list per paragraph.


def test_skipped_answer_is_logged(caplog):
  with caplog.at_level("WARNING"):
    squad_data.read_squad_examples(str(V1_FILE), is_training=True)
  assert "Could not find answer of eiffel-bad" in caplog.text
  assert "skipped 1 of 6 training questions" in caplog.text


def test_read_for_prediction_keeps_every_question():
  examples, num_skipped = squad_data.read_squad_examples(str(V1_FILE), is_training=False)
  assert num_skipped == 0 and len(examples) == 6
  assert all(e.start_position is None and not e.is_impossible for e in examples)


def test_read_v2_unanswerable():
  examples, num_skipped = squad_data.read_squad_examples(
      str(V2_FILE), is_training=True, version_2_with_negative=True)
  assert num_skipped == 0
  impossible = {e.qas_id: e for e in examples if e.is_impossible}
  assert sorted(impossible) == ["curie-peace", "thames-mouth"]
  assert all((e.start_position, e.end_position, e.orig_answer_text) == (-1, -1, "")
             for e in impossible.values())


def test_bad_squad_files_name_file_and_question(tmp_path):
  bad = json.loads(V1_FILE.read_text())
  qa = bad["data"][0]["paragraphs"][0]["qas"][0]
  qa["answers"].append(dict(qa["answers"][0]))
  path = tmp_path / "two_answers.json"
  path.write_text(json.dumps(bad))
  with pytest.raises(ValueError, match=r"two_answers\.json: question 'eiffel-when': .*"
                                       r"exactly 1 answer, found 2"):
    squad_data.read_squad_examples(str(path), is_training=True)
  del qa["question"]
  path.write_text(json.dumps(bad))
  with pytest.raises(ValueError, match=r"question 'eiffel-when' has no 'question' key"):
    squad_data.read_squad_examples(str(path), is_training=False)
  path.write_text('{"data": 3}')
  with pytest.raises(ValueError, match=r"two_answers\.json: expected SQuAD JSON"):
    squad_data.read_squad_examples(str(path), is_training=False)
  with pytest.raises(FileNotFoundError, match="missing.json"):
    squad_data.read_squad_examples(str(tmp_path / "missing.json"), is_training=False)


def test_doc_spans_and_max_context_by_hand():
  spans = squad_data.make_doc_spans(10, max_tokens_for_doc=5, doc_stride=3)
  assert spans == [(0, 5), (3, 5), (6, 4)]
  # Token 3: span 0 scores min(3, 1) + 0.05, span 1 min(0, 4) + 0.05 -> span 0.
  assert [squad_data.check_is_max_context(spans, i, 3) for i in range(2)] == [True, False]
  # Token 4: span 0 min(4, 0), span 1 min(1, 3) -> span 1.
  assert [squad_data.check_is_max_context(spans, i, 4) for i in range(2)] == [False, True]
  # Token 7: span 1 min(4, 0) + 0.05, span 2 min(1, 2) + 0.04 -> span 2.
  assert [squad_data.check_is_max_context(spans, i, 7) for i in (1, 2)] == [False, True]
  assert squad_data.make_doc_spans(4, 5, 3) == [(0, 4)]
  assert squad_data.make_doc_spans(0, 5, 3) == []


@pytest.mark.parametrize("num_tokens, max_tokens, stride", [
    (10, 5, 3), (50, 19, 6), (7, 7, 2), (33, 8, 8), (40, 10, 1), (3, 5, 3)])
def test_vectorised_max_context_equals_google_check(num_tokens, max_tokens, stride):
  spans = squad_data.make_doc_spans(num_tokens, max_tokens, stride)
  flags = squad_data.max_context_flags(spans, num_tokens)
  expected = [[spans[i].start <= p < spans[i].start + spans[i].length
               and squad_data.check_is_max_context(spans, i, p) for p in range(num_tokens)]
              for i in range(len(spans))]
  assert flags.tolist() == expected


def test_features_layout(v1_train, tokenizer):
  examples, _, features = v1_train
  assert [f.unique_id for f in features] == list(
      range(squad_data.FIRST_UNIQUE_ID, squad_data.FIRST_UNIQUE_ID + len(features)))
  for feature in features:
    example = examples[feature.example_index]
    query = tokenizer.tokenize(example.question_text)[:MAX_QUERY_LENGTH]
    n = len(feature.tokens)
    assert feature.tokens[:len(query) + 2] == ["[CLS]"] + query + ["[SEP]"]
    assert feature.tokens[-1] == "[SEP]" and n <= MAX_SEQ_LENGTH
    padding = [0] * (MAX_SEQ_LENGTH - n)
    assert feature.input_ids == tokenizer.convert_tokens_to_ids(feature.tokens) + padding
    assert feature.input_mask == [1] * n + padding
    assert feature.segment_ids == [0] * (len(query) + 2) + [1] * (n - len(query) - 2) + padding
    # Every document sub-token maps back to the word it came from.
    for position, word_index in feature.token_to_orig_map.items():
      word_pieces = tokenizer.tokenize(example.doc_tokens[word_index])
      assert feature.tokens[position] in word_pieces
    assert sorted(feature.token_to_orig_map) == list(range(len(query) + 2, n - 1))


def test_query_is_truncated(tokenizer):
  example = squad_data.SquadExample("q", "one two three four five six seven eight nine ten "
                                   "eleven twelve", ["Some", "context."])
  (feature,) = squad_data.convert_examples_to_features(
      [example], tokenizer, MAX_SEQ_LENGTH, DOC_STRIDE, max_query_length=4,
      is_training=False)
  assert feature.tokens == ["[CLS]", "one", "two", "three", "four", "[SEP]", "some",
                            "context", ".", "[SEP]"]


def test_each_token_has_one_max_context_window(v1_train):
  examples, _, features = v1_train
  windows = [f for f in features if examples[f.example_index].qas_id == "owen-publisher"]
  assert len(windows) >= 4
  max_context_count = {}
  for f in windows:
    doc_offset = f.tokens.index("[SEP]") + 1
    for position, is_max in f.token_is_max_context.items():
      # Full windows are longer than the stride, so window i starts at i * DOC_STRIDE.
      doc_position = f.doc_span_index * DOC_STRIDE + position - doc_offset
      max_context_count[doc_position] = max_context_count.get(doc_position, 0) + int(is_max)
  assert sorted(max_context_count) == list(range(len(max_context_count)))
  assert set(max_context_count.values()) == {1}


def test_training_positions_and_answer_spanning_windows(v1_train, tokenizer):
  examples, _, features = v1_train
  for qas_id, answer in V1_EXPECTED.items():
    windows = [f for f in features if examples[f.example_index].qas_id == qas_id]
    answer_tokens = tokenizer.tokenize(answer)
    inside = [f for f in windows if f.start_position > 0]
    assert inside, qas_id
    for f in inside:
      assert f.tokens[f.start_position:f.end_position + 1] == answer_tokens, qas_id
    assert all(f.end_position == 0 for f in windows if f.start_position == 0)
  # "Chatto and Windus" is cut by a window boundary: that window's target is [CLS] although
  # it holds the start of the answer, and a later window holds the whole answer.
  example = next(e for e in examples if e.qas_id == "owen-publisher")
  windows = [f for f in features if examples[f.example_index] is example]
  cut = [f for f in windows if example.start_position in f.token_to_orig_map.values()
         and example.end_position not in f.token_to_orig_map.values()]
  assert cut, "no window cuts the answer; make the windows smaller"
  assert all(f.start_position == 0 for f in cut)
  assert any(f.start_position > 0 and f.doc_span_index > cut[0].doc_span_index
             for f in windows)


def test_v2_unanswerable_targets_cls(tokenizer):
  examples, _ = squad_data.read_squad_examples(str(V2_FILE), True, version_2_with_negative=True)
  features = list(squad_data.convert_examples_to_features(
      examples, tokenizer, 64, 16, 16, is_training=True))
  for f in features:
    if examples[f.example_index].is_impossible:
      assert (f.start_position, f.end_position, f.is_impossible) == (0, 0, True)
    else:
      assert f.start_position > 0 and not f.is_impossible
  arrays = squad_data.features_to_arrays(features, is_training=True)
  assert arrays["input_ids"].shape == (len(features), 64)
  assert arrays["input_ids"].dtype == np.int32
  assert arrays["is_impossible"].tolist() == [int(f.is_impossible) for f in features]
  assert arrays["unique_ids"].tolist() == [f.unique_id for f in features]


def test_window_too_small_is_an_error(tokenizer):
  with pytest.raises(ValueError, match="leaves 0 document tokens"):
    list(squad_data.convert_examples_to_features([], tokenizer, 13, 4, 10, False))


def test_batched_tokenization_gives_identical_features(v1_train, tokenizer):
  examples, _, features = v1_train
  slow = list(squad_data.convert_examples_to_features(
      examples, tokenizer, MAX_SEQ_LENGTH, DOC_STRIDE, MAX_QUERY_LENGTH, is_training=True,
      batched_tokenization=False, chunk_size=2))
  assert slow == features


# ---------------------------------------------------------------------------------------
# Postprocessing.


def _peaked_results(features, gold_positions, seed=0, cls_logit=-5.0):
  """RawResults with small noise and +10 logits at each feature's (start, end) if given."""
  rng = np.random.default_rng(seed)
  results = []
  for feature, (start, end) in zip(features, gold_positions):
    start_logits = rng.normal(0.0, 0.1, len(feature.input_ids))
    end_logits = rng.normal(0.0, 0.1, len(feature.input_ids))
    start_logits[0] = end_logits[0] = cls_logit
    if start is not None:
      start_logits[start] += 10.0
      end_logits[end] += 10.0
    results.append(squad_predictions.RawResult(feature.unique_id, start_logits.astype(np.float32),
                                       end_logits.astype(np.float32)))
  return results


def _dataset_without(path, skipped_ids):
  dataset = json.loads(path.read_text())["data"]
  for article in dataset:
    for paragraph in article["paragraphs"]:
      paragraph["qas"] = [qa for qa in paragraph["qas"] if qa["id"] not in skipped_ids]
  return dataset


def test_v1_postprocessing_recovers_gold_spans(v1_train):
  examples, _, features = v1_train
  positions = [(f.start_position, f.end_position) if f.start_position > 0 else (None, None)
               for f in features]
  results = _peaked_results(features, positions)
  predictions, nbest, scores_diff = squad_predictions.compute_predictions(
      examples, features, results[::-1], n_best_size=5, max_answer_length=30,
      do_lower_case=True)
  assert dict(predictions) == V1_EXPECTED
  assert not scores_diff
  for entries in nbest.values():
    assert 1 <= len(entries) <= 5
    assert sum(e["probability"] for e in entries) == pytest.approx(1.0)
    scores = [e["start_logit"] + e["end_logit"] for e in entries]
    assert scores == sorted(scores, reverse=True)
    assert len({e["text"] for e in entries}) == len(entries)  # Duplicates removed.
  scores = squad_predictions.evaluate_predictions(_dataset_without(V1_FILE, {"eiffel-bad"}),
                                          predictions)
  assert (scores["exact"], scores["f1"], scores["total"]) == (100.0, 100.0, 5)


def test_v2_postprocessing_null_answers_and_files(tokenizer, tmp_path):
  examples, _ = squad_data.read_squad_examples(str(V2_FILE), True, version_2_with_negative=True)
  features = list(squad_data.convert_examples_to_features(
      examples, tokenizer, 64, 16, 16, is_training=True))
  positions = [(None, None) if f.is_impossible else (f.start_position, f.end_position)
               for f in features]
  results = _peaked_results(features, positions)
  for feature, result in zip(features, results):
    if feature.is_impossible:  # The model is sure there is no answer.
      result.start_logits[0] = result.end_logits[0] = 10.0
  files = [tmp_path / n for n in ("predictions.json", "nbest_predictions.json",
                                  "null_odds.json")]
  predictions, _, scores_diff = squad_predictions.write_predictions(
      examples, features, results, 20, 30, True, *map(str, files),
      version_2_with_negative=True, null_score_diff_threshold=0.0)
  assert predictions == {"curie-chem": "1911", "curie-physics": "Physics",
                         "curie-peace": "", "thames-city": "London", "thames-mouth": ""}
  for qas_id, diff in scores_diff.items():
    # Null score - best span: about +20 - 0 when unanswerable, -10 - 20 when answerable.
    assert diff > 15 if predictions[qas_id] == "" else diff < -25
  for path in files:
    text = path.read_text()
    assert text.endswith("}\n") and text.startswith('{\n    "curie-chem": ')
  assert json.loads(files[0].read_text()) == predictions
  assert json.loads(files[2].read_text()) == pytest.approx(dict(scores_diff))
  nbest = json.loads(files[1].read_text())
  assert list(nbest["curie-peace"][0]) == ["text", "probability", "start_logit", "end_logit"]
  assert nbest["curie-peace"][0]["text"] == ""
  scores = squad_predictions.evaluate_predictions(json.loads(V2_FILE.read_text())["data"],
                                          predictions, na_probs=scores_diff)
  assert (scores["exact"], scores["HasAns_exact"], scores["NoAns_exact"]) == (100, 100, 100)
  # A threshold above the null-score gap answers everything.
  predictions, _, _ = squad_predictions.compute_predictions(
      examples, features, results, 20, 30, True, version_2_with_negative=True,
      null_score_diff_threshold=100.0)
  assert predictions["curie-peace"] != "" and predictions["thames-mouth"] != ""


def _hand_made_feature(doc_tokens, max_context=None):
  """One window [CLS] q [SEP] doc [SEP] over lower-cased doc_tokens (one piece per word)."""
  tokens = ["[CLS]", "q", "[SEP]"] + [t.lower() for t in doc_tokens] + ["[SEP]"]
  positions = range(3, 3 + len(doc_tokens))
  return squad_data.InputFeatures(
      unique_id=7, example_index=0, doc_span_index=0, tokens=tokens,
      token_to_orig_map={p: p - 3 for p in positions},
      token_is_max_context={p: True if max_context is None else max_context[p - 3]
                            for p in positions},
      input_ids=[0] * len(tokens), input_mask=[1] * len(tokens),
      segment_ids=[0] * len(tokens))


def test_nbest_order_and_probabilities_by_hand():
  example = squad_data.SquadExample("x", "q", ["The", "big", "cat"])
  feature = _hand_made_feature(example.doc_tokens)
  result = squad_predictions.RawResult(7, [0, 0, 0, 3, 2, 1, 0], [0, 0, 0, 1, 2, 3, 0])
  predictions, nbest, _ = squad_predictions.compute_predictions(
      [example], [feature], [result], n_best_size=20, max_answer_length=2,
      do_lower_case=True)
  # Spans (score): The big (5), big cat (5), The (4), big (4), cat (4); "The big cat" is
  # longer than max_answer_length. Ties keep Google's order (start rank, then end rank).
  assert [e["text"] for e in nbest["x"]] == ["The big", "big cat", "The", "big", "cat"]
  assert predictions["x"] == "The big"
  denominator = 2 * np.e + 3
  assert [e["probability"] for e in nbest["x"]] == pytest.approx(
      [np.e / denominator] * 2 + [1 / denominator] * 3)
  # A start token whose maximum context is in another window is never a start.
  feature = _hand_made_feature(example.doc_tokens, max_context=[False, True, True])
  predictions, nbest, _ = squad_predictions.compute_predictions(
      [example], [feature], [result], 20, 2, True)
  assert predictions["x"] == "big cat"


def test_no_valid_span_does_not_crash_issue_476():
  """google-research/bert #476: v2.0 with only the null answer in the n-best."""
  example = squad_data.SquadExample("x", "q", ["The", "big", "cat"])
  feature = _hand_made_feature(example.doc_tokens)
  # With n_best_size=1 the only start and end candidates are [CLS]: no span is valid.
  result = squad_predictions.RawResult(7, [3, 0, 0, 1, 0, 0, 0], [2, 0, 0, 0, 1, 0, 0])
  predictions, nbest, scores_diff = squad_predictions.compute_predictions(
      [example], [feature], [result], n_best_size=1, max_answer_length=30,
      do_lower_case=True, version_2_with_negative=True)
  assert [e["text"] for e in nbest["x"]] == [squad_predictions.FALLBACK_TEXT, ""]
  assert scores_diff["x"] == 5.0  # Null score 3 + 2 against the fallback's 0 + 0.
  assert predictions["x"] == ""
  # SQuAD v1.1 with no valid span: Google's "empty" placeholder.
  predictions, nbest, _ = squad_predictions.compute_predictions(
      [example], [feature], [result], n_best_size=1, max_answer_length=30,
      do_lower_case=True)
  assert predictions["x"] == squad_predictions.FALLBACK_TEXT


@pytest.mark.parametrize("pred_text, orig_text, do_lower_case, expected", [
    ("steve smith", "Steve Smith's", True, "Steve Smith"),
    ("1893", "(1893-1918)", True, "1893"),
    ("company", "company.", True, "company"),
    ("Smith", "Smith's", False, "Smith"),
    ("smith", "Smith's", False, "Smith's"),  # Cased tokenizer: not found, text unchanged.
    ("xyz", "Steve Smith's", True, "Steve Smith's"),
])
def test_get_final_text(pred_text, orig_text, do_lower_case, expected):
  assert squad_predictions.get_final_text(pred_text, orig_text, do_lower_case) == expected
