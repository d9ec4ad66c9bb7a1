"""Question answering from the command line with a SQuAD-fine-tuned BERT (as NVIDIA's
inference.py): the answer, its score and the n-best.

  python inference.py --init_checkpoint=out/squad/bert_model.ckpt \
    --bert_config_file=out/squad/bert_config.json --vocab_file=vocab.txt \
    --question="When was the tower completed?" \
    --context="The Eiffel Tower was completed in 1889 by Gustave Eiffel's company."

--context_file=FILE reads a long context from a UTF-8 file; it is windowed as run_squad.py
windows documents (--max_seq_length, --doc_stride, --max_query_length). --json prints the
answer as one JSON object instead of text.

Without --question (or with --stdin), it serves a loop on stdin: one JSON object per line in,
  {"question": "...", "context": "..."}   ("context" may be left out when --context or
                                            --context_file gives a default; an "id" is echoed)
one JSON line out per request (blank lines are skipped):
  {"answer": "...", "score": p, "nbest": [{"text", "probability", "start_logit",
   "end_logit"}, ...]}   (and "null_score_diff" with --version_2_with_negative)
or {"error": "line N: ..."} for a request that cannot be answered (malformed JSON, missing
keys, an empty context): the loop goes on. The model is built and compiled once.

The answer and n-best are run_squad's (squad_data windows, squad_predictions's n-best spans);
the score is the answer's probability among the n-best (softmax of start + end logits).
"""
import json
import sys
from collections.abc import Iterable
from typing import TextIO

import tensorflow as tf
from absl import app
from absl import flags
from absl import logging

import tokenization
from bert import checkpoints
from bert import flag_blocks
from bert import length_buckets
from bert import squad_data
from bert import squad_predictions
from bert import task_models

FLAGS = flags.FLAGS

_QAS_ID = "question"


def define_flags():
  flags.DEFINE_string("init_checkpoint", None, "A model fine-tuned by run_squad.py (its "
                      "output_dir, bert_model.ckpt, or any checkpoint with cls/squad/).")
  flags.DEFINE_string("bert_config_file", None, "The model's config json (default: "
                      "bert_config.json or config.json beside --init_checkpoint).")
  flags.DEFINE_string("question", None, "The question; without it, questions come from stdin.")
  flags.DEFINE_string("context", None, "The context (paragraph) to find the answer in.")
  flags.DEFINE_string("context_file", None, "A UTF-8 file holding the context, instead of "
                      "--context.")
  flags.DEFINE_bool("stdin", False, "Serve one JSON request per stdin line even with "
                    "--question given (without --question this is the default).")
  flags.DEFINE_alias("interactive", "stdin")
  flags.DEFINE_bool("json", False, "Print the answer of --question as a JSON object.")
  flags.DEFINE_integer("max_seq_length", 384, "The maximum total input sequence length after "
                       "WordPiece tokenization (as the model was fine-tuned).")
  flags.DEFINE_integer("doc_stride", 128, "When splitting up a long document into chunks, how "
                       "much stride to take between chunks.")
  flags.DEFINE_integer("max_query_length", 64, "The maximum number of tokens for the question. "
                       "Questions longer than this will be truncated to this length.")
  flags.DEFINE_integer("n_best_size", 20, "The number of n-best answers to return.")
  flags.DEFINE_integer("max_answer_length", 30, "The maximum length of an answer, in "
                       "WordPieces.")
  flags.DEFINE_bool("version_2_with_negative", False, "The model was fine-tuned on SQuAD 2.0: "
                    "the answer may be \"\" (no answer).")
  flags.DEFINE_float("null_score_diff_threshold", 0.0, "If null_score - best_non_null is "
                     "greater than the threshold predict null.")
  flags.DEFINE_integer("predict_batch_size", 8, "Windows per forward pass.")
  flag_blocks.define_tokenizer_flags()
  flag_blocks.define_padding_flag()


