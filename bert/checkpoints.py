"""Checkpoint I/O: Google's TF1 checkpoints, Hugging Face BERT weights and our own.

Every format is read into one intermediate form, a dict from Google's TF1 variable names
(`bert/encoder/layer_0/attention/self/query/kernel`, ...) to numpy arrays, which
`assign_to_model` matches against the model's variable paths (they are Google's names, see
modeling.py). Nothing is skipped silently: the returned `LoadReport` lists every checkpoint
variable that was loaded, explicitly ignored (optimizer slots, buffers, heads the model does not
have) or unused, and every model variable left uninitialised; `strict=True` turns any
unexpected mismatch into an error.
"""
import dataclasses
import json
import os
import re

import numpy as np
import tensorflow as tf
from absl import logging
from tensorflow.core.protobuf import trackable_object_graph_pb2

import modeling

# Google's AdamWeightDecayOptimizer slots and step counter: never model weights.
_TF1_OPTIMIZER_SUFFIXES = ("/adam_m", "/adam_v")
_TF1_OPTIMIZER_NAMES = ("global_step",)
# Pre-training heads: when the model has no variable under a group, a checkpoint's variables
# under it are expected to go unused (e.g. fine-tuning from a pre-training checkpoint).
HEAD_GROUPS = ("cls/predictions/", "cls/seq_relationship/")
_OBJECT_GRAPH_KEY = "_CHECKPOINTABLE_OBJECT_GRAPH"
HF_WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")


@dataclasses.dataclass
class LoadReport:
  """What `init_from_checkpoint` did with every variable on both sides."""
  source: str
  format: str
  loaded: list = dataclasses.field(default_factory=list)
  # {checkpoint name: reason}, expected leftovers: optimizer state, buffers, absent heads.
  ignored: dict = dataclasses.field(default_factory=dict)
  # Checkpoint variables with no model variable to go to: unexpected.
  unused: list = dataclasses.field(default_factory=list)
  # Model variables the checkpoint did not initialise.
  missing: list = dataclasses.field(default_factory=list)
  # {name: (checkpoint shape, model shape)}
  shape_mismatches: dict = dataclasses.field(default_factory=dict)

  @property
  def ok(self):
    return not (self.unused or self.missing or self.shape_mismatches)

  def summary(self):
    lines = [f"{self.source} ({self.format}): loaded {len(self.loaded)} variables, "
             f"ignored {len(self.ignored)}."]
    lines += [f"  checkpoint variable not used: {name}" for name in self.unused]
    lines += [f"  model variable not initialised: {name}" for name in self.missing]
    lines += [f"  shape mismatch: {name} checkpoint {ckpt} vs model {model}"
              for name, (ckpt, model) in self.shape_mismatches.items()]
    return "\n".join(lines)


# ----------------------------------------------------------------------------- formats

def detect_format(path):
  """Returns (format, resolved path): "hf" (a folder or weights file), "tf1" or "ours"
  (a checkpoint prefix; a folder resolves to bert_model.ckpt or its latest checkpoint)."""
  path = os.fspath(path)
  if os.path.isdir(path):
    for name in HF_WEIGHT_FILES + ("model.safetensors.index.json",):
      if os.path.exists(os.path.join(path, name)):
        return "hf", path
    if os.path.exists(os.path.join(path, "bert_model.ckpt.index")):
      return "tf1", os.path.join(path, "bert_model.ckpt")
    latest = tf.train.latest_checkpoint(path)
    if latest is None:
      raise ValueError(f"{path}: no checkpoint found; expected a Hugging Face folder "
                       f"({' or '.join(HF_WEIGHT_FILES)}), bert_model.ckpt.index or a "
                       "TensorFlow 'checkpoint' state file.")
    path = latest
  elif path.endswith((".safetensors", ".bin")):
    return "hf", path
  if not os.path.exists(path + ".index"):
    raise ValueError(f"{path}: not a checkpoint; expected {path}.index (a TF checkpoint "
                     "prefix), a Hugging Face folder or a .safetensors/.bin file.")
  has_object_graph = _OBJECT_GRAPH_KEY in tf.train.load_checkpoint(path).get_variable_to_shape_map()
  return ("ours" if has_object_graph else "tf1"), path


