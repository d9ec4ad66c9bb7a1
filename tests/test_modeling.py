"""Tests of modeling.py on tiny configs: shapes, names, masking, precision, XLA, losses."""
import ast
import json
import math
import pathlib

import keras
import numpy as np
import pytest
import tensorflow as tf
import tiny

import modeling

REPO = pathlib.Path(__file__).resolve().parents[1]
VOCAB = 40


def tiny_config(**overrides):
  return tiny.config(VOCAB, **{"num_attention_heads": 4, "max_position_embeddings": 32,
                               **overrides})


def random_inputs(batch=2, seq=12, seed=0, num_padding=(0, 4)):
  rng = np.random.default_rng(seed)
  input_ids = rng.integers(1, VOCAB, size=(batch, seq)).astype("int32")
  input_mask = np.ones((batch, seq), "int32")
  for row, pad in enumerate(num_padding[:batch]):
    if pad:
      input_mask[row, -pad:] = 0
      input_ids[row, -pad:] = 0
  token_type_ids = np.zeros((batch, seq), "int32")
  token_type_ids[:, seq // 2:] = 1
  return {"input_ids": input_ids, "input_mask": input_mask, "token_type_ids": token_type_ids}


@pytest.fixture(scope="module")
def bert():
  keras.utils.set_random_seed(1)
  return modeling.BertModel(tiny_config())


@pytest.fixture(scope="module")
def pretraining_model():
  keras.utils.set_random_seed(2)
  return modeling.BertPretrainingModel(tiny_config())


def test_output_shapes(bert):
  outputs = bert(random_inputs(batch=3, seq=10, num_padding=(0, 2, 5)))
  assert outputs["sequence_output"].shape == (3, 10, 32)
  assert outputs["pooled_output"].shape == (3, 32)
  assert outputs["embedding_output"].shape == (3, 10, 32)
  assert len(outputs["encoder_outputs"]) == 2
  assert all(x.shape == (3, 10, 32) for x in outputs["encoder_outputs"])
  np.testing.assert_array_equal(outputs["encoder_outputs"][-1], outputs["sequence_output"])
  assert tuple(bert.get_embedding_table().shape) == (VOCAB, 32)


def test_variable_paths_are_googles_names(pretraining_model):
  paths = {v.path: tuple(v.shape) for v in pretraining_model.weights}
  expected = {
      "bert/embeddings/word_embeddings": (VOCAB, 32),
      "bert/embeddings/token_type_embeddings": (2, 32),
      "bert/embeddings/position_embeddings": (32, 32),
      "bert/embeddings/LayerNorm/gamma": (32,), "bert/embeddings/LayerNorm/beta": (32,),
      "bert/pooler/dense/kernel": (32, 32), "bert/pooler/dense/bias": (32,),
      "cls/predictions/transform/dense/kernel": (32, 32),
      "cls/predictions/transform/dense/bias": (32,),
      "cls/predictions/transform/LayerNorm/gamma": (32,),
      "cls/predictions/transform/LayerNorm/beta": (32,),
      "cls/predictions/output_bias": (VOCAB,),
      "cls/seq_relationship/output_weights": (2, 32), "cls/seq_relationship/output_bias": (2,),
  }
  for layer in range(2):
    prefix = f"bert/encoder/layer_{layer}/"
    for name in ("query", "key", "value"):
      expected[f"{prefix}attention/self/{name}/kernel"] = (32, 32)
      expected[f"{prefix}attention/self/{name}/bias"] = (32,)
    expected[f"{prefix}attention/output/dense/kernel"] = (32, 32)
    expected[f"{prefix}attention/output/dense/bias"] = (32,)
    expected[f"{prefix}intermediate/dense/kernel"] = (32, 64)
    expected[f"{prefix}intermediate/dense/bias"] = (64,)
    expected[f"{prefix}output/dense/kernel"] = (64, 32)
    expected[f"{prefix}output/dense/bias"] = (32,)
    for norm in ("attention/output/LayerNorm", "output/LayerNorm"):
      expected[f"{prefix}{norm}/gamma"] = (32,)
      expected[f"{prefix}{norm}/beta"] = (32,)
  assert paths == expected
  # The tied output embedding is shared, not a second variable.
  assert len(pretraining_model.weights) == len(expected)


def test_padding_never_changes_unpadded_outputs(bert):
  short = random_inputs(batch=2, seq=7, num_padding=(0, 0))
  padded = {k: np.concatenate([v, np.zeros((2, 5), "int32")], axis=1) for k, v in short.items()}
  padded["input_ids"][:, 7:] = np.random.default_rng(3).integers(1, VOCAB, size=(2, 5))
  out_short, out_padded = bert(short), bert(padded)
  for key in ("sequence_output", "embedding_output"):
    np.testing.assert_allclose(out_padded[key][:, :7], out_short[key], atol=1e-5)
  np.testing.assert_allclose(out_padded["pooled_output"], out_short["pooled_output"], atol=1e-5)
  # Different ids and types at padded positions: bit-identical unpadded outputs.
  other = {k: v.copy() for k, v in padded.items()}
  other["input_ids"][:, 7:] = 5
  other["token_type_ids"][:, 7:] = 1
  np.testing.assert_array_equal(bert(other)["sequence_output"][:, :7],
                                out_padded["sequence_output"][:, :7])


def test_masking_matters(bert):
  inputs = random_inputs(num_padding=(0, 0))
  masked = dict(inputs, input_mask=np.concatenate(
      [np.ones((2, 6), "int32"), np.zeros((2, 6), "int32")], axis=1))
  diff = np.abs(bert(inputs)["sequence_output"][:, :6] - bert(masked)["sequence_output"][:, :6])
  assert diff.max() > 1e-3


def test_defaults_for_optional_inputs(bert):
  ids = random_inputs(num_padding=(0, 0))["input_ids"]
  explicit = bert({"input_ids": ids, "input_mask": np.ones_like(ids),
                   "token_type_ids": np.zeros_like(ids)})
  np.testing.assert_array_equal(bert({"input_ids": ids})["sequence_output"],
                                explicit["sequence_output"])
  inputs = random_inputs()
  google_names = {"input_ids": inputs["input_ids"], "input_mask": inputs["input_mask"],
                  "segment_ids": inputs["token_type_ids"]}
  np.testing.assert_array_equal(bert(google_names)["sequence_output"],
                                bert(inputs)["sequence_output"])


def test_dropout_follows_training_flag():
  keras.utils.set_random_seed(4)
  model = modeling.BertModel(tiny_config(hidden_dropout_prob=0.3,
                                         attention_probs_dropout_prob=0.3))
  inputs = random_inputs()
  inference = [model(inputs, training=False)["sequence_output"] for _ in range(2)]
  np.testing.assert_array_equal(inference[0], inference[1])
  trained = model(inputs, training=True)["sequence_output"]
  assert np.abs(trained - inference[0]).max() > 1e-3


def test_activation_names_are_unambiguous(tmp_path):
  x = np.linspace(-4, 4, 41).astype("float32")
  erf = np.array([math.erf(v / math.sqrt(2)) for v in x])
  np.testing.assert_allclose(modeling.get_activation("gelu_exact")(x), 0.5 * x * (1 + erf),
                             atol=1e-6)
  tanh_form = 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3)))
  np.testing.assert_allclose(modeling.get_activation("gelu_tanh")(x), tanh_form, atol=1e-6)
  assert np.abs(tanh_form - 0.5 * x * (1 + erf)).max() > 1e-4  # the two really differ

  google = {"vocab_size": 10, "hidden_size": 8, "num_hidden_layers": 1,
            "num_attention_heads": 2, "intermediate_size": 16, "hidden_act": "gelu"}
  (tmp_path / "bert_config.json").write_text(json.dumps(google))
  assert modeling.BertConfig.from_json_file(tmp_path / "bert_config.json").hidden_act == \
      "gelu_tanh"
  hf = dict(google, model_type="bert", layer_norm_eps=1e-7)
  (tmp_path / "config.json").write_text(json.dumps(hf))
  hf_config = modeling.BertConfig.from_json_file(tmp_path / "config.json")
  assert hf_config.hidden_act == "gelu_exact" and hf_config.layer_norm_eps == 1e-7
  assert modeling.BertConfig.from_hf_dict(dict(hf, hidden_act="gelu_new")).hidden_act == \
      "gelu_tanh"
  # Our JSON reads back as the same function; Hugging Face's dict reads back too.
  (tmp_path / "ours.json").write_text(hf_config.to_json_string())
  assert modeling.BertConfig.from_json_file(tmp_path / "ours.json") == hf_config
  assert modeling.BertConfig.from_hf_dict(hf_config.to_hf_dict()) == hf_config


