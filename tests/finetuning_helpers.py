"""Test data builders shared by the fine-tuning script tests."""
import gzip
import pathlib
import random
import re

# A sentence ends at . ! or ? (optionally followed by a closing quote) before whitespace.
_SENTENCE_END = re.compile(r"(?<=[.!?])['\"]?\s+")


def austen_sentences(path: pathlib.Path, min_words: int = 8, max_words: int = 30) -> list:
  """Sentences of one novel (paragraphs joined, split after . ! ?), min..max words long,
  without tabs or quotes (the TSV format has no quoting)."""
  with gzip.open(path, "rt", encoding="utf-8") as f:
    paragraphs = re.split(r"\n\s*\n", f.read())
  sentences = []
  for paragraph in paragraphs:
    for sentence in _SENTENCE_END.split(" ".join(paragraph.split())):
      if min_words <= len(sentence.split()) <= max_words and not re.search(r"[\t\"]", sentence):
        sentences.append(sentence)
  return sentences


def austen_passages(path: pathlib.Path, min_words: int = 30, max_words: int = 45) -> list:
  """Runs of consecutive sentences of one novel, each min..max words long (see
  austen_sentences), not overlapping."""
  passages, current = [], []
  for sentence in austen_sentences(path, min_words=1, max_words=max_words):
    if len(" ".join(current + [sentence]).split()) > max_words:
      current = []
    current.append(sentence)
    if len(" ".join(current).split()) >= min_words:
      passages.append(" ".join(current))
      current = []
  return passages


def write_novel_classification_set(austen_files, folder: pathlib.Path, novels: tuple,
                                   num_train: int, num_dev: int, seed: int = 0) -> None:
  """train.tsv / dev.tsv / test.tsv of `label<TAB>passage` rows: which novel a passage (a
  few consecutive sentences, see austen_passages) is from. num_train and num_dev passages
  per novel, drawn without overlap; test.tsv holds the dev texts without labels."""
  by_name = {p.name.split(".")[0]: p for p in austen_files}
  rng = random.Random(seed)
  rows = {"train": [], "dev": []}
  for novel in novels:
    sentences = austen_passages(by_name[novel])
    rng.shuffle(sentences)
    rows["train"] += [(novel, s) for s in sentences[:num_train]]
    rows["dev"] += [(novel, s) for s in sentences[num_train:num_train + num_dev]]
  rng.shuffle(rows["train"])
  folder.mkdir(parents=True, exist_ok=True)
  for name, split_rows in rows.items():
    (folder / f"{name}.tsv").write_text("".join(f"{label}\t{s}\n" for label, s in split_rows),
                                        encoding="utf-8")
  (folder / "test.tsv").write_text("".join(f"?\t{s}\n" for _, s in rows["dev"]),
                                   encoding="utf-8")


def run_script(repo_dir: pathlib.Path, script: str, flags: dict, check: bool = True):
  """Runs `python script --name=value ...` from the repo root; returns the CompletedProcess.

  With check, a non-zero exit fails with the end of the script's stderr.
  """
  import subprocess
  import sys
  args = [sys.executable, str(repo_dir / script)]
  for name, value in flags.items():
    if isinstance(value, bool):
      args.append(f"--{name}" if value else f"--no{name}")
    else:
      args.append(f"--{name}={value}")
  result = subprocess.run(args, cwd=repo_dir, capture_output=True, text=True, check=False)
  if check and result.returncode != 0:
    raise AssertionError(f"{script} failed ({result.returncode}):\n{result.stderr[-4000:]}")
  return result


def assert_same_numbers(actual: str, expected: str, atol: float = 1e-5) -> None:
  """Two result files' texts are the same but for numbers within atol of each other."""
  actual_words, expected_words = actual.split(), expected.split()
  assert len(actual_words) == len(expected_words), (actual, expected)
  for a, e in zip(actual_words, expected_words):
    try:
      a_number, e_number = float(a), float(e)
    except ValueError:
      assert a == e, (actual, expected)
    else:
      assert abs(a_number - e_number) <= atol, (a, e)


def cut_lengths(stderr: str) -> list[int]:
  """The batch lengths of the last 'Predicting N examples: ... lengths [...]' log line."""
  lines = [line for line in stderr.splitlines() if "batches of lengths [" in line]
  assert lines, "no 'Predicting' log line"
  return [int(x) for x in lines[-1].split("lengths [", 1)[1].split("]", 1)[0].split(", ")]