def read_tf1_checkpoint(prefix):
  """Google's TF1 checkpoint -> ({Google name: array}, {ignored name: reason})."""
  reader = tf.train.load_checkpoint(prefix)
  tensors, ignored = {}, {}
  for name in sorted(reader.get_variable_to_shape_map()):
    if name.endswith(_TF1_OPTIMIZER_SUFFIXES) or name in _TF1_OPTIMIZER_NAMES:
      ignored[name] = "optimizer state"
    else:
      tensors[name] = reader.get_tensor(name)
  return tensors, ignored


def write_tf1_checkpoint(tensors, prefix):
  """Writes {Google name: array} as a TF1 checkpoint `prefix`.{index,data-*} whose variable
  names are exactly the keys (what tf.train.load_checkpoint and Google's code read)."""
  names = sorted(tensors)
  os.makedirs(os.path.dirname(os.path.abspath(prefix)), exist_ok=True)
  tf.raw_ops.SaveV2(prefix=prefix, tensor_names=names, shape_and_slices=[""] * len(names),
                    tensors=[tf.constant(tensors[name]) for name in names])


_LAYER_NORM = {"gamma": "weight", "beta": "bias"}
# Every variable name of Google's BERT (modeling.py and run_pretraining.py scopes).
_GOOGLE_NAME = re.compile(
    r"bert/embeddings/(word|token_type|position)_embeddings"
    r"|bert/embeddings/LayerNorm/(gamma|beta)"
    r"|bert/encoder/layer_\d+/(attention/self/(query|key|value)|attention/output/dense"
    r"|intermediate/dense|output/dense)/(kernel|bias)"
    r"|bert/encoder/layer_\d+/(attention/output|output)/LayerNorm/(gamma|beta)"
    r"|bert/pooler/dense/(kernel|bias)"
    r"|cls/predictions/transform/dense/(kernel|bias)"
    r"|cls/predictions/transform/LayerNorm/(gamma|beta)"
    r"|cls/predictions/output_bias|cls/seq_relationship/output_(weights|bias)")


# The head variables whose names follow no rule.
_GOOGLE_TO_HF_HEADS = {"cls/predictions/output_bias": "cls.predictions.bias",
                       "cls/seq_relationship/output_weights": "cls.seq_relationship.weight",
                       "cls/seq_relationship/output_bias": "cls.seq_relationship.bias"}
_HF_TO_GOOGLE_HEADS = {hf: google for google, hf in _GOOGLE_TO_HF_HEADS.items()}


def google_to_hf_name(name):
  """Google TF1 name -> (Hugging Face name, transpose?). HF Linear weights are [out, in]."""
  if name in _GOOGLE_TO_HF_HEADS:
    return _GOOGLE_TO_HF_HEADS[name], False
  parts = name.split("/")
  if parts[0] == "bert":
    parts = parts[1:]
  if parts[0] == "embeddings" and parts[-1].endswith("_embeddings"):
    return ".".join(parts) + ".weight", False
  match = re.fullmatch(r"layer_(\d+)", parts[1]) if len(parts) > 1 else None
  if parts[0] == "encoder" and match:
    parts[1:2] = ["layer", match.group(1)]
  transpose = parts[-1] == "kernel"
  if parts[-1] == "kernel":
    parts[-1] = "weight"
  elif parts[-2] == "LayerNorm" and parts[-1] in _LAYER_NORM:
    parts[-1] = _LAYER_NORM[parts[-1]]
  return ".".join(parts), transpose