class QuestionAnswerer:
  """Answers questions about contexts with one fine-tuned BertSquad, compiled once."""

  def __init__(self, model, tokenizer, max_seq_length: int = 384, doc_stride: int = 128,
               max_query_length: int = 64, n_best_size: int = 20,
               max_answer_length: int = 30, version_2_with_negative: bool = False,
               null_score_diff_threshold: float = 0.0, batch_size: int = 8,
               pad_to_max_length: bool = False):
    if max_seq_length <= max_query_length + 3:
      raise ValueError(f"The max_seq_length ({max_seq_length}) must be greater than "
                       f"max_query_length ({max_query_length}) + 3")
    self.tokenizer = tokenizer
    self.max_seq_length = max_seq_length
    self.doc_stride = doc_stride
    self.max_query_length = max_query_length
    self.n_best_size = n_best_size
    self.max_answer_length = max_answer_length
    self.version_2_with_negative = version_2_with_negative
    self.null_score_diff_threshold = null_score_diff_threshold
    self.batch_size = batch_size
    self.pad_to_max_length = pad_to_max_length
    spec = tf.TensorSpec([None, None], tf.int32)
    # One trace serves every request, whatever its number of windows and their length.
    self._predict = tf.function(lambda features: model(features, training=False),
                                input_signature=[{"input_ids": spec, "input_mask": spec,
                                                  "segment_ids": spec}])

  def answer(self, question: str, context: str) -> dict:
    """The answer to one question.

    Returns:
      {"answer": str, "score": its probability among the n-best, "nbest": [{"text",
      "probability", "start_logit", "end_logit"}], and, for SQuAD 2.0 models,
      "null_score_diff": null score - best span score (> threshold: answer "")}.
    Raises:
      ValueError: the question or the context is not a non-blank string.
    """
    for name, value in (("question", question), ("context", context)):
      if not isinstance(value, str) or not value.strip():
        raise ValueError(f"the {name} must be a non-empty string, got {value!r}")
    doc_tokens, _ = squad_data.split_on_whitespace(context)
    example = squad_data.SquadExample(qas_id=_QAS_ID, question_text=question,
                                     doc_tokens=doc_tokens)
    # Python WordPiece: a single request is too small for the batch path's graph build.
    features = list(squad_data.convert_examples_to_features(
        [example], self.tokenizer, self.max_seq_length, self.doc_stride,
        self.max_query_length, is_training=False, batched_tokenization=False))
    arrays = squad_data.features_to_arrays(features, is_training=False)
    outputs = length_buckets.predict_in_order(
        lambda batch: {k: v.numpy() for k, v in self._predict(batch).items()},
        {name: arrays[name] for name in ("input_ids", "input_mask", "segment_ids")},
        self.batch_size, self.pad_to_max_length, outputs_per_token=True, log_batches=False)
    results = squad_predictions.raw_results(arrays["unique_ids"], outputs)
    predictions, nbest, scores_diff = squad_predictions.compute_predictions(
        [example], features, results, self.n_best_size, self.max_answer_length,
        self.tokenizer.do_lower_case, self.version_2_with_negative,
        self.null_score_diff_threshold)
    answer = predictions[_QAS_ID]
    entries = [dict(entry) for entry in nbest[_QAS_ID]]
    score = next((e["probability"] for e in entries if e["text"] == answer), 0.0)
    response = {"answer": answer, "score": score, "nbest": entries}
    if self.version_2_with_negative:
      response["null_score_diff"] = scores_diff[_QAS_ID]
    return response


def load_model(init_checkpoint: str, config) -> task_models.BertSquad:
  """A BertSquad with every variable, the SQuAD head included, from init_checkpoint."""
  model = task_models.BertSquad(config)
  report = checkpoints.init_from_checkpoint(model, init_checkpoint)
  if report.missing or report.shape_mismatches:
    raise ValueError(f"{init_checkpoint}: not a model fine-tuned for SQuAD with this config "
                     f"(fine-tune one with run_squad.py):\n{report.summary()}")
  return model


