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


def test_batches_stream_in_input_order(tiny_model_and_tokenizer, tmp_path, monkeypatch):
  """The pipeline reads only a bounded window ahead of the model: after the first batch of a
  3000-line file, at most one tokenisation chunk (1024 lines) plus the prefetched batches
  have been read."""
  _, tokenizer = tiny_model_and_tokenizer
  input_file = tmp_path / "input.txt"
  input_file.write_text("".join(f"line number {i}\n" for i in range(3000)))
  lines_read = []
  read_examples = feature_extraction.read_examples

  def counting_read_examples(path):
    for example in read_examples(path):
      lines_read.append(example.unique_id)
      yield example
  monkeypatch.setattr(feature_extraction, "read_examples", counting_read_examples)
  batches = extract_features.feature_batches(str(input_file), 16, tokenizer, batch_size=7)
  first_batch, inputs = next(batches)
  assert [f.unique_id for f in first_batch] == list(range(7))
  assert inputs["input_ids"].shape == (7, 16)
  assert len(lines_read) <= 1024 + 7 * 4
  next_id = 7
  for batch, inputs in batches:
    assert [f.unique_id for f in batch] == list(range(next_id, next_id + len(batch)))
    np.testing.assert_array_equal(inputs["input_ids"].numpy(),
                                  [f.input_ids for f in batch])
    next_id += len(batch)
  assert next_id == 3000


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