def hf_to_google_name(hf_name):
  """Hugging Face BERT name (with or without the "bert." prefix, old gamma/beta LayerNorm
  names too) -> (Google TF1 name, transpose?), or None when it is no BERT weight."""
  name = hf_name[len("bert."):] if hf_name.startswith("bert.") else hf_name
  name = re.sub(r"LayerNorm\.gamma$", "LayerNorm.weight", name)
  name = re.sub(r"LayerNorm\.beta$", "LayerNorm.bias", name)
  if name in _HF_TO_GOOGLE_HEADS:
    return _HF_TO_GOOGLE_HEADS[name], False
  parts = name.split(".")
  if len(parts) < 3 or parts[-1] not in ("weight", "bias"):
    return None
  if parts[0] == "embeddings" and parts[1].endswith("_embeddings") and len(parts) == 3:
    return "bert/embeddings/" + parts[1], False
  if parts[0] == "encoder" and parts[1] == "layer" and parts[2].isdigit():
    parts[1:3] = [f"layer_{parts[2]}"]
  transpose = False
  if parts[-2] == "LayerNorm":
    parts[-1] = {"weight": "gamma", "bias": "beta"}[parts[-1]]
  elif parts[-1] == "weight":
    parts[-1], transpose = "kernel", True
  prefix = "" if parts[0] == "cls" else "bert/"
  google = prefix + "/".join(parts)
  if not _GOOGLE_NAME.fullmatch(google):  # not a weight of the BERT architecture
    return None
  return google, transpose


def _load_hf_state_dict(path):
  """{HF name: array} from a folder, a .safetensors file or a pytorch_model.bin."""
  if os.path.isdir(path):
    index = os.path.join(path, "model.safetensors.index.json")
    if os.path.exists(index):
      with open(index, encoding="utf-8") as f:
        shards = sorted(set(json.load(f)["weight_map"].values()))
      state = {}
      for shard in shards:
        state.update(_load_hf_state_dict(os.path.join(path, shard)))
      return state
    path = next(os.path.join(path, name) for name in HF_WEIGHT_FILES
                if os.path.exists(os.path.join(path, name)))
  if path.endswith(".safetensors"):
    from safetensors.numpy import load_file
    return load_file(path)
  try:
    import torch
  except ImportError as e:
    raise ImportError(f"{path}: reading pytorch_model.bin needs PyTorch, which is not "
                      "installed; install torch or convert the weights to safetensors.") from e
  state = torch.load(path, map_location="cpu", weights_only=True)
  return {name: value.float().numpy() if value.is_floating_point() else value.numpy()
          for name, value in state.items()}


def read_hf_checkpoint(path):
  """Hugging Face BERT weights -> ({Google name: array}, {ignored HF name: reason},
  [unrecognised HF names])."""
  state = _load_hf_state_dict(path)
  tensors, ignored, unrecognised = {}, {}, []
  for hf_name in sorted(state):
    value = state[hf_name]
    short = hf_name[len("bert."):] if hf_name.startswith("bert.") else hf_name
    if short == "embeddings.position_ids":
      ignored[hf_name] = "buffer (arange of positions)"
      continue
    mapped = hf_to_google_name(hf_name)
    if mapped is None:
      unrecognised.append(hf_name)
      continue
    google, transpose = mapped
    tensors[google] = np.ascontiguousarray(value.T) if transpose else value
  # The decoder duplicates tied tensors; ignore it only when it really is the same weights.
  ties = {"cls.predictions.decoder.weight": "bert/embeddings/word_embeddings",
          "cls.predictions.decoder.bias": "cls/predictions/output_bias"}
  for hf_name, google in ties.items():
    if hf_name in unrecognised and google in tensors and \
        np.array_equal(state[hf_name], tensors[google]):
      unrecognised.remove(hf_name)
      ignored[hf_name] = f"tied to {google}"
  return tensors, ignored, unrecognised


