"""learn_vocab.py: the learned WordPiece vocab / SentencePiece model make usable tokenizers."""
import gzip
import subprocess
import sys

import pytest

import learn_vocab
import tokenization
from bert import files


@pytest.fixture(scope="module")
def corpus(austen_files, tmp_path_factory):
  """About 2,500 sentence lines of Persuasion (input format: one sentence per line)."""
  path = next(p for p in austen_files if p.name.startswith("persuasion"))
  with gzip.open(path, "rt", encoding="utf-8") as f:
    lines = [line.strip() for line in f.read().splitlines()][:3000]
  out = tmp_path_factory.mktemp("corpus") / "persuasion.txt"
  out.write_text("\n".join(lines) + "\n", encoding="utf-8")
  return out, [line for line in lines if line]


def _unk_rate(ids_per_line, unk_id):
  total = sum(len(ids) for ids in ids_per_line)
  return sum(ids.count(unk_id) for ids in ids_per_line) / total


@pytest.mark.parametrize("do_lower_case", [True, False], ids=["uncased", "cased"])
def test_learned_wordpiece_vocab_is_usable(corpus, tmp_path, do_lower_case):
  path, lines = corpus
  sentences = list(learn_vocab.read_sentences(files.expand_input_files(str(path))))
  assert sentences == lines
  counts = learn_vocab.count_words(sentences, do_lower_case)
  vocab = learn_vocab.learn_wordpiece_vocab(counts, vocab_size=600,
                                            special_tokens=list(tokenization.SPECIAL_TOKENS),
                                            min_frequency=3)
  assert vocab[:5] == list(tokenization.SPECIAL_TOKENS)
  assert 0.9 * 600 <= len(vocab) <= 600 and len(set(vocab)) == len(vocab)
  assert any(token.startswith("##") and len(token) > 3 for token in vocab)
  vocab_file = tmp_path / "vocab.txt"
  learn_vocab.write_vocab(vocab_file, vocab)

  tokenizer = tokenization.FullTokenizer(str(vocab_file), do_lower_case=do_lower_case)
  fast = tokenizer.tokenize_to_ids(lines)
  assert fast == [tokenizer.convert_tokens_to_ids(tokenizer.tokenize(t)) for t in lines]
  assert _unk_rate(fast, tokenizer.vocab["[UNK]"]) < 0.002
  # Pieces are real subwords: far fewer tokens than characters.
  assert sum(len(ids) for ids in fast) < 0.4 * sum(len(t) for t in lines)


def test_learn_vocab_cli_sentencepiece(corpus, tmp_path, repo_dir):
  path, lines = corpus
  model = tmp_path / "sp.model"
  subprocess.run(
      [sys.executable, str(repo_dir / "learn_vocab.py"), f"--input_file={path}",
       f"--output_file={model}", "--model_type=sentencepiece", "--vocab_size=500",
       "--character_coverage=1.0"],
      check=True, cwd=repo_dir, capture_output=True)
  assert (tmp_path / "sp.vocab").exists()
  tokenizer = tokenization.create_tokenizer(spm_model_file=str(model), do_lower_case=True)
  assert len(tokenizer.vocab) == 500
  ids = tokenizer.tokenize_to_ids(lines)
  assert ids == [tokenizer.convert_tokens_to_ids(tokenizer.tokenize(t)) for t in lines]
  assert _unk_rate(ids, tokenizer.vocab["[UNK]"]) == 0.0
  pieces = tokenizer.tokenize("[CLS] Anne [MASK] [SEP]")
  assert {"[CLS]", "[MASK]", "[SEP]"} <= set(pieces)
  assert tokenizer.convert_tokens_to_ids(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]) == [
      0, 1, 2, 3, 4]


def test_bad_inputs_are_named(tmp_path):
  with pytest.raises(FileNotFoundError, match="nothing-here"):
    files.expand_input_files(str(tmp_path / "nothing-here*.txt"))
  with pytest.raises(ValueError, match=r"lacks \['\[UNK\]'\]"):
    learn_vocab.learn_wordpiece_vocab({"a": 5}, 100, ["[PAD]", "[CLS]"])
  with pytest.raises(ValueError, match="must end in .model"):
    learn_vocab.learn_sentencepiece_model(["a"], tmp_path / "x.bin", 100,
                                          list(tokenization.SPECIAL_TOKENS), True)
