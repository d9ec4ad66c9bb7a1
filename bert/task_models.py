"""The fine-tuning models and their losses, with Google's variable names.

Every task output is one `OutputLayer`: Google's `output_weights` [K, H] and `output_bias`
[K], under the variable scope Google's scripts use (none for run_classifier, `cls/squad` for
run_squad), so a fine-tuned model exports to Google's checkpoints. Each model holds its
BertModel as `.bert` (the attribute checkpoints.read_our_checkpoint looks for).

* `BertClassifier`: dropout(pooled_output) -> logits [B, num_labels] (run_classifier).
* `BertTokenClassifier`: dropout(sequence_output) -> logits [B, S, num_labels] (run_ner).
* `BertSquad`: sequence_output -> start and end logits [B, S] (run_squad, inference.py).

Models are called on {"input_ids", "input_mask", "segment_ids"}: int [B, S] (our feature
dicts name token types "segment_ids", as Google's).
"""
import keras
import numpy as np
from keras import ops

import modeling

# Prefixes of the head variables a pre-trained checkpoint does not hold.
CLASSIFIER_HEAD = ("output_weights", "output_bias")
SQUAD_HEAD = ("cls/squad/",)


def bert_inputs(features: dict) -> dict:
  """The BertModel inputs of a feature dict."""
  return {"input_ids": features["input_ids"], "input_mask": features["input_mask"],
          "token_type_ids": features["segment_ids"]}


@keras.saving.register_keras_serializable(package="bert")
class OutputLayer(keras.layers.Layer):
  """Google's task output: inputs [..., H] @ output_weights^T + output_bias -> float32 [..., K].

  output_weights [K, H] starts truncated normal (stddev initializer_range), output_bias [K]
  at zero. Google creates both directly in a variable scope, not in a layer; so does this
  layer (keras.Variable attributes, created under `variable_scope`), which keeps their paths
  Google's: `output_weights` or, with variable_scope "cls/squad", `cls/squad/output_weights`.
  """

  def __init__(self, num_outputs: int, hidden_size: int, initializer_range: float = 0.02,
               variable_scope: str = "", **kwargs):
    super().__init__(**kwargs)
    if num_outputs < 1:
      raise ValueError(f"num_outputs must be >= 1, got {num_outputs}")
    self.num_outputs = num_outputs
    self.hidden_size = hidden_size
    self.initializer_range = initializer_range
    self.variable_scope = variable_scope
    init = keras.initializers.TruncatedNormal(stddev=initializer_range)
    scopes = [keras.name_scope(part) for part in variable_scope.split("/") if part]
    for scope in scopes:
      scope.__enter__()
    try:
      self.output_weights = keras.Variable(init((num_outputs, hidden_size)),
                                           name="output_weights")
      self.output_bias = keras.Variable(np.zeros(num_outputs, np.float32), name="output_bias",
                                        autocast=False)
    finally:
      for scope in reversed(scopes):
        scope.__exit__(None, None, None)
    self.built = True

  def call(self, inputs):
    logits = ops.matmul(inputs, ops.transpose(ops.cast(self.output_weights, inputs.dtype)))
    return ops.cast(logits, "float32") + ops.cast(self.output_bias, "float32")

  def get_config(self):
    return {**super().get_config(), "num_outputs": self.num_outputs,
            "hidden_size": self.hidden_size, "initializer_range": self.initializer_range,
            "variable_scope": self.variable_scope}


@keras.saving.register_keras_serializable(package="bert")
class BertClassifier(modeling.BertConfigSerializable, keras.Model):
  """Google's run_classifier model: dropout(pooled_output) -> OutputLayer.

  num_labels=1 is regression (STS-B): the single logit is the predicted score.
  Returns float32 logits [B, num_labels].
  """

  def __init__(self, config: modeling.BertConfig, num_labels: int,
               name: str = "bert_classifier", **kwargs):
    super().__init__(name=name, **kwargs)
    self.config = config
    self.num_labels = num_labels
    self.bert = modeling.BertModel(config)
    self.dropout = keras.layers.Dropout(config.hidden_dropout_prob)
    self.output_layer = OutputLayer(num_labels, config.hidden_size, config.initializer_range)
    self.built = True

  def call(self, inputs, training=None):
    pooled = self.bert(bert_inputs(inputs), training=training)["pooled_output"]
    return self.output_layer(self.dropout(pooled, training=training))

  def get_config(self):
    return {"name": self.name, "config": self.config.to_dict(), "num_labels": self.num_labels}