def write_hf_checkpoint(tensors, config, output_dir):
  """Writes {Google name: array} as Hugging Face model.safetensors + config.json. With
  pre-training heads the layout is BertForPreTraining's ("bert." prefix), else BertModel's."""
  from safetensors.numpy import save_file
  has_heads = any(name.startswith("cls/") for name in tensors)
  state = {}
  for name, value in tensors.items():
    hf_name, transpose = google_to_hf_name(name)
    if has_heads and not hf_name.startswith("cls."):
      hf_name = "bert." + hf_name
    state[hf_name] = np.ascontiguousarray(value.T if transpose else value)
  os.makedirs(output_dir, exist_ok=True)
  save_file(state, os.path.join(output_dir, "model.safetensors"), metadata={"format": "pt"})
  hf_config = config.to_hf_dict()
  if has_heads:
    hf_config["architectures"] = ["BertForPreTraining"]
  with open(os.path.join(output_dir, "config.json"), "w", encoding="utf-8") as f:
    json.dump(hf_config, f, indent=2, sort_keys=True)


def _is_variable(obj):
  return isinstance(obj, (tf.Variable, modeling.keras.Variable))


def read_our_checkpoint(prefix, model):
  """Reads a tf.train.Checkpoint(model=..., ...) written by our training loop, matching its
  object graph against `model` (a BertModel, or a model holding one as `.bert`, is matched
  against a saved BertModel or a saved wrapper of one).

  Returns ({model variable path: array}, {ignored checkpoint key: reason}, [unused keys]).
  """
  reader = tf.train.load_checkpoint(prefix)
  graph = trackable_object_graph_pb2.TrackableObjectGraph()
  graph.ParseFromString(reader.get_tensor(_OBJECT_GRAPH_KEY))

  def child(node_id, name):
    return next((c.node_id for c in graph.nodes[node_id].children if c.local_name == name),
                None)

  saved_model = child(0, "model")
  if saved_model is None:
    raise ValueError(f"{prefix}: no 'model' object in this checkpoint; expected one written "
                     "as tf.train.Checkpoint(model=...).")
  saved_root, live_root = saved_model, model
  if child(saved_root, "embeddings") is None and child(saved_root, "bert") is not None \
      and isinstance(model, modeling.BertModel):
    saved_root = child(saved_root, "bert")
  elif child(saved_root, "embeddings") is not None and not isinstance(model, modeling.BertModel) \
      and isinstance(getattr(model, "bert", None), modeling.BertModel):
    live_root = model.bert

  def variable_keys(node_id, seen):
    """Checkpoint keys of every variable reachable from a node of the saved graph."""
    if node_id in seen:
      return set()
    seen.add(node_id)
    keys = {a.checkpoint_key for a in graph.nodes[node_id].attributes
            if a.name == "VARIABLE_VALUE"}
    for c in graph.nodes[node_id].children:
      keys |= variable_keys(c.node_id, seen)
    return keys

  tensors, used_keys, visited = {}, set(), set()
  view = tf.train.TrackableView(live_root)

  def walk(obj, node_id):
    if id(obj) in visited:
      return
    visited.add(id(obj))
    if _is_variable(obj):
      keys = [a.checkpoint_key for a in graph.nodes[node_id].attributes
              if a.name == "VARIABLE_VALUE"]
      if keys:
        tensors[obj.path] = reader.get_tensor(keys[0])
        used_keys.add(keys[0])
      return
    for name, live_child in view.children(obj).items():
      saved_child = child(node_id, name)
      if saved_child is not None:
        walk(live_child, saved_child)

  walk(live_root, saved_root)
  restorable = variable_keys(saved_root, set())
  unused = sorted(restorable - used_keys)
  ignored = {key: "outside the restored model (optimizer, step or other parts)"
             for key in sorted(set(reader.get_variable_to_shape_map())
                               - restorable - {_OBJECT_GRAPH_KEY})}
  return tensors, ignored, unused