def test_config_json_round_trip(tmp_path):
  config = tiny_config(hidden_act="relu", initializer_range=0.05)
  path = tmp_path / "bert_config.json"
  path.write_text(config.to_json_string())
  assert modeling.BertConfig.from_json_file(path) == config
  assert json.loads(path.read_text())["vocab_size"] == VOCAB
  assert json.loads(tiny_config().to_json_string())["hidden_act"] == "gelu"  # Google-readable


def test_config_errors_name_the_file(tmp_path):
  path = tmp_path / "broken.json"
  path.write_text('{\n  "vocab_size": 10,\n  "hidden_size": \n}')
  with pytest.raises(ValueError, match=r"broken.json:4: invalid JSON"):
    modeling.BertConfig.from_json_file(path)
  path.write_text(json.dumps({"vocab_size": 10, "hidden_size": 30, "num_hidden_layers": 1,
                              "num_attention_heads": 4, "intermediate_size": 8}))
  with pytest.raises(ValueError, match="broken.json.*multiple"):
    modeling.BertConfig.from_json_file(path)
  with pytest.raises(ValueError, match="Unknown activation"):  # ambiguous outside Google's JSON
    modeling.BertConfig(vocab_size=10, hidden_act="gelu")


def test_save_load_round_trip(tmp_path, pretraining_model):
  inputs = dict(random_inputs(), masked_lm_positions=np.array([[1, 2], [0, 3]], "int32"))
  expected = pretraining_model(inputs)
  pretraining_model.save_weights(tmp_path / "model.weights.h5")
  restored = modeling.BertPretrainingModel(tiny_config())
  restored.load_weights(tmp_path / "model.weights.h5")
  for key in ("masked_lm_logits", "next_sentence_logits", "sequence_output"):
    np.testing.assert_array_equal(restored(inputs)[key], expected[key])

  pretraining_model.save(tmp_path / "model.keras")
  reloaded = keras.saving.load_model(tmp_path / "model.keras")
  assert isinstance(reloaded, modeling.BertPretrainingModel)
  assert reloaded.config == pretraining_model.config
  np.testing.assert_array_equal(reloaded(inputs)["masked_lm_logits"],
                                expected["masked_lm_logits"])


