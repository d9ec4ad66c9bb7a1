"""Extracts BERT's hidden states per token as Google's JSONL (bert/feature_extraction.py's format).

  python extract_features.py --input_file=input.txt --output_file=output.jsonl \
    --vocab_file=uncased_L-12_H-768_A-12/vocab.txt \
    --bert_config_file=uncased_L-12_H-768_A-12/bert_config.json \
    --init_checkpoint=uncased_L-12_H-768_A-12/bert_model.ckpt \
    --layers=-1,-2,-3,-4 --max_seq_length=128 --batch_size=8

Input: one example per line, `text_a ||| text_b` for a pair. Output: one JSON line per input
line, in input order: {"linex_index": i, "features": [{"token": t, "layers": [{"index": -1,
"values": [...]}, ...]}, ...]} with [CLS]/[SEP] and without padding, values rounded to 6
decimals. Layer -1 is the last Transformer layer (the embeddings are not a layer, as in
Google's script). --init_checkpoint may be Google TF1, Hugging Face or one of ours.

Lines are read and tokenised a window of batches at a time; within it the examples run
sorted by length, batches cut to the longest (--pad_to_max_length: Google's fixed padding),
and the window is written in input order: memory does not grow with the input.
"""
import numpy as np
import tensorflow as tf
from absl import app
from absl import flags
from absl import logging

import modeling
import tokenization
from bert import checkpoints
from bert import feature_extraction
from bert import flag_blocks
from bert import length_buckets

FLAGS = flags.FLAGS

# Batches read, sorted by length and run together before their lines are written.
WINDOW_BATCHES = 16


def define_flags():
  """Google's extract_features flags (without the TPU ones), plus --spm_model_file,
  --use_xla and --pad_to_max_length."""
  flags.DEFINE_string("input_file", None, "Text file: one example per line, 'a ||| b' for "
                      "pairs.")
  flags.DEFINE_string("output_file", None, "JSONL file to write.")
  flags.DEFINE_string("layers", "-1,-2,-3,-4", "Comma-separated layer indexes (-1 = last).")
  flags.DEFINE_string("bert_config_file", None, "The config json file corresponding to the "
                      "pre-trained BERT model.")
  flags.DEFINE_integer("max_seq_length", 128, "The maximum total input sequence length after "
                       "WordPiece tokenization. Longer sequences are truncated.")
  flags.DEFINE_string("init_checkpoint", None, "Weights: Google TF1, Hugging Face or ours.")
  flag_blocks.define_tokenizer_flags()
  flags.DEFINE_integer("batch_size", 32, "Batch size for predictions.")
  flags.DEFINE_bool("use_xla", False, "XLA-compile the model.")
  flag_blocks.define_padding_flag()


def layer_outputs_fn(model: modeling.BertModel, layer_indexes, use_xla: bool = False):
  """A tf.function: model inputs -> float32 [len(layer_indexes), B, S, H], the encoder
  outputs at layer_indexes (Python indexing of the Transformer layers)."""
  num_layers = model.config.num_hidden_layers
  for index in layer_indexes:
    if not -num_layers <= index < num_layers:
      raise ValueError(f"--layers: index {index} is out of range for a model with "
                       f"{num_layers} layers (use -{num_layers}..{num_layers - 1})")

  # One trace for every batch size and length (int32 [batch, length] each).
  signature = {name: tf.TensorSpec((None, None), tf.int32)
               for name in ("input_ids", "input_mask", "token_type_ids")}

  @tf.function(jit_compile=use_xla, input_signature=[signature])
  def outputs(features):
    encoder_outputs = model(features, training=False)["encoder_outputs"]
    return tf.stack([tf.cast(encoder_outputs[i], tf.float32) for i in layer_indexes])
  return outputs


