"""Acceptance test: the real all-MiniLM-L6-v2, converted with convert_checkpoint.py to Google's
TF1 format and loaded into our model, reproduces Hugging Face's reference outputs."""
import subprocess
import sys

import numpy as np
import pytest

import modeling
import tokenization
from bert import checkpoints

MAX_SEQ_LENGTH = 32


@pytest.fixture(scope="module")
def reference(fixture_path):
  return dict(np.load(fixture_path))


@pytest.fixture(scope="module")
def converted_dir(minilm_dir, repo_dir, tmp_path_factory):
  """MiniLM converted once by the real CLI (Hugging Face folder -> Google TF1)."""
  output_dir = tmp_path_factory.mktemp("minilm_tf1")
  subprocess.run([sys.executable, str(repo_dir / "convert_checkpoint.py"),
                  f"--input={minilm_dir}", f"--output_dir={output_dir}"],
                 check=True, cwd=repo_dir, capture_output=True)
  return output_dir


def test_conversion_writes_googles_layout(converted_dir):
  assert (converted_dir / "bert_config.json").exists()
  assert (converted_dir / "bert_model.ckpt.index").exists()
  assert (converted_dir / "vocab.txt").exists()
  config = modeling.BertConfig.from_json_file(converted_dir / "bert_config.json")
  # HF's "gelu" is exact erf; it must not turn into Google's tanh "gelu" on the way.
  assert config.hidden_act == "gelu_exact"
  names = checkpoints.read_tf1_checkpoint(str(converted_dir / "bert_model.ckpt"))[0]
  assert "bert/encoder/layer_5/output/LayerNorm/gamma" in names
  assert len(names) == 5 + 16 * 6 + 2  # embeddings, 6 layers, pooler: every HF weight


def test_parity_with_hugging_face(converted_dir, reference):
  config = modeling.BertConfig.from_json_file(converted_dir / "bert_config.json")
  model = modeling.BertModel(config)
  report = checkpoints.init_from_checkpoint(model, converted_dir / "bert_model.ckpt",
                                            strict=True)
  assert report.format == "tf1" and not report.missing and not report.unused
  outputs = model({"input_ids": reference["input_ids"],
                   "input_mask": reference["input_mask"],
                   "token_type_ids": reference["segment_ids"]}, training=False)
  hidden_states = [outputs["embedding_output"]] + outputs["encoder_outputs"]
  for index, layer in enumerate(reference["layers"]):
    diff = np.abs(np.asarray(hidden_states[layer]) - reference["hidden_states"][index])
    assert diff.max() <= 1e-4, f"hidden state {layer}: max abs diff {diff.max()}"
  diff = np.abs(np.asarray(outputs["pooled_output"]) - reference["pooled_output"])
  assert diff.max() <= 1e-4, f"pooled output: max abs diff {diff.max()}"


def _encode_pair(tokenizer, example):
  """Google's layout: [CLS] a [SEP] (b [SEP]), longest-first truncation, zero padding."""
  text_a, _, text_b = example.partition(" ||| ")
  tokens_a = tokenizer.tokenize(text_a)
  tokens_b = tokenizer.tokenize(text_b) if text_b else []
  budget = MAX_SEQ_LENGTH - (3 if tokens_b else 2)
  while len(tokens_a) + len(tokens_b) > budget:
    (tokens_a if len(tokens_a) > len(tokens_b) else tokens_b).pop()
  tokens = ["[CLS]"] + tokens_a + ["[SEP]"]
  segment_ids = [0] * len(tokens)
  if tokens_b:
    tokens += tokens_b + ["[SEP]"]
    segment_ids += [1] * (len(tokens_b) + 1)
  input_ids = tokenizer.convert_tokens_to_ids(tokens)
  padding = [0] * (MAX_SEQ_LENGTH - len(input_ids))
  return input_ids + padding, segment_ids + padding, [1] * len(input_ids) + padding


def test_tokenizer_reproduces_fixture_ids(uncased_vocab, reference):
  tokenizer = tokenization.FullTokenizer(str(uncased_vocab), do_lower_case=True)
  for row, example in enumerate(reference["examples"]):
    input_ids, segment_ids, input_mask = _encode_pair(tokenizer, str(example))
    np.testing.assert_array_equal(input_ids, reference["input_ids"][row], err_msg=example)
    np.testing.assert_array_equal(segment_ids, reference["segment_ids"][row])
    np.testing.assert_array_equal(input_mask, reference["input_mask"][row])