def test_get_config_from_config_rebuild_every_config_built_class():
  """modeling.BertConfigSerializable: each layer and model, ours and the task heads', comes
  back from its get_config with the same class, BertConfig and arguments."""
  from bert import task_models
  config = tiny_config(hidden_dropout_prob=0.0, initializer_range=0.05)
  originals = [
      modeling.BertEmbeddings(config), modeling.TransformerLayer(config, name="layer_1"),
      modeling.NextSentenceHead(config), modeling.BertModel(config, name="encoder"),
      modeling.BertPretrainingModel(config, use_next_sentence=False),
      task_models.BertClassifier(config, num_labels=3), task_models.BertSquad(config),
      task_models.BertTokenClassifier(config, num_labels=5)]
  for original in originals:
    rebuilt = type(original).from_config(original.get_config())
    assert type(rebuilt) is type(original)
    assert rebuilt.config == config and rebuilt.name == original.name
    assert rebuilt.get_config() == original.get_config()
  # Models list their constructor's arguments; layers keep Keras' entries (dtype, ...) too.
  assert rebuilt.get_config() == {"name": "bert_token_classifier", "config": config.to_dict(),
                                  "num_labels": 5}
  assert originals[4].get_config()["use_next_sentence"] is False
  assert {"name", "dtype", "trainable", "config"} <= originals[0].get_config().keys()
  head = task_models.OutputLayer(3, 16, initializer_range=0.05, variable_scope="cls/squad")
  rebuilt = task_models.OutputLayer.from_config(head.get_config())
  assert rebuilt.get_config() == head.get_config()
  assert [v.path for v in rebuilt.weights] == ["cls/squad/output_weights", "cls/squad/output_bias"]