def extract(input_file: str, output_file: str, model: modeling.BertModel, tokenizer,
            layer_indexes, max_seq_length: int, batch_size: int, use_xla: bool = False,
            pad_to_max_length: bool = False) -> int:
  """Writes the JSONL of input_file to output_file; returns the number of lines written.

  Lines are read, tokenised and run WINDOW_BATCHES batches at a time: within a window the
  examples run sorted by length, each batch cut to a bucket length (bert/length_buckets.py;
  pad_to_max_length: Google's batches), and the window is written in input order. Memory is
  bounded by the window, not by the input.
  """
  outputs_fn = layer_outputs_fn(model, layer_indexes, use_xla)
  examples = feature_extraction.read_examples(input_file)
  features = feature_extraction.convert_examples_to_features(examples, max_seq_length,
                                                             tokenizer)
  window_size = batch_size * WINDOW_BATCHES
  with feature_extraction.JsonlFeatureWriter(output_file, layer_indexes) as writer:
    for window, arrays in feature_extraction.batch_features(features, window_size):
      inputs = {"input_ids": arrays["input_ids"], "input_mask": arrays["input_mask"],
                "token_type_ids": arrays["input_type_ids"]}
      outputs = window_outputs(outputs_fn, window, inputs, batch_size, pad_to_max_length)
      for start in range(0, len(window), batch_size):
        writer.write_batch(window[start:start + batch_size],
                           stack_padded(outputs[start:start + batch_size]))
    return writer.num_written


def window_outputs(outputs_fn, window: list, inputs: dict, batch_size: int,
                   pad_to_max_length: bool) -> list[np.ndarray]:
  """Per feature of window, in order: float32 [num_layers, its tokens, hidden].

  Args:
    inputs: the window's model inputs {name: int32 [len(window), max_seq_length]}.
  """
  max_seq_length = inputs["input_mask"].shape[1]
  outputs = [None] * len(window)
  for indices, length in length_buckets.prediction_batches(
      length_buckets.sequence_lengths(inputs["input_mask"]), batch_size, max_seq_length,
      pad_to_max_length):
    layers = outputs_fn(length_buckets.take(inputs, indices, length)).numpy()
    for row, index in enumerate(indices):
      outputs[index] = layers[:, row, :len(window[index].tokens)]
  return outputs


def stack_padded(outputs: list[np.ndarray]) -> list[np.ndarray]:
  """[num_layers, tokens_i, hidden] per example -> per layer [batch, max tokens, hidden]."""
  num_layers, _, hidden = outputs[0].shape
  stacked = np.zeros((num_layers, len(outputs), max(o.shape[1] for o in outputs), hidden),
                     outputs[0].dtype)
  for i, output in enumerate(outputs):
    stacked[:, i, :output.shape[1]] = output
  return list(stacked)


def main(_):
  layer_indexes = feature_extraction.parse_layer_indexes(FLAGS.layers)
  config = modeling.BertConfig.from_json_file(FLAGS.bert_config_file)
  config.check_seq_length(FLAGS.max_seq_length, FLAGS.bert_config_file)
  tokenizer = tokenization.create_tokenizer(FLAGS.vocab_file, FLAGS.spm_model_file,
                                            FLAGS.do_lower_case, FLAGS.init_checkpoint)
  model = modeling.BertModel(config)
  if FLAGS.init_checkpoint:
    # Every encoder weight must come from the checkpoint; heads in it (pre-training or a
    # fine-tuned task's) are left unused.
    report = checkpoints.init_from_checkpoint(model, FLAGS.init_checkpoint)
    if report.missing or report.shape_mismatches:
      raise ValueError(f"{FLAGS.init_checkpoint} does not initialise the whole encoder:\n"
                       f"{report.summary()}")
  else:
    logging.warning("No --init_checkpoint: features of a randomly initialised model")
  num_lines = extract(FLAGS.input_file, FLAGS.output_file, model, tokenizer, layer_indexes,
                      FLAGS.max_seq_length, FLAGS.batch_size, FLAGS.use_xla,
                      FLAGS.pad_to_max_length)
  logging.info("Wrote %d lines to %s", num_lines, FLAGS.output_file)


if __name__ == "__main__":
  define_flags()
  flags.mark_flags_as_required(["input_file", "output_file", "bert_config_file"])
  app.run(main)
