"""The BERT model (Devlin et al., 2018) in Keras 3.

Only Keras 3 APIs are used here (`keras.ops`, `keras.layers`) so the model runs on the
TensorFlow, JAX and PyTorch backends; checkpoint I/O lives in bert/checkpoints.py.

Variable paths mirror Google's TF1 names (`bert/encoder/layer_0/attention/self/query/kernel`,
`cls/predictions/output_bias`, ...) so reading Google's checkpoints is a near-identity name map
and optimizer exclusions such as "LayerNorm" and "bias" match by substring. Every model builds
its variables in its constructor, so paths are fixed and weights can be loaded right away.

Shapes in docstrings: B batch, S sequence length, H hidden size, N attention heads,
D = H / N head size, I intermediate size, P masked positions per sequence, V vocabulary.
"""
import copy
import json
import math

import keras
from keras import ops

# Activation names are unambiguous inside this module. Google's `gelu` is the tanh
# approximation; Hugging Face's `gelu` is the exact erf form (its `gelu_new` is tanh), so the
# readers below translate the name according to the file they came from.
_ACTIVATIONS = {
    "gelu_tanh": lambda x: ops.gelu(x, approximate=True),
    "gelu_exact": lambda x: ops.gelu(x, approximate=False),
    "relu": ops.relu,
    "tanh": ops.tanh,
    "silu": ops.silu,
    "linear": lambda x: x,
}
_GOOGLE_ACTIVATION_NAMES = {"gelu": "gelu_tanh", "relu": "relu", "tanh": "tanh",
                            "linear": "linear", "swish": "silu", "silu": "silu"}
_HF_ACTIVATION_NAMES = {"gelu": "gelu_exact", "gelu_new": "gelu_tanh",
                        "gelu_pytorch_tanh": "gelu_tanh", "gelu_fast": "gelu_tanh",
                        "relu": "relu", "tanh": "tanh", "silu": "silu", "swish": "silu",
                        "linear": "linear"}
# Hugging Face config.json keys that Google's bert_config.json (and ours) never has.
_HF_ONLY_KEYS = ("model_type", "architectures", "transformers_version")


def get_activation(name):
  """Returns the activation function for an unambiguous name (see `_ACTIVATIONS`)."""
  if name not in _ACTIVATIONS:
    raise ValueError(f"Unknown activation {name!r}; expected one of {sorted(_ACTIVATIONS)} "
                     "(Google's 'gelu' is read as 'gelu_tanh', Hugging Face's as 'gelu_exact').")
  return _ACTIVATIONS[name]


