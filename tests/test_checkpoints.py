"""Checkpoint I/O on tiny models: Google TF1, Hugging Face and our own; reports and round trips."""
import json

import keras
import numpy as np
import pytest
import tensorflow as tf
import tiny
from safetensors.numpy import load_file
from safetensors.numpy import save_file

import convert_checkpoint
import modeling
from bert import checkpoints

LAYER_NORM = "bert/encoder/layer_1/attention/output/LayerNorm/gamma"


def tiny_config():
  return tiny.config(30, hidden_size=16, intermediate_size=32, max_position_embeddings=16)


def google_names_and_shapes(config):
  """Google's TF1 variable names for `config`, written out from Google's modeling.py scopes
  (independently of our model), with shapes."""
  h, i = config.hidden_size, config.intermediate_size
  shapes = {"bert/embeddings/word_embeddings": (config.vocab_size, h),
            "bert/embeddings/token_type_embeddings": (config.type_vocab_size, h),
            "bert/embeddings/position_embeddings": (config.max_position_embeddings, h),
            "bert/embeddings/LayerNorm/gamma": (h,), "bert/embeddings/LayerNorm/beta": (h,),
            "bert/pooler/dense/kernel": (h, h), "bert/pooler/dense/bias": (h,),
            "cls/predictions/transform/dense/kernel": (h, h),
            "cls/predictions/transform/dense/bias": (h,),
            "cls/predictions/transform/LayerNorm/gamma": (h,),
            "cls/predictions/transform/LayerNorm/beta": (h,),
            "cls/predictions/output_bias": (config.vocab_size,),
            "cls/seq_relationship/output_weights": (2, h),
            "cls/seq_relationship/output_bias": (2,)}
  for layer in range(config.num_hidden_layers):
    p = f"bert/encoder/layer_{layer}/"
    for dense, (n_in, n_out) in {"attention/self/query": (h, h), "attention/self/key": (h, h),
                                 "attention/self/value": (h, h),
                                 "attention/output/dense": (h, h),
                                 "intermediate/dense": (h, i), "output/dense": (i, h)}.items():
      shapes[f"{p}{dense}/kernel"], shapes[f"{p}{dense}/bias"] = (n_in, n_out), (n_out,)
    for norm in ("attention/output/LayerNorm", "output/LayerNorm"):
      shapes[f"{p}{norm}/gamma"] = shapes[f"{p}{norm}/beta"] = (h,)
  return shapes


def random_google_tensors(config, seed=0):
  rng = np.random.default_rng(seed)
  return {name: rng.normal(size=shape).astype("float32")
          for name, shape in google_names_and_shapes(config).items()}


@pytest.fixture()
def google_checkpoint(tmp_path):
  """A "Google" TF1 pre-training checkpoint with Adam slots and global_step."""
  tensors = random_google_tensors(tiny_config())
  with_optimizer = dict(tensors)
  for name in list(tensors)[:3]:
    with_optimizer[name + "/adam_m"] = np.zeros_like(tensors[name])
    with_optimizer[name + "/adam_v"] = np.ones_like(tensors[name])
  with_optimizer["global_step"] = np.array(1000, "int64")
  prefix = str(tmp_path / "google" / "bert_model.ckpt")
  checkpoints.write_tf1_checkpoint(with_optimizer, prefix)
  (tmp_path / "google" / "bert_config.json").write_text(tiny_config().to_json_string())
  return prefix, tensors


def test_written_tf1_checkpoint_has_plain_google_names(google_checkpoint):
  prefix, tensors = google_checkpoint
  shape_map = tf.train.load_checkpoint(prefix).get_variable_to_shape_map()
  assert set(tensors) <= set(shape_map)
  assert shape_map["cls/seq_relationship/output_weights"] == [2, 16]


def test_google_checkpoint_loads_exactly(google_checkpoint):
  prefix, tensors = google_checkpoint
  model = modeling.BertPretrainingModel(tiny_config())
  report = checkpoints.init_from_checkpoint(model, prefix, strict=True)
  assert report.format == "tf1"
  assert sorted(report.loaded) == sorted(tensors)
  assert set(report.ignored) == {n for n in tf.train.load_checkpoint(prefix)
                                 .get_variable_to_shape_map() if n not in tensors}
  assert all(n.endswith(("/adam_m", "/adam_v")) or n == "global_step" for n in report.ignored)
  for variable in model.weights:
    np.testing.assert_array_equal(variable.numpy(), tensors[variable.path])


