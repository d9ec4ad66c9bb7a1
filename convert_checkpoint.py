"""Converts a BERT checkpoint between Google's TF1 format, Hugging Face's and our own.

  python convert_checkpoint.py --input=PATH --output_dir=DIR [--output_format=tf1|hf]

PATH is a Hugging Face folder (model.safetensors or pytorch_model.bin + config.json), a Google
TF1 checkpoint prefix (bert_model.ckpt, bert_config.json beside it) or one of our training
checkpoints (a prefix or its folder; pass --bert_config_file when no config lies beside it).
tf1 output writes DIR/bert_config.json, DIR/bert_model.ckpt.* and DIR/vocab.txt when the input
has one; hf output writes DIR/model.safetensors, DIR/config.json and DIR/vocab.txt.
Every weight of the input is either converted or named in the error; nothing is dropped.
"""
import os
import shutil

from absl import app
from absl import flags
from absl import logging

import modeling
from bert import checkpoints

FLAGS = flags.FLAGS


def define_flags():
  """Defines the CLI flags (only when run as a script, so tests can import this module
  next to other scripts that define flags of the same name)."""
  flags.DEFINE_string("input", None, "Checkpoint to convert: HF folder/file, TF1 prefix or ours.")
  flags.DEFINE_string("output_dir", None, "Folder to write the converted checkpoint into.")
  flags.DEFINE_enum("output_format", "tf1", ["tf1", "hf"], "Format to write.")
  flags.DEFINE_string("bert_config_file", None,
                      "Config JSON (Google's or HF's); default: the one beside --input.")


def _vocab_beside(path):
  vocab = os.path.join(checkpoints.checkpoint_folder(path)[1], "vocab.txt")
  return vocab if os.path.exists(vocab) else None


def convert(input_path, output_dir, output_format="tf1", bert_config_file=None):
  """Converts `input_path` into `output_dir`; returns the LoadReport of the read."""
  config = checkpoints.config_for_checkpoint(input_path, bert_config_file)
  model = modeling.BertPretrainingModel(config, use_next_sentence=True)
  report = checkpoints.init_from_checkpoint(model, input_path)
  # A head the input lacks entirely is simply not written; anything else is an error.
  absent_heads = [g for g in checkpoints.HEAD_GROUPS
                  if not any(name.startswith(g) for name in report.loaded)]
  missing = [n for n in report.missing if not n.startswith(tuple(absent_heads))]
  if report.unused or report.shape_mismatches or missing:
    raise ValueError(f"Cannot convert {input_path} without losing weights:\n"
                     f"{report.summary()}")
  tensors = checkpoints.model_tensors(model, names=set(report.loaded))
  os.makedirs(output_dir, exist_ok=True)
  if output_format == "tf1":
    with open(os.path.join(output_dir, "bert_config.json"), "w", encoding="utf-8") as f:
      f.write(config.to_json_string())
    checkpoints.write_tf1_checkpoint(tensors, os.path.join(output_dir, "bert_model.ckpt"))
  elif output_format == "hf":
    checkpoints.write_hf_checkpoint(tensors, config, output_dir)
  else:
    raise ValueError(f"output_format must be 'tf1' or 'hf', got {output_format!r}.")
  vocab = _vocab_beside(input_path)
  if vocab is not None:
    shutil.copyfile(vocab, os.path.join(output_dir, "vocab.txt"))
  logging.info("Wrote %d variables (%s) to %s.", len(tensors), output_format, output_dir)
  return report


def main(argv):
  del argv
  convert(FLAGS.input, FLAGS.output_dir, FLAGS.output_format, FLAGS.bert_config_file)


if __name__ == "__main__":
  define_flags()
  flags.mark_flags_as_required(["input", "output_dir"])
  app.run(main)