class BertConfig:
  """Hyper-parameters of a BERT model, in Google's bert_config.json format.

  `hidden_act` is kept unambiguous: "gelu_tanh" (Google's "gelu") or "gelu_exact"
  (Hugging Face's "gelu"). Unknown keys are kept as attributes, as Google's reader does.
  """

  def __init__(self, vocab_size, hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
               intermediate_size=3072, hidden_act="gelu_tanh", hidden_dropout_prob=0.1,
               attention_probs_dropout_prob=0.1, max_position_embeddings=512,
               type_vocab_size=16, initializer_range=0.02, layer_norm_eps=1e-12):
    if hidden_size % num_attention_heads:
      raise ValueError(f"hidden_size={hidden_size} is not a multiple of "
                       f"num_attention_heads={num_attention_heads}.")
    get_activation(hidden_act)
    self.vocab_size = vocab_size
    self.hidden_size = hidden_size
    self.num_hidden_layers = num_hidden_layers
    self.num_attention_heads = num_attention_heads
    self.intermediate_size = intermediate_size
    self.hidden_act = hidden_act
    self.hidden_dropout_prob = hidden_dropout_prob
    self.attention_probs_dropout_prob = attention_probs_dropout_prob
    self.max_position_embeddings = max_position_embeddings
    self.type_vocab_size = type_vocab_size
    self.initializer_range = initializer_range
    # Google's tf.contrib.layers.layer_norm uses 1e-12; not in Google's JSON.
    self.layer_norm_eps = layer_norm_eps

  @classmethod
  def from_dict(cls, json_object):
    """Builds a config from Google's bert_config.json dict (activation names as Google's)."""
    json_object = dict(json_object)
    act = json_object.get("hidden_act", "gelu")
    json_object["hidden_act"] = _GOOGLE_ACTIVATION_NAMES.get(act, act)
    config = cls(vocab_size=None)
    for key, value in json_object.items():
      config.__dict__[key] = value
    config._validate()
    return config

  @classmethod
  def from_hf_dict(cls, json_object):
    """Builds a config from a Hugging Face BERT config.json dict."""
    model_type = json_object.get("model_type", "bert")
    if model_type != "bert":
      raise ValueError(f"Expected a Hugging Face BERT config (model_type 'bert'), "
                       f"got model_type {model_type!r}.")
    if json_object.get("position_embedding_type", "absolute") != "absolute":
      raise ValueError("Only absolute position embeddings are supported, got "
                       f"{json_object['position_embedding_type']!r}.")
    act = json_object.get("hidden_act", "gelu")
    if act not in _HF_ACTIVATION_NAMES:
      raise ValueError(f"Unsupported Hugging Face hidden_act {act!r}.")
    fields = ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
              "intermediate_size", "hidden_dropout_prob", "attention_probs_dropout_prob",
              "max_position_embeddings", "type_vocab_size", "initializer_range",
              "layer_norm_eps")
    config = cls(vocab_size=json_object["vocab_size"],
                 hidden_act=_HF_ACTIVATION_NAMES[act],
                 **{k: json_object[k] for k in fields[1:] if k in json_object})
    config._validate()
    return config

  @classmethod
  def from_json_file(cls, json_file):
    """Reads Google's bert_config.json or Hugging Face's config.json (auto-detected)."""
    with open(json_file, encoding="utf-8") as reader:
      text = reader.read()
    try:
      json_object = json.loads(text)
    except json.JSONDecodeError as e:
      raise ValueError(f"{json_file}:{e.lineno}: invalid JSON ({e.msg}); expected a BERT "
                       "config object.") from e
    if not isinstance(json_object, dict):
      raise ValueError(f"{json_file}:1: expected a JSON object, got {type(json_object).__name__}.")
    try:
      if is_hf_config_dict(json_object):
        return cls.from_hf_dict(json_object)
      return cls.from_dict(json_object)
    except (KeyError, ValueError, TypeError) as e:
      raise ValueError(f"{json_file}: not a valid BERT config: {e}") from e

  def _validate(self):
    required = ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
                "intermediate_size")
    missing = [k for k in required if getattr(self, k, None) is None]
    if missing:
      raise ValueError(f"BERT config is missing {missing}.")
    if self.hidden_size % self.num_attention_heads:
      raise ValueError(f"hidden_size={self.hidden_size} is not a multiple of "
                       f"num_attention_heads={self.num_attention_heads}.")
    get_activation(self.hidden_act)

  def check_seq_length(self, max_seq_length, source="the BERT config"):
    """Raises ValueError unless 2 <= max_seq_length <= max_position_embeddings ([CLS], [SEP]).

    source: where this config came from, for the message (e.g. its file).
    """
    if max_seq_length < 2:
      raise ValueError(f"max_seq_length={max_seq_length} leaves no room for [CLS] and [SEP]")
    if max_seq_length > self.max_position_embeddings:
      raise ValueError(f"max_seq_length={max_seq_length} is above the model's "
                       f"max_position_embeddings={self.max_position_embeddings} ({source})")

  def to_dict(self):
    """Google's JSON dict. A tanh GELU is written as Google's "gelu" so Google's code reads
    it correctly; the exact GELU stays "gelu_exact" (Google's code then fails loudly rather
    than computing the wrong function)."""
    output = copy.deepcopy(self.__dict__)
    if output["hidden_act"] == "gelu_tanh":
      output["hidden_act"] = "gelu"
    return output

  def to_hf_dict(self):
    """Hugging Face config.json dict (its "gelu" is exact, "gelu_new" is tanh)."""
    hf_act = {"gelu_exact": "gelu", "gelu_tanh": "gelu_new"}.get(self.hidden_act,
                                                                   self.hidden_act)
    return {
        "architectures": ["BertModel"], "model_type": "bert",
        "vocab_size": self.vocab_size, "hidden_size": self.hidden_size,
        "num_hidden_layers": self.num_hidden_layers,
        "num_attention_heads": self.num_attention_heads,
        "intermediate_size": self.intermediate_size, "hidden_act": hf_act,
        "hidden_dropout_prob": self.hidden_dropout_prob,
        "attention_probs_dropout_prob": self.attention_probs_dropout_prob,
        "max_position_embeddings": self.max_position_embeddings,
        "type_vocab_size": self.type_vocab_size,
        "initializer_range": self.initializer_range, "layer_norm_eps": self.layer_norm_eps,
        "position_embedding_type": "absolute", "pad_token_id": 0,
    }

  def to_json_string(self):
    return json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n"

  def __eq__(self, other):
    return isinstance(other, BertConfig) and self.__dict__ == other.__dict__

  def __repr__(self):
    return f"BertConfig({self.__dict__})"


