"""inference.py end to end: a tiny model fine-tuned by run_squad.py on a hand-written SQuAD
file answers from --question/--context, from --context_file (a context cut into several
windows) and through the stdin JSON loop, with error lines for bad requests."""
import json
import subprocess
import sys

import pytest
import tiny
from finetuning_helpers import run_script

import tokenization
from bert import squad_data

PEMBERLEY = ("Pemberley is the estate of Mr. Darcy in Derbyshire. Elizabeth Bennet first saw "
             "it in the summer.")
AUSTEN = ("Jane Austen was born at Steventon rectory in Hampshire in 1775. She later lived "
          "at Chawton. Her novel Pride and Prejudice was published by Thomas Egerton in 1813.")
QUESTIONS = [  # (id, context, question, answer)
    ("owner", PEMBERLEY, "Whose estate is Pemberley?", "Mr. Darcy"),
    ("county", PEMBERLEY, "Where is Pemberley?", "Derbyshire"),
    ("publisher", AUSTEN, "Who published Pride and Prejudice?", "Thomas Egerton"),
]
WINDOWS = {"max_seq_length": 32, "doc_stride": 8, "max_query_length": 12}


def _squad_json() -> dict:
  paragraphs = {}
  for qid, context, question, answer in QUESTIONS:
    paragraphs.setdefault(context, []).append(
        {"id": qid, "question": question,
         "answers": [{"text": answer, "answer_start": context.index(answer)}]})
  return {"version": "1.1", "data": [{"title": "Austen", "paragraphs": [
      {"context": context, "qas": qas} for context, qas in paragraphs.items()]}]}


@pytest.fixture(scope="module")
def fine_tuned(repo_dir, uncased_vocab, tmp_path_factory):
  """Flags that point inference.py at a tiny model run_squad.py overfitted on QUESTIONS."""
  tmp_path = tmp_path_factory.mktemp("squad")
  data_file = tmp_path / "train.json"
  data_file.write_text(json.dumps(_squad_json()))
  output_dir = tmp_path / "out"
  run_script(repo_dir, "run_squad.py", {
      "vocab_file": uncased_vocab,
      "bert_config_file": tiny.write_config(tmp_path / "bert_config.json", 30522, dropout=0.0),
      "train_file": data_file, "do_train": True, "train_batch_size": 8,
      "num_train_epochs": 300, "learning_rate": 3e-3, "output_dir": output_dir,
      "log_freq": 50, **WINDOWS})
  # The folder resolves to its bert_model.ckpt and the bert_config.json beside it.
  return {"init_checkpoint": output_dir, "vocab_file": uncased_vocab, **WINDOWS}


def _run(repo_dir, flags, stdin=None):
  args = [sys.executable, str(repo_dir / "inference.py")]
  for name, value in flags.items():
    args.append((f"--{name}" if value else f"--no{name}") if isinstance(value, bool)
                else f"--{name}={value}")
  result = subprocess.run(args, cwd=repo_dir, input=stdin, capture_output=True, text=True,
                          check=False)
  assert result.returncode == 0, result.stderr[-4000:]
  return result.stdout


def test_the_long_context_is_windowed(uncased_vocab):
  tokenizer = tokenization.FullTokenizer(str(uncased_vocab))
  example = squad_data.SquadExample("publisher", QUESTIONS[2][2],
                                   squad_data.split_on_whitespace(AUSTEN)[0])
  features = list(squad_data.convert_examples_to_features(
      [example], tokenizer, is_training=False, batched_tokenization=False, **WINDOWS))
  assert len(features) == 3  # and only the last window holds the whole answer
  assert [("thomas" in f.tokens, "##ger" in f.tokens) for f in features] == [
      (False, False), (True, False), (True, True)]


def test_question_and_context(repo_dir, fine_tuned):
  stdout = _run(repo_dir, {**fine_tuned, "question": QUESTIONS[0][2], "context": PEMBERLEY,
                           "n_best_size": 5})
  lines = stdout.splitlines()
  assert lines[0] == "Answer: Mr. Darcy"
  assert lines[1].startswith("Score: ") and 0.0 < float(lines[1].split()[1]) <= 1.0
  assert lines[2] == "N-best:"
  nbest = lines[3:]
  assert 1 <= len(nbest) <= 5
  assert nbest[0].startswith("   1. ") and "'Mr. Darcy'" in nbest[0]
  assert float(nbest[0].split()[1]) == float(lines[1].split()[1])


