"""SQuAD v1.1 / v2.0 evaluation with the official v2.0 script's interface and output keys.

    python evaluate_squad.py DATA.json PRED.json [--na-prob-file F] [--na-prob-thresh T]
                             [--out-file F]

DATA.json is a SQuAD file, PRED.json maps question id -> predicted answer text ("" for "no
answer"), and the optional na-prob file maps question id -> the model's no-answer score (e.g.
run_squad's null_odds.json). The output is the official script's JSON; bert/squad_metrics.py
computes it and documents the one deliberate difference from the official script.
"""
import argparse
import json

from bert import files
from bert import squad_metrics


def parse_args(argv=None) -> argparse.Namespace:
  parser = argparse.ArgumentParser(
      description="Official evaluation script for SQuAD version 2.0 (serves v1.1 too).")
  parser.add_argument("data_file", metavar="data.json", help="Input data JSON file.")
  parser.add_argument("pred_file", metavar="pred.json", help="Model predictions.")
  parser.add_argument("--out-file", "-o", metavar="eval.json",
                      help="Write accuracy metrics to file (default is stdout).")
  parser.add_argument("--na-prob-file", "-n", metavar="na_prob.json",
                      help="Model estimates of probability of no answer.")
  parser.add_argument("--na-prob-thresh", "-t", type=float, default=1.0,
                      help='Predict "" if no-answer probability exceeds this (default = 1.0).')
  return parser.parse_args(argv)


def main(argv=None) -> dict:
  opts = parse_args(argv)
  dataset = squad_metrics.load_dataset(opts.data_file)
  predictions = files.load_json(opts.pred_file, "predictions", dict)
  na_probs = None
  if opts.na_prob_file:
    na_probs = files.load_json(opts.na_prob_file, "na-prob", dict)
  out_eval = squad_metrics.evaluate(dataset, predictions, na_probs, opts.na_prob_thresh)
  if opts.out_file:
    with open(opts.out_file, "w", encoding="utf-8") as f:
      json.dump(out_eval, f)
  else:
    print(json.dumps(out_eval, indent=2))
  return out_eval


if __name__ == "__main__":
  main()