def is_hf_config_dict(json_object):
  """True when a config dict comes from Hugging Face rather than Google's bert_config.json."""
  return any(key in json_object for key in _HF_ONLY_KEYS)


def _initializer(config):
  return keras.initializers.TruncatedNormal(stddev=config.initializer_range)


def _layer_norm(config, name="LayerNorm"):
  # keras.ops.layer_normalization computes in float32 for half-precision inputs.
  return keras.layers.LayerNormalization(axis=-1, epsilon=config.layer_norm_eps, name=name)


def _dense(config, units, name, activation=None):
  return keras.layers.Dense(units, activation=activation, name=name,
                            kernel_initializer=_initializer(config))


class BertConfigSerializable:
  """Keras serialization of a layer or model whose first argument is a BertConfig.

  get_config stores the config as a dict under "config" next to Keras' own entries, and
  from_config rebuilds the BertConfig and passes the other entries as keyword arguments.
  The models override get_config to list only their constructor's arguments ("name",
  "config", ...).
  """

  def get_config(self):
    return {**super().get_config(), "config": self.config.to_dict()}

  @classmethod
  def from_config(cls, config):
    config = dict(config)
    return cls(BertConfig.from_dict(config.pop("config")), **config)


@keras.saving.register_keras_serializable(package="bert")
class BertEmbeddings(BertConfigSerializable, keras.layers.Layer):
  """Word + token type + position embeddings, LayerNorm and dropout.

  Variables: word_embeddings [V, H], token_type_embeddings [type_vocab_size, H],
  position_embeddings [max_position_embeddings, H], LayerNorm/{gamma,beta} [H].
  """

  def __init__(self, config, name="embeddings", **kwargs):
    super().__init__(name=name, **kwargs)
    self.config = config
    self.layer_norm = _layer_norm(config)
    self.dropout = keras.layers.Dropout(config.hidden_dropout_prob)

  def build(self, input_shape=None):
    c = self.config
    # The tables stay float32 under mixed precision: rows are gathered first, then cast.
    self.word_embeddings = self.add_weight(
        name="word_embeddings", shape=(c.vocab_size, c.hidden_size),
        initializer=_initializer(c), autocast=False)
    self.token_type_embeddings = self.add_weight(
        name="token_type_embeddings", shape=(c.type_vocab_size, c.hidden_size),
        initializer=_initializer(c), autocast=False)
    self.position_embeddings = self.add_weight(
        name="position_embeddings", shape=(c.max_position_embeddings, c.hidden_size),
        initializer=_initializer(c), autocast=False)
    self.layer_norm.build((None, None, c.hidden_size))

  def call(self, input_ids, token_type_ids, training=None):
    """input_ids, token_type_ids: int [B, S]. Returns [B, S, H] in the compute dtype."""
    seq_length = ops.shape(input_ids)[1]
    embeddings = (ops.take(self.word_embeddings, input_ids, axis=0)
                  + ops.take(self.token_type_embeddings, token_type_ids, axis=0)
                  + ops.slice(self.position_embeddings, (0, 0),
                              (seq_length, self.config.hidden_size))[None])
    embeddings = self.layer_norm(embeddings)
    embeddings = ops.cast(embeddings, self.compute_dtype)
    return self.dropout(embeddings, training=training)