def test_windows_cut_to_their_length_give_the_padded_answer(repo_dir, fine_tuned):
  """One window per batch, each cut to its bucket (the second is short), gives the answer
  and n-best of Google's fully padded windows."""
  tokenizer = tokenization.FullTokenizer(str(fine_tuned["vocab_file"]))
  example = squad_data.SquadExample("owner", QUESTIONS[0][2],
                                   squad_data.split_on_whitespace(PEMBERLEY)[0])
  windows = list(squad_data.convert_examples_to_features(
      [example], tokenizer, is_training=False, batched_tokenization=False, **WINDOWS))
  assert [len(w.tokens) for w in windows] == [32, 25]  # the second runs 28 long
  answers = [json.loads(_run(repo_dir, {**fine_tuned, "question": QUESTIONS[0][2],
                                        "context": PEMBERLEY, "json": True,
                                        "predict_batch_size": 1, "pad_to_max_length": pad}))
             for pad in (False, True)]
  assert answers[0]["answer"] == answers[1]["answer"] == "Mr. Darcy"
  assert [e["text"] for e in answers[0]["nbest"]] == [e["text"] for e in answers[1]["nbest"]]
  for cut, padded in zip(answers[0]["nbest"], answers[1]["nbest"]):
    for key in ("probability", "start_logit", "end_logit"):
      assert cut[key] == pytest.approx(padded[key], abs=1e-5)


def test_context_file_json(repo_dir, fine_tuned, tmp_path):
  context_file = tmp_path / "austen.txt"
  context_file.write_text(AUSTEN + "\n", encoding="utf-8")
  stdout = _run(repo_dir, {**fine_tuned, "question": QUESTIONS[2][2],
                           "context_file": context_file, "json": True})
  response = json.loads(stdout)
  assert response["answer"] == "Thomas Egerton"
  assert list(response) == ["answer", "score", "nbest"]
  assert response["nbest"][0]["text"] == "Thomas Egerton"
  assert response["score"] == response["nbest"][0]["probability"]
  assert sum(e["probability"] for e in response["nbest"]) == pytest.approx(1.0)
  assert len(response["nbest"]) <= 20



def test_stdin_loop(repo_dir, fine_tuned, tmp_path):
  """One JSON line out per request, in order; bad requests get an "error" line and the loop
  goes on; lines without "context" use --context_file; an "id" is echoed."""
  context_file = tmp_path / "pemberley.txt"
  context_file.write_text(PEMBERLEY, encoding="utf-8")
  requests = [
      json.dumps({"question": QUESTIONS[0][2], "context": PEMBERLEY}),
      '{"question": "Who?", "context": ',  # malformed JSON
      "",
      json.dumps({"id": 7, "question": QUESTIONS[1][2]}),  # context from --context_file
      json.dumps(["not", "an", "object"]),
      json.dumps({"context": AUSTEN}),
      json.dumps({"question": QUESTIONS[2][2], "context": "   "}),
      json.dumps({"id": "last", "question": QUESTIONS[2][2], "context": AUSTEN}),
  ]
  stdout = _run(repo_dir, {**fine_tuned, "context_file": context_file},
                stdin="\n".join(requests) + "\n")
  responses = [json.loads(line) for line in stdout.splitlines()]
  assert len(responses) == 7  # the blank line is skipped
  assert responses[0]["answer"] == "Mr. Darcy"
  assert responses[0]["nbest"][0]["text"] == "Mr. Darcy"
  assert responses[1] == {"error": responses[1]["error"]}
  assert responses[1]["error"].startswith("line 2: not valid JSON")
  assert responses[2]["id"] == 7 and responses[2]["answer"] == "Derbyshire"
  assert responses[3]["error"].startswith("line 5: expected a JSON object")
  assert responses[4]["error"] == 'line 6: no "question" key'
  assert responses[5]["error"].startswith("line 7: the context must be a non-empty string")
  assert responses[6]["id"] == "last" and responses[6]["answer"] == "Thomas Egerton"


def test_checkpoint_without_squad_head(tmp_path):
  """A pre-trained encoder (no cls/squad/ head) is refused with the missing variables."""
  import inference
  import modeling
  from bert import checkpoints
  config = tiny.config(30522, dropout=0.0)
  encoder = modeling.BertModel(config)
  checkpoints.write_tf1_checkpoint(checkpoints.model_tensors(encoder),
                                   str(tmp_path / "bert_model.ckpt"))
  with pytest.raises(ValueError, match=r"not a model fine-tuned for SQuAD[\s\S]*"
                                       r"model variable not initialised: cls/squad/"):
    inference.load_model(str(tmp_path / "bert_model.ckpt"), config)


def test_one_trace_for_every_request(tmp_path, uncased_vocab):
  """The forward pass is traced once, whatever the number of windows of a request."""
  import inference
  from bert import task_models
  answerer = inference.QuestionAnswerer(
      task_models.BertSquad(tiny.config(30522, dropout=0.0)),
      tokenization.FullTokenizer(str(uncased_vocab)), batch_size=2, **WINDOWS)
  for context in (PEMBERLEY, AUSTEN, AUSTEN + " " + PEMBERLEY):
    response = answerer.answer("Who?", context)
    assert response["answer"] and len(response["nbest"]) <= 20
  assert answerer._predict.experimental_get_tracing_count() == 1
  with pytest.raises(ValueError, match="The max_seq_length \\(16\\) must be greater"):
    inference.QuestionAnswerer(None, None, max_seq_length=16, max_query_length=13)