def test_google_round_trip_is_exact(google_checkpoint, tmp_path):
  prefix, tensors = google_checkpoint
  model = modeling.BertPretrainingModel(tiny_config())
  checkpoints.init_from_checkpoint(model, prefix, strict=True)
  exported = str(tmp_path / "exported" / "bert_model.ckpt")
  checkpoints.write_tf1_checkpoint(checkpoints.model_tensors(model), exported)
  reread, ignored = checkpoints.read_tf1_checkpoint(exported)
  assert not ignored and sorted(reread) == sorted(tensors)
  for name, value in tensors.items():
    np.testing.assert_array_equal(reread[name], value)
    assert reread[name].dtype == value.dtype


def _rewrite(prefix, tensors, new_prefix):
  checkpoints.write_tf1_checkpoint(tensors, new_prefix)
  return new_prefix


def test_renamed_layer_norm_weight_is_never_dropped_silently(google_checkpoint, tmp_path):
  _, tensors = google_checkpoint
  renamed = dict(tensors)
  renamed[LAYER_NORM.replace("gamma", "weight")] = renamed.pop(LAYER_NORM)
  prefix = _rewrite(None, renamed, str(tmp_path / "renamed" / "bert_model.ckpt"))
  model = modeling.BertPretrainingModel(tiny_config())
  report = checkpoints.init_from_checkpoint(model, prefix)
  assert report.unused == [LAYER_NORM.replace("gamma", "weight")]
  assert report.missing == [LAYER_NORM]
  assert not report.ok and LAYER_NORM in report.summary()
  with pytest.raises(ValueError, match="model variable not initialised: " + LAYER_NORM):
    checkpoints.init_from_checkpoint(modeling.BertPretrainingModel(tiny_config()), prefix,
                                     strict=True)


def test_removed_layer_norm_weight_and_bad_shapes_are_errors(google_checkpoint, tmp_path):
  _, tensors = google_checkpoint
  removed = {n: v for n, v in tensors.items() if n != LAYER_NORM}
  prefix = _rewrite(None, removed, str(tmp_path / "removed" / "bert_model.ckpt"))
  report = checkpoints.init_from_checkpoint(modeling.BertModel(tiny_config()), prefix)
  assert report.missing == [LAYER_NORM] and not report.unused
  with pytest.raises(ValueError, match=LAYER_NORM):
    checkpoints.init_from_checkpoint(modeling.BertModel(tiny_config()), prefix, strict=True)

  reshaped = dict(tensors, **{"bert/pooler/dense/bias": np.zeros(3, "float32")})
  prefix = _rewrite(None, reshaped, str(tmp_path / "reshaped" / "bert_model.ckpt"))
  report = checkpoints.init_from_checkpoint(modeling.BertModel(tiny_config()), prefix)
  assert report.shape_mismatches == {"bert/pooler/dense/bias": ((3,), (16,))}
  with pytest.raises(ValueError, match="shape mismatch: bert/pooler/dense/bias"):
    checkpoints.init_from_checkpoint(modeling.BertModel(tiny_config()), prefix, strict=True)


def test_encoder_only_model_ignores_heads_explicitly(google_checkpoint):
  prefix, tensors = google_checkpoint
  model = modeling.BertModel(tiny_config())
  report = checkpoints.init_from_checkpoint(model, prefix, strict=True)
  heads = {n for n in tensors if n.startswith("cls/")}
  assert {n for n, why in report.ignored.items() if why == "head not in this model"} == heads
  assert len(report.loaded) == len(tensors) - len(heads)
  # A new head the checkpoint cannot hold is allowed only when named.
  nsp_free = modeling.BertPretrainingModel(tiny_config(), use_next_sentence=False)
  report = checkpoints.init_from_checkpoint(nsp_free, prefix, strict=True)
  assert "cls/seq_relationship/output_weights" in report.ignored


def _hf_state_dict(tensors, prefix=""):
  """Our Google-named arrays written out independently in Hugging Face's layout."""
  state = {}
  for name, value in tensors.items():
    hf_name, transpose = checkpoints.google_to_hf_name(name)
    state[(prefix if not hf_name.startswith("cls.") else "") + hf_name] = \
        np.ascontiguousarray(value.T) if transpose else value
  return state


