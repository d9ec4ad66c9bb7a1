"""extract_features.py: the real MiniLM against Hugging Face's reference hidden states, Google's
JSONL format exactly, streaming in input order, and bad-flag errors."""
import json

import numpy as np
import pytest
import tiny
from finetuning_helpers import run_script

import extract_features
import modeling
import tokenization
from bert import feature_extraction


@pytest.fixture(scope="module")
def minilm_jsonl(converted_minilm, fixture_path, repo_dir, tmp_path_factory):
  """The fixture's examples through extract_features.py (layers -1 and -6, batch 3, so the
  last batch is partial), and the reference."""
  reference = dict(np.load(fixture_path))
  folder = tmp_path_factory.mktemp("extract_features")
  input_file = folder / "input.txt"
  input_file.write_text("".join(f"{e}\n" for e in reference["examples"]), encoding="utf-8")
  output_file = folder / "output.jsonl"
  run_script(repo_dir, "extract_features.py", {
      "input_file": input_file, "output_file": output_file,
      "vocab_file": converted_minilm / "vocab.txt",
      "bert_config_file": converted_minilm / "bert_config.json",
      "init_checkpoint": converted_minilm / "bert_model.ckpt",
      "layers": "-1,-6", "max_seq_length": 32, "batch_size": 3, "do_lower_case": True})
  lines = output_file.read_text(encoding="utf-8").splitlines()
  return reference, [json.loads(line) for line in lines]


def test_minilm_layers_match_reference(minilm_jsonl):
  reference, records = minilm_jsonl
  layers = list(reference["layers"])
  # Layer -1 is the 6th (last) Transformer layer; -6 the first (hidden state 1).
  expected = {-1: reference["hidden_states"][layers.index(6)],
              -6: reference["hidden_states"][layers.index(1)]}
  assert len(records) == len(reference["examples"])
  for row, record in enumerate(records):
    num_tokens = int(reference["input_mask"][row].sum())
    for layer_position, index in enumerate((-1, -6)):
      values = np.array([f["layers"][layer_position]["values"] for f in record["features"]])
      assert values.shape == (num_tokens, 384)
      diff = np.abs(values - expected[index][row, :num_tokens]).max()
      assert diff <= 1e-4, f"example {row}, layer {index}: max abs diff {diff}"


def test_jsonl_format_is_googles(minilm_jsonl):
  reference, records = minilm_jsonl
  for row, record in enumerate(records):
    assert list(record) == ["linex_index", "features"]
    assert record["linex_index"] == row
    tokens = [f["token"] for f in record["features"]]
    # [CLS] and [SEP] included, padding not: exactly the reference's tokens.
    assert tokens == str(reference["tokens"][row]).split(" ")
    assert tokens[0] == "[CLS]" and tokens[-1] == "[SEP]"
    for feature in record["features"]:
      assert list(feature) == ["token", "layers"]
      assert [layer["index"] for layer in feature["layers"]] == [-1, -6]
      for layer in feature["layers"]:
        assert list(layer) == ["index", "values"]
        assert all(round(v, 6) == v for v in layer["values"])


@pytest.fixture(scope="module")
def tiny_model_and_tokenizer(uncased_vocab):
  config = tiny.config(30522, max_position_embeddings=32)
  return (modeling.BertModel(config),
          tokenization.FullTokenizer(str(uncased_vocab), do_lower_case=True))


def test_extract_streams_windows_in_input_order(tiny_model_and_tokenizer, tmp_path,
                                                monkeypatch):
  """Lines are read a window of batches ahead of the writer, no more, and written in input
  order although each window runs sorted by length."""
  model, tokenizer = tiny_model_and_tokenizer
  input_file = tmp_path / "input.txt"
  input_file.write_text("".join(f"line {i}{' word' * (i * 7 % 13)}\n" for i in range(3000)))
  lines_read, read_before_first_write = [], []
  read_examples = feature_extraction.read_examples

  def counting_read_examples(path):
    for example in read_examples(path):
      lines_read.append(example.unique_id)
      yield example
  write_batch = feature_extraction.JsonlFeatureWriter.write_batch

  def recording_write_batch(writer, features, layer_outputs):
    read_before_first_write.append(len(lines_read))
    write_batch(writer, features, layer_outputs)
  monkeypatch.setattr(feature_extraction, "read_examples", counting_read_examples)
  monkeypatch.setattr(feature_extraction.JsonlFeatureWriter, "write_batch",
                      recording_write_batch)
  output_file = tmp_path / "output.jsonl"
  assert extract_features.extract(str(input_file), str(output_file), model, tokenizer, [-1],
                                  max_seq_length=32, batch_size=7) == 3000
  # One tokenisation chunk (1024 lines) covers the first window (7 x 16 lines).
  assert read_before_first_write[0] <= 1024
  records = [json.loads(line) for line in output_file.read_text().splitlines()]
  assert [r["linex_index"] for r in records] == list(range(3000))
  assert all([f["token"] for f in r["features"]].count("word") == i * 7 % 13
             for i, r in enumerate(records))


def test_batches_cut_by_length_give_the_padded_values(tiny_model_and_tokenizer, tmp_path):
  model, tokenizer = tiny_model_and_tokenizer
  input_file = tmp_path / "input.txt"
  input_file.write_text("".join(f"{' '.join(['word'] * (i % 29))} ||| b\n"
                                for i in range(100)))
  values = {}
  for pad in (False, True):
    output_file = tmp_path / f"pad_{pad}.jsonl"
    extract_features.extract(str(input_file), str(output_file), model, tokenizer, [-1, 0],
                             max_seq_length=32, batch_size=8, pad_to_max_length=pad)
    values[pad] = [[layer["values"] for token in json.loads(line)["features"]
                    for layer in token["layers"]]
                   for line in output_file.read_text().splitlines()]
  assert len(values[False]) == len(values[True]) == 100
  for cut, padded in zip(values[False], values[True]):
    np.testing.assert_allclose(cut, padded, atol=1e-5)


def test_extract_matches_model_and_rejects_bad_layers(tiny_model_and_tokenizer, tmp_path):
  model, tokenizer = tiny_model_and_tokenizer
  input_file = tmp_path / "input.txt"
  input_file.write_text("a short line\nquestion ||| answer\n\nthe last line of all\n")
  output_file = tmp_path / "output.jsonl"
  assert extract_features.extract(str(input_file), str(output_file), model, tokenizer,
                                  [-2, 0], max_seq_length=16, batch_size=3) == 4
  records = [json.loads(line) for line in output_file.read_text().splitlines()]
  features = list(feature_extraction.convert_examples_to_features(
      feature_extraction.read_examples(str(input_file)), 16, tokenizer))
  outputs = model({"input_ids": np.array([f.input_ids for f in features]),
                   "input_mask": np.array([f.input_mask for f in features]),
                   "token_type_ids": np.array([f.input_type_ids for f in features])})
  first_layer = np.asarray(outputs["encoder_outputs"][0])
  for row, (record, feature) in enumerate(zip(records, features)):
    assert [f["token"] for f in record["features"]] == feature.tokens
    values = np.array([f["layers"][1]["values"] for f in record["features"]])
    np.testing.assert_allclose(values, first_layer[row, :len(feature.tokens)], atol=1e-5)
  with pytest.raises(ValueError, match="index -3 is out of range"):
    extract_features.extract(str(input_file), str(output_file), model, tokenizer, [-3],
                             max_seq_length=16, batch_size=3)