@keras.saving.register_keras_serializable(package="bert")
class TransformerLayer(BertConfigSerializable, keras.layers.Layer):
  """One post-LayerNorm Transformer encoder layer, as Google's `transformer_model` body.

  Sub-paths follow Google's names: attention/self/{query,key,value},
  attention/output/{dense,LayerNorm}, intermediate/dense, output/{dense,LayerNorm}.
  """

  def __init__(self, config, name, **kwargs):
    super().__init__(name=name, **kwargs)
    self.config = config
    h = config.hidden_size
    self.num_heads = config.num_attention_heads
    self.head_size = h // config.num_attention_heads
    self.query = _dense(config, h, "query")
    self.key = _dense(config, h, "key")
    self.value = _dense(config, h, "value")
    self.attention_output_dense = _dense(config, h, "dense")
    self.attention_layer_norm = _layer_norm(config)
    self.intermediate_dense = _dense(config, config.intermediate_size, "dense")
    self.activation = get_activation(config.hidden_act)
    self.output_dense = _dense(config, h, "dense")
    self.output_layer_norm = _layer_norm(config)
    self.attention_dropout = keras.layers.Dropout(config.attention_probs_dropout_prob)
    self.hidden_dropout = keras.layers.Dropout(config.hidden_dropout_prob)

  def build(self, input_shape=None):
    h, i = self.config.hidden_size, self.config.intermediate_size
    with keras.name_scope("attention"):
      with keras.name_scope("self"):
        for dense in (self.query, self.key, self.value):
          dense.build((None, None, h))
      with keras.name_scope("output"):
        self.attention_output_dense.build((None, None, h))
        self.attention_layer_norm.build((None, None, h))
    with keras.name_scope("intermediate"):
      self.intermediate_dense.build((None, None, h))
    with keras.name_scope("output"):
      self.output_dense.build((None, None, i))
      self.output_layer_norm.build((None, None, h))

  def _split_heads(self, x):
    """[B, S, H] -> [B, S, N, D] (a free reshape)."""
    return ops.reshape(x, (ops.shape(x)[0], ops.shape(x)[1], self.num_heads, self.head_size))

  def call(self, hidden_states, attention_bias, training=None):
    """Self-attention and feed-forward.

    Args:
      hidden_states: [B, S, H] in the compute dtype.
      attention_bias: [B, 1, 1, S]; 0 for real keys, -10000 for padding (Google's).
    Returns:
      [B, S, H] in the compute dtype.
    """
    # Scaling the queries (B*S*H multiplies) instead of the scores (B*N*S*S) is cheaper and
    # keeps float16 scores in range.
    query = self._split_heads(self.query(hidden_states)) * (1.0 / math.sqrt(self.head_size))
    key = self._split_heads(self.key(hidden_states))
    value = self._split_heads(self.value(hidden_states))
    scores = ops.einsum("bqnd,bknd->bnqk", query, key)
    # Softmax in float32 whatever the compute dtype.
    # (Keras casts float call arguments to the compute dtype; -10000 is exact in float16 and
    # bfloat16 rounds it to -9984, still an exact zero after exp.)
    probs = ops.softmax(ops.cast(scores, "float32") + ops.cast(attention_bias, "float32"),
                        axis=-1)
    probs = self.attention_dropout(ops.cast(probs, self.compute_dtype), training=training)
    context = ops.einsum("bnqk,bknd->bqnd", probs, value)
    context = ops.reshape(context, ops.shape(hidden_states))

    attention_output = self.hidden_dropout(self.attention_output_dense(context),
                                           training=training)
    attention_output = self.attention_layer_norm(attention_output + hidden_states)
    intermediate = self.activation(self.intermediate_dense(attention_output))
    layer_output = self.hidden_dropout(self.output_dense(intermediate), training=training)
    return self.output_layer_norm(layer_output + attention_output)