def read_context_file(path: str) -> str:
  try:
    with open(path, encoding="utf-8") as f:
      return f.read()
  except FileNotFoundError:
    raise FileNotFoundError(f"--context_file not found: {path}") from None
  except UnicodeDecodeError as e:
    raise ValueError(f"{path}: not UTF-8 ({e.reason} at byte {e.start})") from None


def serve(answerer: QuestionAnswerer, lines: Iterable[str], out: TextIO,
          default_context: str | None = None) -> int:
  """Answers one JSON request per line (see the module doc), one JSON line out each.

  A request that fails (bad JSON, missing or empty fields, any error while answering) gets
  {"error": "line N: ..."} and the loop goes on. Returns the number of error lines.
  """
  num_errors = 0
  for line_number, line in enumerate(lines, start=1):
    if not line.strip():
      continue
    request = None
    try:
      request = json.loads(line)
      if not isinstance(request, dict):
        raise ValueError('expected a JSON object {"question": ..., "context": ...}, got '
                         f"{type(request).__name__}")
      if "question" not in request:
        raise ValueError('no "question" key')
      context = request.get("context", default_context)
      if context is None:
        raise ValueError('no "context" key (and no --context or --context_file default)')
      response = answerer.answer(request["question"], context)
    except json.JSONDecodeError as e:
      response = {"error": f"line {line_number}: not valid JSON ({e.msg} at column "
                           f"{e.colno})"}
    except Exception as e:
      # One bad request must not take the server down; report it on its own line.
      response = {"error": f"line {line_number}: {e}"}
    if "error" in response:
      num_errors += 1
    if isinstance(request, dict) and "id" in request:
      response = {"id": request["id"], **response}
    out.write(json.dumps(response, ensure_ascii=False) + "\n")
    out.flush()
  return num_errors


def format_answer(response: dict) -> str:
  """The text output of a single --question: answer, score, then the n-best."""
  lines = [f"Answer: {response['answer']}", f"Score: {response['score']:.6f}"]
  if "null_score_diff" in response:
    lines.append(f"Null score diff: {response['null_score_diff']:.4f}")
  lines.append("N-best:")
  for rank, entry in enumerate(response["nbest"], start=1):
    lines.append(f"{rank:4d}. {entry['probability']:.6f}  {entry['text']!r}  (start_logit "
                 f"{entry['start_logit']:.4f}, end_logit {entry['end_logit']:.4f})")
  return "\n".join(lines)


def main(_):
  if FLAGS.context is not None and FLAGS.context_file:
    raise app.UsageError("Pass at most one of --context and --context_file.")
  context = read_context_file(FLAGS.context_file) if FLAGS.context_file else FLAGS.context
  serve_stdin = FLAGS.stdin or FLAGS.question is None
  if not serve_stdin and context is None:
    raise app.UsageError("--question needs --context or --context_file.")
  tokenizer = tokenization.create_tokenizer(FLAGS.vocab_file, FLAGS.spm_model_file,
                                            FLAGS.do_lower_case, FLAGS.init_checkpoint)
  config = checkpoints.config_for_checkpoint(FLAGS.init_checkpoint, FLAGS.bert_config_file)
  config.check_seq_length(FLAGS.max_seq_length, FLAGS.bert_config_file or FLAGS.init_checkpoint)
  answerer = QuestionAnswerer(
      load_model(FLAGS.init_checkpoint, config), tokenizer, FLAGS.max_seq_length,
      FLAGS.doc_stride, FLAGS.max_query_length, FLAGS.n_best_size, FLAGS.max_answer_length,
      FLAGS.version_2_with_negative, FLAGS.null_score_diff_threshold, FLAGS.predict_batch_size,
      FLAGS.pad_to_max_length)
  if FLAGS.question is not None:
    response = answerer.answer(FLAGS.question, context)
    print(json.dumps(response, ensure_ascii=False) if FLAGS.json else format_answer(response),
          flush=True)
  if serve_stdin:
    logging.info("Reading one JSON request per line from stdin")
    serve(answerer, sys.stdin, sys.stdout, default_context=context)


if __name__ == "__main__":
  define_flags()
  flags.mark_flags_as_required(["init_checkpoint"])
  app.run(main)
