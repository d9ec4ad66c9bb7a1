"""Serving SavedModels (ids and raw text) reload with tf.saved_model.load and match Keras."""
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_text  # noqa: F401 (registers its ops)
import tiny

import export_saved_model
import modeling
import tokenization

VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "cat", "sat", "on", "mat", "a",
         "dog", "##s", "run", ".", ",", "!", "un", "##believ", "##able", "cafe"]
MAX_SEQ_LENGTH = 8


@pytest.fixture(scope="module")
def model():
  config = tiny.config(len(VOCAB), num_attention_heads=4, max_position_embeddings=16)
  return modeling.BertModel(config)


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
  vocab_file = tmp_path_factory.mktemp("vocab") / "vocab.txt"
  vocab_file.write_text("\n".join(VOCAB) + "\n")
  return tokenization.FullTokenizer(str(vocab_file), do_lower_case=True)


def test_ids_saved_model_matches_keras(model, tmp_path):
  export_saved_model.export(model, str(tmp_path / "ids"))
  serving = tf.saved_model.load(str(tmp_path / "ids")).signatures["serving_default"]
  rng = np.random.default_rng(0)
  input_ids = rng.integers(1, len(VOCAB), size=(3, 9)).astype("int32")
  input_mask = np.ones_like(input_ids)
  input_mask[1, 5:] = 0
  token_type_ids = np.zeros_like(input_ids)
  token_type_ids[:, 4:] = 1
  served = serving(input_ids=tf.constant(input_ids), input_mask=tf.constant(input_mask),
                   token_type_ids=tf.constant(token_type_ids))
  expected = model({"input_ids": input_ids, "input_mask": input_mask,
                    "token_type_ids": token_type_ids})
  for key in ("pooled_output", "sequence_output"):
    np.testing.assert_allclose(served[key], expected[key], atol=1e-5)


def test_text_saved_model_tokenizes_in_graph(model, tokenizer, tmp_path):
  export_saved_model.export(model, str(tmp_path / "text"), tokenizer, MAX_SEQ_LENGTH)
  serving = tf.saved_model.load(str(tmp_path / "text")).signatures["serving_default"]
  texts = ["The cat sat on the mat.", "Unbelievable dogs RUN!", "Café, café, café, café, café",
           "zebra"]
  served = serving(text=tf.constant(texts))

  rows = []
  for text in texts:
    ids = tokenizer.convert_tokens_to_ids(tokenizer.tokenize(text))[:MAX_SEQ_LENGTH - 2]
    rows.append([VOCAB.index("[CLS]")] + ids + [VOCAB.index("[SEP]")])
  width = max(len(row) for row in rows)
  input_ids = np.array([row + [0] * (width - len(row)) for row in rows], "int32")
  input_mask = np.array([[1] * len(row) + [0] * (width - len(row)) for row in rows], "int32")
  assert width == MAX_SEQ_LENGTH  # the café row was truncated
  assert input_ids[3, 1] == VOCAB.index("[UNK]")
  np.testing.assert_array_equal(served["input_ids"], input_ids)
  np.testing.assert_array_equal(served["input_mask"], input_mask)

  expected = model({"input_ids": input_ids, "input_mask": input_mask,
                    "token_type_ids": np.zeros_like(input_ids)})
  for key in ("pooled_output", "sequence_output"):
    np.testing.assert_allclose(served[key], expected[key], atol=1e-5)


def test_text_serving_rejects_impossible_lengths(model, tokenizer):
  with pytest.raises(ValueError, match="max_seq_length=64"):
    export_saved_model.TextServing(model, tokenizer, 64)


def test_cli_exports_text_model_from_a_checkpoint(model, tokenizer, tmp_path, repo_dir):
  import subprocess
  import sys

  from bert import checkpoints
  folder = tmp_path / "ckpt"
  checkpoints.write_tf1_checkpoint(checkpoints.model_tensors(model),
                                   str(folder / "bert_model.ckpt"))
  (folder / "bert_config.json").write_text(model.config.to_json_string())
  (folder / "vocab.txt").write_text("\n".join(VOCAB) + "\n")
  subprocess.run([sys.executable, str(repo_dir / "export_saved_model.py"),
                  f"--init_checkpoint={folder / 'bert_model.ckpt'}",
                  f"--export_dir={tmp_path / 'served'}", "--serving_input=text",
                  f"--max_seq_length={MAX_SEQ_LENGTH}"], check=True, cwd=repo_dir,
                 capture_output=True)
  serving = tf.saved_model.load(str(tmp_path / "served")).signatures["serving_default"]
  served = serving(text=tf.constant(["a dog sat"]))
  ids = [2] + tokenizer.convert_tokens_to_ids(["a", "dog", "sat"]) + [3]
  np.testing.assert_array_equal(served["input_ids"], [ids])
  expected = model({"input_ids": np.array([ids], "int32")})
  np.testing.assert_allclose(served["pooled_output"], expected["pooled_output"], atol=1e-5)