def attention_bias_from_mask(input_mask):
  """Google's additive attention mask.

  Args:
    input_mask: int [B, S], 1 for real tokens and 0 for padding.
  Returns:
    float32 [B, 1, 1, S]: 0 where attending is allowed, -10000 on padding keys. In float32,
    exp(-10000) underflows to exactly 0, so padding cannot change the unpadded outputs.
  """
  mask = ops.cast(input_mask, "float32")
  return ((1.0 - mask) * -10000.0)[:, None, None, :]


def _feature(inputs, *names):
  for name in names:
    if name in inputs and inputs[name] is not None:
      return inputs[name]
  return None


@keras.saving.register_keras_serializable(package="bert")
class BertModel(BertConfigSerializable, keras.Model):
  """The BERT encoder: embeddings, `num_hidden_layers` Transformer layers and the pooler.

  Called on {"input_ids": int [B, S], "input_mask": int [B, S] (optional, default ones),
  "token_type_ids" (or Google's "segment_ids"): int [B, S] (optional, default zeros)}.
  Returns {"sequence_output": [B, S, H], "pooled_output": [B, H],
  "encoder_outputs": list of num_hidden_layers [B, S, H], "embedding_output": [B, S, H]}.
  """

  def __init__(self, config, name="bert", **kwargs):
    super().__init__(name=name, **kwargs)
    self.config = copy.deepcopy(config)
    self.embeddings = BertEmbeddings(self.config)
    # One attribute per layer, not a list: TensorFlow's checkpoint object graph does not follow
    # Keras 3's tracked lists, so a list would leave the layers out of tf.train.Checkpoint.
    for i in range(self.config.num_hidden_layers):
      setattr(self, f"layer_{i}", TransformerLayer(self.config, name=f"layer_{i}"))
    self.pooler_dense = _dense(self.config, self.config.hidden_size, "dense",
                               activation="tanh")
    self.build()

  def build(self, input_shape=None):
    h = self.config.hidden_size
    self.embeddings.build()
    with keras.name_scope("encoder"):
      for layer in self.encoder_layers:
        layer.build((None, None, h))
    with keras.name_scope("pooler"):
      self.pooler_dense.build((None, h))

  @property
  def encoder_layers(self):
    """The TransformerLayers, first to last."""
    return [getattr(self, f"layer_{i}") for i in range(self.config.num_hidden_layers)]

  def get_embedding_table(self):
    """The word embedding variable, [V, H]."""
    return self.embeddings.word_embeddings

  def call(self, inputs, training=None):
    input_ids = inputs["input_ids"]
    input_mask = _feature(inputs, "input_mask")
    if input_mask is None:
      input_mask = ops.ones_like(input_ids)
    token_type_ids = _feature(inputs, "token_type_ids", "segment_ids")
    if token_type_ids is None:
      token_type_ids = ops.zeros_like(input_ids)

    embedding_output = self.embeddings(input_ids, token_type_ids, training=training)
    attention_bias = attention_bias_from_mask(input_mask)
    hidden_states = embedding_output
    encoder_outputs = []
    for layer in self.encoder_layers:
      hidden_states = layer(hidden_states, attention_bias, training=training)
      encoder_outputs.append(hidden_states)
    # The pooler reads the first ([CLS]) token.
    pooled_output = self.pooler_dense(hidden_states[:, 0, :])
    return {"sequence_output": hidden_states, "pooled_output": pooled_output,
            "encoder_outputs": encoder_outputs, "embedding_output": embedding_output}

  def get_config(self):
    return {"name": self.name, "config": self.config.to_dict()}