# ------------------------------------------------------------------- model assignment

def assign_to_model(model, tensors, report, allow_missing=()):
  """Assigns {Google name: array} to the model variables of the same path; fills `report`.

  Checkpoint variables under a head group the model lacks (HEAD_GROUPS) are ignored, not
  unused; model variables whose path starts with a prefix in `allow_missing` (e.g. a new
  classifier head) are not reported missing.
  """
  variables = {v.path: v for v in model.weights}
  if len(variables) != len(model.weights):
    raise ValueError(f"{model.name}: two model variables share a path; checkpoints match "
                     "variables by path.")
  absent_heads = [g for g in HEAD_GROUPS if not any(p.startswith(g) for p in variables)]
  for name in sorted(tensors):
    value = tensors[name]
    variable = variables.get(name)
    if variable is None:
      if name.startswith(tuple(absent_heads)):
        report.ignored[name] = "head not in this model"
      else:
        report.unused.append(name)
    elif tuple(variable.shape) != tuple(np.shape(value)):
      report.shape_mismatches[name] = (tuple(np.shape(value)), tuple(variable.shape))
    else:
      variable.assign(np.asarray(value, dtype=variable.dtype))
      report.loaded.append(name)
  loaded = set(report.loaded)
  report.missing = [path for path in variables
                    if path not in loaded and path not in report.shape_mismatches
                    and not path.startswith(tuple(allow_missing))]
  return report


def init_from_checkpoint(model, path, strict=False, allow_missing=()):
  """Initialises `model` from a Google TF1 checkpoint, Hugging Face weights or our own
  checkpoint (auto-detected, see `detect_format`).

  Args:
    model: a built model whose variable paths are Google's names (modeling.py's models).
    path: checkpoint prefix, folder, or Hugging Face weights file.
    strict: raise ValueError on any unused checkpoint variable, uninitialised model variable
      (outside `allow_missing`) or shape mismatch, instead of only logging them.
    allow_missing: prefixes of model variables a checkpoint is not expected to hold.
  Returns:
    LoadReport (also logged).
  """
  fmt, resolved = detect_format(path)
  report = LoadReport(source=resolved, format=fmt)
  if fmt == "tf1":
    tensors, report.ignored = read_tf1_checkpoint(resolved)
  elif fmt == "hf":
    tensors, report.ignored, report.unused = read_hf_checkpoint(resolved)
  else:
    tensors, report.ignored, report.unused = read_our_checkpoint(resolved, model)
  assign_to_model(model, tensors, report, allow_missing)
  logging.info("%s", report.summary())
  if not report.ok:
    if strict:
      raise ValueError(f"Checkpoint does not match the model (strict=True):\n"
                       f"{report.summary()}")
    logging.warning("Checkpoint/model mismatch:\n%s", report.summary())
  return report


def model_tensors(model, names=None):
  """{Google name: float32/original numpy array} of the model's variables (all, or `names`)."""
  return {v.path: np.asarray(v.numpy()) for v in model.weights
          if names is None or v.path in names}


def checkpoint_folder(path):
  """(format, the folder holding the checkpoint at `path`: its config and vocab live there)."""
  fmt, resolved = detect_format(path)
  return fmt, (resolved if os.path.isdir(resolved) else os.path.dirname(resolved))


def config_for_checkpoint(path, config_file=None):
  """Finds and reads the BertConfig beside a checkpoint (bert_config.json or config.json)."""
  if config_file is None:
    fmt, folder = checkpoint_folder(path)
    candidates = [os.path.join(folder, n) for n in ("bert_config.json", "config.json")]
    config_file = next((c for c in candidates if os.path.exists(c)), None)
    if config_file is None:
      raise ValueError(f"{path}: no bert_config.json or config.json beside this {fmt} "
                       "checkpoint; pass the config file explicitly.")
  return modeling.BertConfig.from_json_file(config_file)
