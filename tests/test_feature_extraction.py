"""feature_extraction: extract_features input lines, features, and Google's JSONL output."""
import collections
import io
import itertools
import json

import _jsonl
import numpy as np
import pytest

import tokenization
from bert import feature_extraction


@pytest.fixture(scope="module")
def tokenizer(uncased_vocab):
  return tokenization.FullTokenizer(str(uncased_vocab), do_lower_case=True)


def test_read_examples_pairs_and_line_indexes(tmp_path):
  path = tmp_path / "input.txt"
  path.write_bytes(b"Hello world.\nWho was Jim Henson ? ||| Jim Henson was a puppeteer\n"
                   b"x ||| y ||| z\n\n  spaced out  \r\nno|||spaces\nlast line")
  examples = feature_extraction.read_examples(str(path))
  assert not isinstance(examples, list)  # A generator: the file is streamed.
  assert [(e.unique_id, e.text_a, e.text_b) for e in examples] == [
      (0, "Hello world.", None),
      (1, "Who was Jim Henson ?", "Jim Henson was a puppeteer"),
      (2, "x ||| y", "z"),  # Google's greedy regex splits at the last separator.
      (3, "", None),
      (4, "spaced out", None),
      (5, "no|||spaces", None),
      (6, "last line", None),
  ]


def test_read_examples_errors(tmp_path):
  with pytest.raises(FileNotFoundError, match="nothing.txt"):
    list(feature_extraction.read_examples(str(tmp_path / "nothing.txt")))
  path = tmp_path / "bad.txt"
  path.write_bytes(b"fine\nbad \xff byte\n")
  with pytest.raises(ValueError, match=r"bad\.txt:2: not valid UTF-8"):
    list(feature_extraction.read_examples(str(path)))


def test_parse_layer_indexes():
  assert feature_extraction.parse_layer_indexes("-1,-2,-3,-4") == [-1, -2, -3, -4]
  assert feature_extraction.parse_layer_indexes("0") == [0]
  with pytest.raises(ValueError, match="comma-separated integers"):
    feature_extraction.parse_layer_indexes("-1;-2")


def test_features_by_hand(tokenizer):
  examples = [feature_extraction.InputExample(0, "The cat sat.", "A dog ran away quickly."),
              feature_extraction.InputExample(1, "The cat sat on the mat today."),
              feature_extraction.InputExample(2, "", None)]
  pair, single, empty = feature_extraction.convert_examples_to_features(examples, 10, tokenizer)
  # 7 slots for 4 + 6 tokens: the longer (b) loses tokens until 4 + 3.
  assert pair.tokens == ["[CLS]", "the", "cat", "sat", ".", "[SEP]", "a", "dog", "ran",
                         "[SEP]"]
  assert pair.input_type_ids == [0] * 6 + [1] * 4
  assert pair.input_ids == tokenizer.convert_tokens_to_ids(pair.tokens)
  assert single.tokens == ["[CLS]", "the", "cat", "sat", "on", "the", "mat", "today", ".",
                           "[SEP]"]
  assert empty.tokens == ["[CLS]", "[SEP]"]
  assert empty.input_ids == tokenizer.convert_tokens_to_ids(["[CLS]", "[SEP]"]) + [0] * 8
  assert empty.input_mask == [1, 1] + [0] * 8
  assert empty.unique_id == 2


def test_batched_conversion_matches_unbatched(tokenizer):
  texts = ["Jim Henson was a puppeteer", "naïve café ||| résumé", "x" * 300, "Hello!"]
  examples = [feature_extraction.InputExample(i, *t.split(" ||| ")) for i, t in enumerate(texts)]

  class PlainTokenizer:  # The batch path through Google's per-text Python algorithm.
    inv_vocab = tokenizer.inv_vocab
    convert_tokens_to_ids = tokenizer.convert_tokens_to_ids

    def tokenize_to_ids(self, texts):
      return [tokenizer.convert_tokens_to_ids(tokenizer.tokenize(t)) for t in texts]

  fast = list(feature_extraction.convert_examples_to_features(examples, 16, tokenizer, 3))
  slow = list(feature_extraction.convert_examples_to_features(examples, 16, PlainTokenizer(), 3))
  assert fast == slow


def _google_round(values):
  return [round(float(x), 6) for x in np.asarray(values).flat]


def test_round_values_matches_python_round():
  rng = np.random.default_rng(0)
  values = np.concatenate([
      rng.normal(0, 3, 20000), rng.normal(0, 1e-5, 2000),
      np.arange(1, 400, 2) / 128.0,  # Exact halves at the 6th decimal: round half to even.
      -np.arange(1, 400, 2) / 128.0, [0.0, -0.0, -4e-7, 1e-9, 123456.75],
  ]).astype(np.float32)
  rounded = feature_extraction.round_values(values)
  assert rounded.dtype == np.float64
  assert rounded.tolist() == _google_round(values)
  assert [repr(x) for x in rounded.tolist()] == [repr(x) for x in _google_round(values)]
  doubles = rng.normal(0, 1, 100)
  assert feature_extraction.round_values(doubles).tolist() == _google_round(doubles)