@keras.saving.register_keras_serializable(package="bert")
class MaskedLMHead(keras.layers.Layer):
  """Google's `get_masked_lm_output`: dense + activation + LayerNorm, then logits against the
  (tied) word embeddings plus `output_bias` [V]. Paths: cls/predictions/transform/...
  """

  def __init__(self, config, embeddings, name="predictions", **kwargs):
    super().__init__(name=name, **kwargs)
    self.config = config
    # A function, not an attribute holding the layer, so Keras does not track the shared
    # table a second time under this head.
    self._embedding_table = lambda: embeddings.word_embeddings
    self.transform_dense = _dense(config, config.hidden_size, "dense",
                                  activation=get_activation(config.hidden_act))
    self.transform_layer_norm = _layer_norm(config)

  def build(self, input_shape=None):
    h = self.config.hidden_size
    with keras.name_scope("transform"):
      self.transform_dense.build((None, None, h))
      self.transform_layer_norm.build((None, None, h))
    self.output_bias = self.add_weight(name="output_bias", shape=(self.config.vocab_size,),
                                       initializer="zeros", autocast=False)

  def call(self, sequence_output, positions):
    """sequence_output: [B, S, H]; positions: int [B, P]. Returns float32 logits [B, P, V]."""
    # Gather first: the vocabulary projection is the most expensive matmul of pre-training.
    gathered = ops.take_along_axis(sequence_output,
                                   ops.cast(positions, "int32")[:, :, None], axis=1)
    transformed = self.transform_layer_norm(self.transform_dense(gathered))
    table = ops.cast(self._embedding_table(), self.compute_dtype)
    # One [B*P, H] x [H, V] matmul: a batched einsum against the shared table would run B
    # small matmuls and, for the table's gradient, materialise B copies of [V, H] to sum.
    # TensorFlow folds the transpose into the matmul (transpose_b), so the table is not copied.
    batch_size, num_positions = ops.shape(positions)[0], ops.shape(positions)[1]
    flat = ops.reshape(transformed, (-1, self.config.hidden_size))
    logits = ops.matmul(flat, ops.transpose(table))
    logits = ops.reshape(logits, (batch_size, num_positions, self.config.vocab_size))
    return ops.cast(logits, "float32") + self.output_bias

  def get_config(self):
    raise NotImplementedError("MaskedLMHead is rebuilt by BertPretrainingModel.")


@keras.saving.register_keras_serializable(package="bert")
class NextSentenceHead(BertConfigSerializable, keras.layers.Layer):
  """Google's `get_next_sentence_output`: output_weights [2, H], output_bias [2]."""

  def __init__(self, config, name="seq_relationship", **kwargs):
    super().__init__(name=name, **kwargs)
    self.config = config

  def build(self, input_shape=None):
    self.output_weights = self.add_weight(
        name="output_weights", shape=(2, self.config.hidden_size),
        initializer=_initializer(self.config))
    self.output_bias = self.add_weight(name="output_bias", shape=(2,), initializer="zeros",
                                       autocast=False)

  def call(self, pooled_output):
    """pooled_output: [B, H]. Returns float32 logits [B, 2]."""
    logits = ops.matmul(pooled_output, ops.transpose(self.output_weights))
    return ops.cast(logits, "float32") + self.output_bias