@keras.saving.register_keras_serializable(package="bert")
class BertTokenClassifier(BertClassifier):
  """dropout(sequence_output) -> OutputLayer at every position: logits [B, S, num_labels].

  The head is BertClassifier's (root-level `output_weights`, `output_bias`, so
  CLASSIFIER_HEAD names it); only where it applies differs.
  """

  def __init__(self, config: modeling.BertConfig, num_labels: int,
               name: str = "bert_token_classifier", **kwargs):
    super().__init__(config, num_labels, name=name, **kwargs)

  def call(self, inputs, training=None):
    sequence_output = self.bert(bert_inputs(inputs), training=training)["sequence_output"]
    return self.output_layer(self.dropout(sequence_output, training=training))


@keras.saving.register_keras_serializable(package="bert")
class BertSquad(modeling.BertConfigSerializable, keras.Model):
  """Google's run_squad model: BertModel and an OutputLayer of 2 under `cls/squad/`.

  Returns {"start_logits", "end_logits"}: float32 [B, S].
  """

  def __init__(self, config: modeling.BertConfig, name: str = "bert_squad", **kwargs):
    super().__init__(name=name, **kwargs)
    self.config = config
    self.bert = modeling.BertModel(config)
    self.squad_output = OutputLayer(2, config.hidden_size, config.initializer_range,
                                    variable_scope="cls/squad")
    self.built = True

  def call(self, inputs, training=None):
    sequence_output = self.bert(bert_inputs(inputs), training=training)["sequence_output"]
    logits = self.squad_output(sequence_output)
    return {"start_logits": logits[:, :, 0], "end_logits": logits[:, :, 1]}

  def get_config(self):
    return {"name": self.name, "config": self.config.to_dict()}


def classifier_loss_fn(model, features, training):
  """Google's loss: mean cross-entropy (mean squared error for regression), float32.

  features: the model inputs and "label_ids": int [B] (float [B] for regression).
  Returns {"loss"} and, for classification, {"accuracy"}.
  """
  logits = model(features, training=training)
  if model.num_labels == 1:
    labels = ops.cast(features["label_ids"], "float32")
    return {"loss": ops.mean(ops.square(logits[:, 0] - labels))}
  labels = ops.cast(features["label_ids"], "int32")
  loss = ops.mean(ops.sparse_categorical_crossentropy(labels, logits, from_logits=True))
  correct = ops.cast(ops.equal(ops.cast(ops.argmax(logits, axis=-1), "int32"), labels),
                     "float32")
  return {"loss": loss, "accuracy": ops.mean(correct)}


def token_classification_loss_fn(model, features, training):
  """Mean cross-entropy over the labelled positions (first pieces; label_weights 1.0).

  features: the model inputs, "label_ids": int [B, S] and "label_weights": float [B, S].
  Returns {"loss", "accuracy"} (accuracy over the labelled positions), float32.
  """
  logits = model(features, training=training)
  labels = ops.cast(features["label_ids"], "int32")
  weights = ops.cast(features["label_weights"], "float32")
  cross_entropy = ops.sparse_categorical_crossentropy(labels, logits, from_logits=True)
  num_labelled = ops.maximum(ops.sum(weights), 1.0)
  correct = ops.cast(ops.equal(ops.cast(ops.argmax(logits, axis=-1), "int32"), labels),
                     "float32")
  return {"loss": ops.sum(cross_entropy * weights) / num_labelled,
          "accuracy": ops.sum(correct * weights) / num_labelled}


def squad_loss_fn(model, features, training):
  """Google's loss: the mean of the start and end position cross-entropies over positions.

  features: the model inputs and "start_positions", "end_positions": int [B] (0 = [CLS]).
  """
  outputs = model(features, training=training)
  start_loss = ops.sparse_categorical_crossentropy(
      ops.cast(features["start_positions"], "int32"), outputs["start_logits"],
      from_logits=True)
  end_loss = ops.sparse_categorical_crossentropy(
      ops.cast(features["end_positions"], "int32"), outputs["end_logits"], from_logits=True)
  return {"loss": (ops.mean(start_loss) + ops.mean(end_loss)) / 2.0}