def _google_jsonl_line(feature, layer_indexes, layer_outputs, i):
  """Google's extract_features output loop, as a reference."""
  output_json = collections.OrderedDict()
  output_json["linex_index"] = feature.unique_id
  all_features = []
  for position, token in enumerate(feature.tokens):
    all_layers = []
    for j, layer_index in enumerate(layer_indexes):
      layers = collections.OrderedDict()
      layers["index"] = layer_index
      layers["values"] = [round(float(x), 6) for x in layer_outputs[j][i][position].flat]
      all_layers.append(layers)
    features = collections.OrderedDict()
    features["token"] = token
    features["layers"] = all_layers
    all_features.append(features)
  output_json["features"] = all_features
  return json.dumps(output_json)


def test_jsonl_literal_format():
  feature = feature_extraction.InputFeatures(0, ["[CLS]", "hé", "[SEP]"], [1, 2, 3, 0],
                                       [1, 1, 1, 0], [0, 0, 0, 0])
  last = np.array([[[0.1234567, 2.0], [-1e-7, 0.5], [3.25, -0.0000015], [9.0, 9.0]]],
                  np.float32)
  second = np.zeros_like(last)
  out = io.StringIO()
  with feature_extraction.JsonlFeatureWriter(out, [-1, -2]) as writer:
    writer.write_batch([feature], [last, second])
  assert out.getvalue() == (
      '{"linex_index": 0, "features": ['
      '{"token": "[CLS]", "layers": [{"index": -1, "values": [0.123457, 2.0]}, '
      '{"index": -2, "values": [0.0, 0.0]}]}, '
      '{"token": "h\\u00e9", "layers": [{"index": -1, "values": [-0.0, 0.5]}, '
      '{"index": -2, "values": [0.0, 0.0]}]}, '
      '{"token": "[SEP]", "layers": [{"index": -1, "values": [3.25, -2e-06]}, '
      '{"index": -2, "values": [0.0, 0.0]}]}]}\n')


def test_jsonl_pipeline_matches_google_loop(tmp_path, tokenizer):
  path = tmp_path / "input.txt"
  path.write_text("Hello world.\nWho was Jim Henson ? ||| Jim Henson was a puppeteer\n"
                  "A third, rather longer line that will be truncated by the window.\n")
  layer_indexes, seq_length, hidden = [-1, -2], 12, 5
  rng = np.random.default_rng(1)
  output_file = tmp_path / "out.jsonl"
  expected_lines = []
  with feature_extraction.JsonlFeatureWriter(str(output_file), layer_indexes) as writer:
    features = feature_extraction.convert_examples_to_features(
        feature_extraction.read_examples(str(path)), seq_length, tokenizer)
    for batch, arrays in feature_extraction.batch_features(features, batch_size=2):
      assert arrays["input_ids"].shape == (len(batch), seq_length)
      assert arrays["unique_ids"].tolist() == [f.unique_id for f in batch]
      outputs = [rng.normal(0, 1, (len(batch), seq_length, hidden)).astype(np.float32)
                 for _ in layer_indexes]
      writer.write_batch(batch, outputs)
      expected_lines += [_google_jsonl_line(f, layer_indexes, outputs, i)
                         for i, f in enumerate(batch)]
  assert writer.num_written == 3
  lines = output_file.read_text().splitlines()
  assert lines == expected_lines
  parsed = [json.loads(line) for line in lines]
  assert [p["linex_index"] for p in parsed] == [0, 1, 2]
  assert [f["token"] for f in parsed[0]["features"]] == ["[CLS]", "hello", "world", ".",
                                                        "[SEP]"]  # No padding.
  assert len(parsed[2]["features"]) == seq_length
  assert all(len(layer["values"]) == hidden for f in parsed[1]["features"]
             for layer in f["layers"])


def _spec_jsonl_line(unique_id, tokens, layer_indexes, example_layers):
  """The format spec: json.dumps of nested dicts of Python round(float(x), 6)."""
  return json.dumps({"linex_index": unique_id, "features": [
      {"token": token,
       "layers": [{"index": index, "values": [round(float(x), 6) for x in layer[position]]}
                  for index, layer in zip(layer_indexes, example_layers)]}
      for position, token in enumerate(tokens)]})


