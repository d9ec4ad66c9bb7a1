"""The tiny BERT every test builds, and the reader of Google's results files.

`config(...)`/`write_config(...)`: a 2-layer, hidden-32 BERT (Google's other defaults), with
any field overridden; `dropout` sets both dropout probabilities (exact comparisons use 0).
"""
import json
import pathlib

TINY = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
            hidden_act="gelu", hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1,
            max_position_embeddings=64, type_vocab_size=2, initializer_range=0.02)


def config_dict(vocab_size: int, dropout: float | None = None, **overrides) -> dict:
  values = dict(TINY, vocab_size=vocab_size)
  if dropout is not None:
    values.update(hidden_dropout_prob=dropout, attention_probs_dropout_prob=dropout)
  values.update(overrides)
  return values


def config(vocab_size: int = 100, dropout: float | None = None, **overrides):
  """A modeling.BertConfig of the tiny model."""
  import modeling
  return modeling.BertConfig.from_dict(config_dict(vocab_size, dropout, **overrides))


def write_config(path: pathlib.Path, vocab_size: int, dropout: float | None = None,
                 **overrides) -> pathlib.Path:
  """The tiny model's Google bert_config.json at `path`."""
  path.write_text(json.dumps(config_dict(vocab_size, dropout, **overrides), indent=2),
                  encoding="utf-8")
  return path


def read_results(path: pathlib.Path) -> dict[str, str]:
  """Google's eval_results.txt: {key: value as written} of its `key = value` lines."""
  results = {}
  for line in path.read_text(encoding="utf-8").splitlines():
    key, value = line.split(" = ", 1)
    results[key] = value
  return results