def test_hf_names_follow_hugging_face():
  pairs = {"bert/embeddings/word_embeddings": ("embeddings.word_embeddings.weight", False),
           "bert/embeddings/LayerNorm/gamma": ("embeddings.LayerNorm.weight", False),
           "bert/encoder/layer_0/attention/self/query/kernel":
               ("encoder.layer.0.attention.self.query.weight", True),
           "bert/encoder/layer_1/output/LayerNorm/beta": ("encoder.layer.1.output.LayerNorm.bias",
                                                          False),
           "bert/pooler/dense/kernel": ("pooler.dense.weight", True),
           "cls/predictions/output_bias": ("cls.predictions.bias", False),
           "cls/seq_relationship/output_weights": ("cls.seq_relationship.weight", False)}
  for google, hf in pairs.items():
    assert checkpoints.google_to_hf_name(google) == hf
  for google in google_names_and_shapes(tiny_config()):
    hf_name, transpose = checkpoints.google_to_hf_name(google)
    assert checkpoints.hf_to_google_name(hf_name) == (google, transpose)
    assert checkpoints.hf_to_google_name("bert." + hf_name)[0] == google
  assert checkpoints.hf_to_google_name("encoder.layer.0.output.LayerNorm.gamma")[0] == \
      "bert/encoder/layer_0/output/LayerNorm/gamma"
  assert checkpoints.hf_to_google_name("encoder.layer.0.crossattention.weight") is None


def test_hf_import_export_round_trip_is_exact(tmp_path):
  config = tiny_config()
  tensors = random_google_tensors(config, seed=1)
  state = _hf_state_dict(tensors, prefix="bert.")
  state["bert.embeddings.position_ids"] = np.arange(16, dtype="int64")[None]
  state["cls.predictions.decoder.weight"] = state["bert.embeddings.word_embeddings.weight"]
  state["cls.predictions.decoder.bias"] = state["cls.predictions.bias"]
  hf_dir = tmp_path / "hf"
  hf_dir.mkdir()
  save_file(state, str(hf_dir / "model.safetensors"))
  (hf_dir / "config.json").write_text(json.dumps(config.to_hf_dict()))

  model = modeling.BertPretrainingModel(checkpoints.config_for_checkpoint(hf_dir))
  report = checkpoints.init_from_checkpoint(model, hf_dir, strict=True)
  assert report.format == "hf" and len(report.loaded) == len(tensors)
  assert set(report.ignored) == {"bert.embeddings.position_ids",
                                 "cls.predictions.decoder.weight",
                                 "cls.predictions.decoder.bias"}
  for variable in model.weights:
    np.testing.assert_array_equal(variable.numpy(), tensors[variable.path])

  checkpoints.write_hf_checkpoint(checkpoints.model_tensors(model), model.config,
                                  tmp_path / "exported")
  exported = load_file(str(tmp_path / "exported" / "model.safetensors"))
  assert set(exported) == set(state) - set(report.ignored)
  for name, value in exported.items():
    np.testing.assert_array_equal(value, state[name])
  exported_config = json.loads((tmp_path / "exported" / "config.json").read_text())
  assert exported_config["hidden_act"] == "gelu_new"  # Google's tanh GELU, in HF's words
  assert checkpoints.config_for_checkpoint(tmp_path / "exported") == config


def test_hf_unknown_weights_are_reported(tmp_path):
  config = tiny_config()
  state = _hf_state_dict(random_google_tensors(config))
  state["encoder.layer.0.attention.self.rotary.weight"] = np.zeros((2, 2), "float32")
  save_file(state, str(tmp_path / "model.safetensors"))
  model = modeling.BertPretrainingModel(config)
  report = checkpoints.init_from_checkpoint(model, tmp_path / "model.safetensors")
  assert report.unused == ["encoder.layer.0.attention.self.rotary.weight"]
  with pytest.raises(ValueError, match="rotary"):
    checkpoints.init_from_checkpoint(model, tmp_path / "model.safetensors", strict=True)


def test_pytorch_bin_needs_torch_or_loads(tmp_path):
  config = tiny_config()
  tensors = random_google_tensors(config)
  try:
    import torch
  except ImportError:
    torch = None
  path = tmp_path / "pytorch_model.bin"
  if torch is None:
    path.write_bytes(b"not read")
    with pytest.raises(ImportError, match="pytorch_model.bin needs PyTorch"):
      checkpoints.init_from_checkpoint(modeling.BertModel(config), path)
  else:
    torch.save({k: torch.from_numpy(v) for k, v in _hf_state_dict(tensors).items()}, path)
    model = modeling.BertPretrainingModel(config)
    assert checkpoints.init_from_checkpoint(model, path, strict=True).ok