@keras.saving.register_keras_serializable(package="bert")
class BertPretrainingModel(BertConfigSerializable, keras.Model):
  """BertModel (`.bert`) plus the masked-LM and (optionally) next-sentence heads.

  Called on the BertModel inputs plus "masked_lm_positions": int [B, P]. Returns
  {"masked_lm_logits": float32 [B, P, V], "next_sentence_logits": float32 [B, 2] (only with
  use_next_sentence), "sequence_output": [B, S, H], "pooled_output": [B, H]}.
  """

  def __init__(self, config, use_next_sentence=True, name="bert_pretraining", **kwargs):
    super().__init__(name=name, **kwargs)
    self.config = copy.deepcopy(config)
    self.use_next_sentence = use_next_sentence
    # Built here, outside this model's own name scope, so paths start at "bert/" and "cls/".
    self.bert = BertModel(self.config)
    self.masked_lm = MaskedLMHead(self.config, self.bert.embeddings)
    self.next_sentence = NextSentenceHead(self.config) if use_next_sentence else None
    with keras.name_scope("cls"):
      self.masked_lm.build()
      if self.next_sentence is not None:
        self.next_sentence.build()
    self.built = True

  def call(self, inputs, training=None):
    bert_outputs = self.bert(inputs, training=training)
    outputs = {
        "masked_lm_logits": self.masked_lm(bert_outputs["sequence_output"],
                                           inputs["masked_lm_positions"]),
        "sequence_output": bert_outputs["sequence_output"],
        "pooled_output": bert_outputs["pooled_output"],
    }
    if self.next_sentence is not None:
      outputs["next_sentence_logits"] = self.next_sentence(bert_outputs["pooled_output"])
    return outputs

  def get_config(self):
    return {"name": self.name, "config": self.config.to_dict(),
            "use_next_sentence": self.use_next_sentence}


def pretraining_losses(outputs, features):
  """Google's run_pretraining losses and metrics, all float32 scalars.

  Args:
    outputs: BertPretrainingModel outputs ("masked_lm_logits" [B, P, V], optionally
      "next_sentence_logits" [B, 2]).
    features: "masked_lm_ids" int [B, P], "masked_lm_weights" float [B, P] (0 on padding
      predictions), and "next_sentence_labels" int [B, 1] or [B] when NSP logits are present.
  Returns:
    {"loss", "masked_lm_loss", "masked_lm_accuracy"} plus {"next_sentence_loss",
    "next_sentence_accuracy"} when the model has the next-sentence head. masked_lm_loss is
    sum(w * nll) / (sum(w) + 1e-5), Google's normalisation.
  """
  mlm_logits = ops.cast(outputs["masked_lm_logits"], "float32")
  mlm_ids = ops.cast(features["masked_lm_ids"], "int32")
  mlm_weights = ops.cast(features["masked_lm_weights"], "float32")
  mlm_nll = ops.sparse_categorical_crossentropy(mlm_ids, mlm_logits, from_logits=True)
  weight_sum = ops.sum(mlm_weights)
  masked_lm_loss = ops.sum(mlm_weights * mlm_nll) / (weight_sum + 1e-5)
  mlm_correct = ops.cast(ops.equal(ops.argmax(mlm_logits, axis=-1), mlm_ids), "float32")
  masked_lm_accuracy = ops.divide_no_nan(ops.sum(mlm_weights * mlm_correct), weight_sum)
  losses = {"masked_lm_loss": masked_lm_loss, "masked_lm_accuracy": masked_lm_accuracy,
            "loss": masked_lm_loss}
  if "next_sentence_logits" in outputs:
    nsp_logits = ops.cast(outputs["next_sentence_logits"], "float32")
    nsp_labels = ops.reshape(ops.cast(features["next_sentence_labels"], "int32"), (-1,))
    nsp_nll = ops.sparse_categorical_crossentropy(nsp_labels, nsp_logits, from_logits=True)
    losses["next_sentence_loss"] = ops.mean(nsp_nll)
    losses["next_sentence_accuracy"] = ops.mean(
        ops.cast(ops.equal(ops.argmax(nsp_logits, axis=-1), nsp_labels), "float32"))
    losses["loss"] = masked_lm_loss + losses["next_sentence_loss"]
  return losses
