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

Lines are read, tokenised and batched lazily by a tf.data pipeline that runs ahead of the
model, and each batch is written as soon as it is computed: memory does not grow with the
input.
"""
import collections

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

FLAGS = flags.FLAGS


def define_flags():
  """Google's extract_features flags (without the TPU ones), plus --spm_model_file and
  --use_xla."""
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


def layer_outputs_fn(model: modeling.BertModel, layer_indexes, use_xla: bool = False):
  """A tf.function: model inputs -> float32 [len(layer_indexes), B, S, H], the encoder
  outputs at layer_indexes (Python indexing of the Transformer layers)."""
  num_layers = model.config.num_hidden_layers
  for index in layer_indexes:
    if not -num_layers <= index < num_layers:
      raise ValueError(f"--layers: index {index} is out of range for a model with "
                       f"{num_layers} layers (use -{num_layers}..{num_layers - 1})")

  @tf.function(jit_compile=use_xla, reduce_retracing=True)
  def outputs(features):
    encoder_outputs = model(features, training=False)["encoder_outputs"]
    return tf.stack([tf.cast(encoder_outputs[i], tf.float32) for i in layer_indexes])
  return outputs


def feature_batches(input_file: str, max_seq_length: int, tokenizer, batch_size: int):
  """Yields (InputFeatures of a batch, model inputs {name: int32 [b, S]}) in input order.

  A tf.data pipeline over a generator of the lines' features: batching and prefetching run
  ahead of the consumer. The features themselves (tokens for the output) wait in a FIFO
  that holds only what the pipeline has read ahead.
  """
  pending = collections.deque()

  def generate():
    examples = feature_extraction.read_examples(input_file)
    for feature in feature_extraction.convert_examples_to_features(examples, max_seq_length,
                                                             tokenizer):
      pending.append(feature)
      yield feature.input_ids, feature.input_mask, feature.input_type_ids

  spec = tf.TensorSpec([max_seq_length], tf.int32)
  dataset = (tf.data.Dataset.from_generator(generate, output_signature=(spec, spec, spec))
             .batch(batch_size).prefetch(2))
  for input_ids, input_mask, input_type_ids in dataset:
    batch = [pending.popleft() for _ in range(int(input_ids.shape[0]))]
    yield batch, {"input_ids": input_ids, "input_mask": input_mask,
                  "token_type_ids": input_type_ids}


def extract(input_file: str, output_file: str, model: modeling.BertModel, tokenizer,
            layer_indexes, max_seq_length: int, batch_size: int, use_xla: bool = False) -> int:
  """Writes the JSONL of input_file to output_file; returns the number of lines written."""
  outputs_fn = layer_outputs_fn(model, layer_indexes, use_xla)
  with feature_extraction.JsonlFeatureWriter(output_file, layer_indexes) as writer:
    for batch, inputs in feature_batches(input_file, max_seq_length, tokenizer, batch_size):
      writer.write_batch(batch, list(np.asarray(outputs_fn(inputs))))
    return writer.num_written


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
                      FLAGS.max_seq_length, FLAGS.batch_size, FLAGS.use_xla)
  logging.info("Wrote %d lines to %s", num_lines, FLAGS.output_file)


if __name__ == "__main__":
  define_flags()
  flags.mark_flags_as_required(["input_file", "output_file", "bert_config_file"])
  app.run(main)