@pytest.mark.parametrize("policy,compute_dtype,atol", [("mixed_float16", "float16", 2e-2),
                                                       ("mixed_bfloat16", "bfloat16", 1.5e-1)])
def test_mixed_precision(policy, compute_dtype, atol, pretraining_model):
  inputs = dict(random_inputs(), masked_lm_positions=np.array([[1, 2], [0, 3]], "int32"))
  reference = pretraining_model(inputs)
  keras.mixed_precision.set_global_policy(policy)
  try:
    model = modeling.BertPretrainingModel(tiny_config())
  finally:
    keras.mixed_precision.set_global_policy("float32")
  model.set_weights(pretraining_model.get_weights())
  assert all(v.dtype == "float32" for v in model.weights)
  outputs = model(inputs)
  assert outputs["sequence_output"].dtype == compute_dtype
  assert outputs["masked_lm_logits"].dtype == "float32"
  assert outputs["next_sentence_logits"].dtype == "float32"
  features = {"masked_lm_ids": np.array([[3, 4], [5, 0]]),
              "masked_lm_weights": np.array([[1.0, 1.0], [1.0, 0.0]], "float32"),
              "next_sentence_labels": np.array([[0], [1]])}
  losses = modeling.pretraining_losses(outputs, features)
  assert all(value.dtype == "float32" for value in losses.values())
  reference_losses = modeling.pretraining_losses(reference, features)
  np.testing.assert_allclose(losses["loss"], reference_losses["loss"], atol=atol * 5)
  np.testing.assert_allclose(np.asarray(outputs["sequence_output"], "float32"),
                             reference["sequence_output"], atol=atol * 5)
  np.testing.assert_allclose(outputs["masked_lm_logits"], reference["masked_lm_logits"],
                             atol=atol)


def test_xla_matches_eager(pretraining_model):
  inputs = dict(random_inputs(), masked_lm_positions=np.array([[1, 2], [0, 3]], "int32"))
  eager = pretraining_model(inputs)
  compiled = tf.function(lambda x: pretraining_model(x, training=False), jit_compile=True)
  xla = compiled({k: tf.constant(v) for k, v in inputs.items()})
  for key in ("masked_lm_logits", "next_sentence_logits", "sequence_output", "pooled_output"):
    np.testing.assert_allclose(xla[key], eager[key], atol=1e-5)