def _edge_case_layer(rng, shape):
  """Hidden-state-like values [batch, seq, hidden] with every case of the float text."""
  values = rng.normal(0, 0.6, shape)
  cases = np.array([
      0.0, -0.0, -3e-7, 3e-7, 1e-6, -1e-6, 5e-5, 1.5e-5, -9.9e-5, 1e-4, 1.23e-4, 0.000123,
      0.123457, -0.100001, 12.0, -3.0, 123456.5, 123456.75, 1e10, -3e38, 2.5e-7,
      np.nan, np.inf, -np.inf])
  cases = np.concatenate([
      cases, rng.normal(0, 3e-5, 40),  # Tiny: exponent notation.
      np.arange(1, 80, 2) / 128.0,  # Exact halves at the 7th decimal: round half to even.
      rng.integers(-10**7, 10**7, 40) / 1e6,  # Exactly 6 decimals (in float64).
      rng.normal(0, 50, 40)])  # Outliers, as in real hidden states.
  flat = values.reshape(-1)
  flat[rng.choice(flat.size, 3 * cases.size, replace=False)] = np.tile(cases, 3)
  return values


@pytest.mark.parametrize("dtype", ["float32", "float64", "float16", "bfloat16"])
def test_jsonl_matches_format_spec_byte_for_byte(dtype):
  if dtype == "bfloat16":
    import ml_dtypes  # TensorFlow's own dependency: always there
    dtype = ml_dtypes.bfloat16
  rng = np.random.default_rng(2)
  tokens = ["[CLS]", "héllo", "日本", "emoji😀", 'say "hi"', "back\\slash", "tab\tnew\nline",
            "[SEP]"]
  token_counts = [8, 3, 1, 6]  # seq is 11: rows past each example's tokens are padding.
  layer_indexes = [-1, -2, 0]
  with np.errstate(over="ignore"):  # -3e38 is -inf in float16 and bfloat16: also a case.
    layers = [_edge_case_layer(rng, (4, 11, 48)).astype(dtype) for _ in layer_indexes]
  features = [feature_extraction.InputFeatures(100 + i, tokens[:count], [], [], [])
              for i, count in enumerate(token_counts)]
  out = io.StringIO()
  with feature_extraction.JsonlFeatureWriter(out, layer_indexes) as writer:
    writer.write_batch(features[:2], [layer[:2] for layer in layers])
    writer.write_batch(features[2:], [layer[2:] for layer in layers])
  expected = "".join(
      _spec_jsonl_line(f.unique_id, f.tokens, layer_indexes, [layer[i] for layer in layers])
      + "\n" for i, f in enumerate(features))
  assert out.getvalue() == expected
  assert writer.num_written == 4
  assert writer.bytes_written == len(expected.encode("utf-8"))


def test_float_rows_is_json_dumps_of_each_double():
  """_jsonl.float_rows writes any double as json.dumps does; round(x, 6) takes a fast path."""
  rng = np.random.default_rng(3)
  values = np.concatenate([
      np.arange(-300_000, 300_000) / 1e6,  # Every 6-decimal value in [-0.3, 0.3).
      rng.integers(-10**15, 10**15, 20_000) / 1e6,  # Up to 15 significant digits.
      rng.integers(-10**17, 10**17, 20_000) / 1e6,  # Past the fast path.
      rng.normal(0, 1, 20_000),  # Not rounded: Python's repr.
      np.exp(rng.uniform(-700, 700, 20_000)),
      rng.integers(0, 2**64, 20_000, dtype=np.uint64).view(np.float64),  # Any bits.
      [0.0, -0.0, np.nan, -np.nan, np.inf, -np.inf, 1e9, 999999999.999999, 1e16, 5e-324]])
  rows = values.reshape(-1, 10)
  assert _jsonl.float_rows(rows) == [json.dumps(row) for row in rows.tolist()]
  assert _jsonl.float_rows(np.zeros((2, 0))) == ["[]", "[]"]
  with pytest.raises(TypeError, match="2-D float64"):
    _jsonl.float_rows(np.zeros((2, 3), np.float32))


def test_pipeline_is_lazy(tokenizer):
  """Endless input: the first batches come out without reading everything first."""
  endless = (feature_extraction.InputExample(i, f"line number {i}") for i in itertools.count())
  features = feature_extraction.convert_examples_to_features(endless, 8, tokenizer, chunk_size=4)
  batches = list(itertools.islice(feature_extraction.batch_features(features, 3), 2))
  assert [f.unique_id for batch, _ in batches for f in batch] == [0, 1, 2, 3, 4, 5]


def test_writer_checks_layer_count():
  writer = feature_extraction.JsonlFeatureWriter(io.StringIO(), [-1, -2])
  with pytest.raises(ValueError, match=r"1 layer outputs for layer indexes \[-1, -2\]"):
    writer.write_batch([], [np.zeros((0, 4, 2), np.float32)])