def _train_checkpoint(model, directory):
  """What the training loop writes: model, optimizer and step under a CheckpointManager."""
  optimizer = keras.optimizers.Adam()
  optimizer.build(model.trainable_variables)
  checkpoint = tf.train.Checkpoint(model=model, optimizer=optimizer,
                                   step=tf.Variable(7, dtype=tf.int64))
  return tf.train.CheckpointManager(checkpoint, str(directory), max_to_keep=1).save()


def test_our_checkpoint_restores_model_part(tmp_path):
  config = tiny_config()
  keras.utils.set_random_seed(3)
  trained = modeling.BertPretrainingModel(config)
  _train_checkpoint(trained, tmp_path / "run")
  expected = checkpoints.model_tensors(trained)

  for model in (modeling.BertPretrainingModel(config), modeling.BertModel(config)):
    report = checkpoints.init_from_checkpoint(model, tmp_path / "run", strict=True)
    assert report.format == "ours" and not report.missing
    assert any(key.startswith("optimizer/") for key in report.ignored)
    for variable in model.weights:
      np.testing.assert_array_equal(variable.numpy(), expected[variable.path])

  encoder_only = modeling.BertModel(config)
  encoder_only.set_weights(trained.bert.get_weights())
  _train_checkpoint(encoder_only, tmp_path / "encoder_run")
  wrapper = modeling.BertPretrainingModel(config)
  report = checkpoints.init_from_checkpoint(wrapper, tmp_path / "encoder_run",
                                            allow_missing=("cls/",), strict=True)
  assert len(report.loaded) == len(encoder_only.weights)


def test_convert_between_all_formats(google_checkpoint, tmp_path):
  prefix, tensors = google_checkpoint
  convert_checkpoint.convert(prefix, str(tmp_path / "hf"), "hf")
  assert (tmp_path / "hf" / "config.json").exists()
  convert_checkpoint.convert(str(tmp_path / "hf"), str(tmp_path / "tf1"), "tf1")
  reread, _ = checkpoints.read_tf1_checkpoint(str(tmp_path / "tf1" / "bert_model.ckpt"))
  assert sorted(reread) == sorted(tensors)
  for name, value in tensors.items():
    np.testing.assert_array_equal(reread[name], value)
  assert modeling.BertConfig.from_json_file(tmp_path / "tf1" / "bert_config.json") == \
      tiny_config()

  model = modeling.BertPretrainingModel(tiny_config())
  checkpoints.init_from_checkpoint(model, prefix, strict=True)
  _train_checkpoint(model, tmp_path / "run")
  config_file = str(tmp_path / "google" / "bert_config.json")
  convert_checkpoint.convert(str(tmp_path / "run"), str(tmp_path / "from_ours"), "tf1",
                             bert_config_file=config_file)
  reread, _ = checkpoints.read_tf1_checkpoint(str(tmp_path / "from_ours" / "bert_model.ckpt"))
  assert sorted(reread) == sorted(tensors)


def test_conversion_refuses_to_drop_weights(google_checkpoint, tmp_path):
  _, tensors = google_checkpoint
  renamed = dict(tensors)
  renamed["bert/encoder/layer_0/output/LayerNorm/weight"] = renamed.pop(
      "bert/encoder/layer_0/output/LayerNorm/gamma")
  folder = tmp_path / "renamed"
  checkpoints.write_tf1_checkpoint(renamed, str(folder / "bert_model.ckpt"))
  (folder / "bert_config.json").write_text(tiny_config().to_json_string())
  with pytest.raises(ValueError, match="without losing weights"):
    convert_checkpoint.convert(str(folder), str(tmp_path / "out"))


def test_unrecognised_paths_get_clear_errors(tmp_path):
  with pytest.raises(ValueError, match="no checkpoint found"):
    checkpoints.detect_format(tmp_path)
  with pytest.raises(ValueError, match="not a checkpoint"):
    checkpoints.detect_format(tmp_path / "nothing.ckpt")


def test_tf_checkpoint_object_graph_reaches_every_variable(tmp_path):
  """tf.train.Checkpoint(model=...) alone must save every layer (Keras 3 lists would not be)."""
  model = modeling.BertPretrainingModel(tiny_config())
  prefix = tf.train.Checkpoint(model=model).write(str(tmp_path / "model_only"))
  keys = [k for k in tf.train.load_checkpoint(prefix).get_variable_to_shape_map()
          if k.startswith("model/")]
  assert len(keys) == len(model.weights)
  restored = modeling.BertModel(tiny_config())
  report = checkpoints.init_from_checkpoint(restored, prefix, strict=True)
  assert len(report.loaded) == len(restored.weights)