def test_masked_lm_head_only_at_positions(pretraining_model):
  inputs = dict(random_inputs(), masked_lm_positions=np.array([[5, 1, 0], [2, 2, 7]], "int32"))
  outputs = pretraining_model(inputs)
  head = pretraining_model.masked_lm
  all_positions = np.tile(np.arange(12, dtype="int32"), (2, 1))
  every_logit = np.asarray(head(outputs["sequence_output"], all_positions))
  expected = np.take_along_axis(every_logit, inputs["masked_lm_positions"][:, :, None], axis=1)
  np.testing.assert_allclose(outputs["masked_lm_logits"], expected, atol=1e-5)
  # The output projection is tied to the word embeddings.
  h = np.asarray(head.transform_layer_norm(head.transform_dense(outputs["sequence_output"])))
  table = np.asarray(pretraining_model.bert.get_embedding_table())
  bias = np.asarray(head.output_bias)
  np.testing.assert_allclose(every_logit, h @ table.T + bias, atol=1e-4)


def _log_softmax(x):
  x = x - x.max(-1, keepdims=True)
  return x - np.log(np.exp(x).sum(-1, keepdims=True))


def test_pretraining_losses_match_googles_formulas():
  rng = np.random.default_rng(5)
  mlm_logits = rng.normal(size=(3, 4, 7)).astype("float32")
  nsp_logits = rng.normal(size=(3, 2)).astype("float32")
  ids = rng.integers(0, 7, size=(3, 4))
  ids[0, 0] = mlm_logits[0, 0].argmax()  # at least one right answer
  weights = np.array([[1, 1, 1, 0], [1, 0, 0, 0], [1, 1, 1, 1]], "float32")
  labels = np.array([[0], [1], [1]])
  losses = modeling.pretraining_losses(
      {"masked_lm_logits": mlm_logits, "next_sentence_logits": nsp_logits},
      {"masked_lm_ids": ids, "masked_lm_weights": weights, "next_sentence_labels": labels})
  nll = -np.take_along_axis(_log_softmax(mlm_logits), ids[..., None], -1)[..., 0]
  mlm = (weights * nll).sum() / (weights.sum() + 1e-5)
  correct = (mlm_logits.argmax(-1) == ids).astype("float32")
  nsp_nll = -np.take_along_axis(_log_softmax(nsp_logits), labels, -1)[:, 0]
  np.testing.assert_allclose(losses["masked_lm_loss"], mlm, rtol=1e-5)
  np.testing.assert_allclose(losses["masked_lm_accuracy"],
                             (weights * correct).sum() / weights.sum(), rtol=1e-6)
  np.testing.assert_allclose(losses["next_sentence_loss"], nsp_nll.mean(), rtol=1e-5)
  np.testing.assert_allclose(losses["next_sentence_accuracy"],
                             (nsp_logits.argmax(-1) == labels[:, 0]).mean(), rtol=1e-6)
  np.testing.assert_allclose(losses["loss"], mlm + nsp_nll.mean(), rtol=1e-5)
  assert all(value.dtype == "float32" for value in losses.values())


def test_model_without_next_sentence_head():
  model = modeling.BertPretrainingModel(tiny_config(), use_next_sentence=False)
  assert not any(v.path.startswith("cls/seq_relationship") for v in model.weights)
  inputs = dict(random_inputs(), masked_lm_positions=np.array([[1, 2], [0, 3]], "int32"))
  outputs = model(inputs)
  assert "next_sentence_logits" not in outputs
  losses = modeling.pretraining_losses(
      outputs, {"masked_lm_ids": np.array([[1, 2], [3, 4]]),
                "masked_lm_weights": np.ones((2, 2), "float32")})
  assert set(losses) == {"loss", "masked_lm_loss", "masked_lm_accuracy"}
  np.testing.assert_array_equal(losses["loss"], losses["masked_lm_loss"])


def test_modeling_is_backend_agnostic():
  tree = ast.parse((REPO / "modeling.py").read_text())
  imported = set()
  for node in ast.walk(tree):
    if isinstance(node, ast.Import):
      imported.update(alias.name.split(".")[0] for alias in node.names)
    elif isinstance(node, ast.ImportFrom) and node.module:
      imported.add(node.module.split(".")[0])
  assert imported <= {"copy", "json", "math", "keras"}, imported
