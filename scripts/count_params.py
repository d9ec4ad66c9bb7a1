"""Prints the parameter counts of configs/*.json as the Markdown table in configs/README.md.

Counts come from the models themselves (modeling.BertModel and modeling.BertPretrainingModel
built on CPU), each variable once: the masked-LM output layer shares the word embeddings.

Usage: python scripts/count_params.py [configs/bert_tiny.json ...]   (default: every config)
"""
import glob
import os
import sys

import modeling

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Google's names for the sizes (the compact models of google-research/bert's README).
DISPLAY_NAMES = {"bert_tiny": "BERT-Tiny", "bert_mini": "BERT-Mini", "bert_small": "BERT-Small",
                 "bert_medium": "BERT-Medium", "bert_base": "BERT-Base",
                 "bert_large": "BERT-Large"}


def count_variables(variables) -> int:
  """Total elements of `variables`, each variable counted once however often it is listed."""
  unique = {id(v): v for v in variables}
  total = 0
  for v in unique.values():
    size = 1
    for dim in v.shape:
      size *= int(dim)
    total += size
  return total


def config_row(path: str) -> dict:
  """{"name", "layers", "hidden", "heads", "intermediate", "encoder", "pretraining"}."""
  config = modeling.BertConfig.from_json_file(path)
  model = modeling.BertPretrainingModel(config)
  encoder = count_variables(model.bert.trainable_variables)
  total = count_variables(model.trainable_variables)
  stem = os.path.splitext(os.path.basename(path))[0]
  return {"name": stem, "layers": config.num_hidden_layers, "hidden": config.hidden_size,
          "heads": config.num_attention_heads, "intermediate": config.intermediate_size,
          "encoder": encoder, "pretraining": total}


def markdown_table(rows) -> str:
  lines = ["| config | model | L | H | A | FFN | encoder params | with pre-training heads |",
           "|---|---|--:|--:|--:|--:|--:|--:|"]
  for r in rows:
    lines.append(f"| `{r['name']}.json` | {DISPLAY_NAMES.get(r['name'], r['name'])} "
                 f"| {r['layers']} | {r['hidden']} | {r['heads']} | {r['intermediate']} "
                 f"| {r['encoder']:,} ({r['encoder'] / 1e6:.1f}M) "
                 f"| {r['pretraining']:,} ({r['pretraining'] / 1e6:.1f}M) |")
  return "\n".join(lines)


def main(paths):
  if not paths:
    paths = glob.glob(os.path.join(REPO, "configs", "*.json"))
  rows = sorted((config_row(p) for p in paths), key=lambda r: r["encoder"])
  print(markdown_table(rows))


if __name__ == "__main__":
  main(sys.argv[1:])
