"""Exports a BERT encoder as a serving SavedModel.

  python export_saved_model.py --init_checkpoint=PATH --export_dir=DIR \
      [--bert_config_file=...] [--serving_input=ids|text --vocab_file=... --do_lower_case]

Two serving variants, both returning {"pooled_output" [B, H], "sequence_output" [B, S, H]}:
* ids: signature `serving_default(input_ids, input_mask, token_type_ids)`, int32 [B, S];
* text: signature `serving_default(text)`, string [B]; WordPiece tokenization runs in the
  graph (tensorflow-text, tokenization.FullTokenizer.tf_tokenizer), each text becomes
  [CLS] tokens [SEP] truncated to --max_seq_length, and the batch is padded to its longest
  row. The text signature also returns the "input_ids" and "input_mask" it built.
  Loading a text SavedModel needs `import tensorflow_text` (its custom ops).
"""
import os

import tensorflow as tf
from absl import app
from absl import flags

import modeling
import tokenization
from bert import checkpoints
from bert import graph_tokenizer

FLAGS = flags.FLAGS


def define_flags():
  """Defines the CLI flags (only when run as a script, so tests can import this module
  next to other scripts that define flags of the same name)."""
  flags.DEFINE_string("init_checkpoint", None, "Checkpoint to export (any format "
                      "bert/checkpoints.py reads: Google TF1, Hugging Face folder or ours).")
  flags.DEFINE_string("bert_config_file", None, "Config JSON; default: the one beside the "
                      "checkpoint.")
  flags.DEFINE_string("export_dir", None, "Folder to write the SavedModel into.")
  flags.DEFINE_enum("serving_input", "ids", ["ids", "text"], "What the signature takes.")
  flags.DEFINE_string("vocab_file", None, "WordPiece vocab for --serving_input=text; default: "
                      "vocab.txt beside the checkpoint.")
  flags.DEFINE_bool("do_lower_case", True, "Lower-case and strip accents (uncased models).")
  flags.DEFINE_integer("max_seq_length", 128, "Longest tokenized text, [CLS] and [SEP] included.")


def _encoder_outputs(model, input_ids, input_mask, token_type_ids):
  outputs = model({"input_ids": input_ids, "input_mask": input_mask,
                   "token_type_ids": token_type_ids}, training=False)
  return {"pooled_output": tf.cast(outputs["pooled_output"], tf.float32),
          "sequence_output": tf.cast(outputs["sequence_output"], tf.float32)}


class IdsServing(tf.Module):
  """Serving module over token ids."""

  def __init__(self, model):
    super().__init__(name="bert_ids_serving")
    self.model = model

  @tf.function(input_signature=[tf.TensorSpec([None, None], tf.int32, name="input_ids"),
                                tf.TensorSpec([None, None], tf.int32, name="input_mask"),
                                tf.TensorSpec([None, None], tf.int32, name="token_type_ids")])
  def serve(self, input_ids, input_mask, token_type_ids):
    """int32 [B, S] each -> {"pooled_output": [B, H], "sequence_output": [B, S, H]}."""
    return _encoder_outputs(self.model, input_ids, input_mask, token_type_ids)


class TextServing(tf.Module):
  """Serving module over raw UTF-8 strings, tokenized in the graph."""

  def __init__(self, model, tokenizer, max_seq_length):
    super().__init__(name="bert_text_serving")
    model.config.check_seq_length(max_seq_length)
    self.model = model
    self.wordpiece_ids = graph_tokenizer.for_tokenizer(tokenizer)
    self._cls_id, self._sep_id = tokenizer.convert_tokens_to_ids(["[CLS]", "[SEP]"])
    self._max_seq_length = max_seq_length

  def encode(self, text):
    """string [B] -> (input_ids, input_mask) int32 [B, S], S = longest row of the batch."""
    wordpieces = self.wordpiece_ids(text)[:, :self._max_seq_length - 2]
    batch = tf.shape(text, out_type=tf.int64)[0]
    cls = tf.fill([batch, 1], tf.constant(self._cls_id, tf.int64))
    sep = tf.fill([batch, 1], tf.constant(self._sep_id, tf.int64))
    ids = tf.concat([cls, wordpieces, sep], axis=1)
    input_ids = tf.cast(ids.to_tensor(default_value=0), tf.int32)
    input_mask = tf.sequence_mask(ids.row_lengths(), maxlen=tf.shape(input_ids)[1],
                                  dtype=tf.int32)
    return input_ids, input_mask

  @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text")])
  def serve(self, text):
    """string [B] -> {"pooled_output", "sequence_output", "input_ids", "input_mask"}."""
    input_ids, input_mask = self.encode(text)
    outputs = _encoder_outputs(self.model, input_ids, input_mask, tf.zeros_like(input_ids))
    return dict(outputs, input_ids=input_ids, input_mask=input_mask)


def export(model, export_dir, tokenizer=None, max_seq_length=128):
  """Writes the ids SavedModel, or the text one when a tokenizer (FullTokenizer) is given."""
  module = (IdsServing(model) if tokenizer is None
            else TextServing(model, tokenizer, max_seq_length))
  tf.saved_model.save(module, export_dir, signatures={"serving_default": module.serve})
  return module


def main(argv):
  del argv
  config = checkpoints.config_for_checkpoint(FLAGS.init_checkpoint, FLAGS.bert_config_file)
  model = modeling.BertModel(config)
  checkpoints.init_from_checkpoint(model, FLAGS.init_checkpoint, strict=True)
  tokenizer = None
  if FLAGS.serving_input == "text":
    vocab_file = FLAGS.vocab_file
    if vocab_file is None:
      vocab_file = os.path.join(checkpoints.checkpoint_folder(FLAGS.init_checkpoint)[1],
                                "vocab.txt")
    tokenizer = tokenization.create_tokenizer(vocab_file, do_lower_case=FLAGS.do_lower_case,
                                              init_checkpoint=FLAGS.init_checkpoint)
  export(model, FLAGS.export_dir, tokenizer, FLAGS.max_seq_length)


if __name__ == "__main__":
  define_flags()
  flags.mark_flags_as_required(["init_checkpoint", "export_dir"])
  app.run(main)
