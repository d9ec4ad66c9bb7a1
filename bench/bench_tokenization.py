"""Tokenizer throughput on the Austen corpus: Google's Python algorithm vs the fast path.

  .venv/bin/python bench/bench_tokenization.py [--vocab_file=...] [--do_lower_case=true]

Times `FullTokenizer.tokenize` + `convert_tokens_to_ids` line by line (the exact Python path)
and `FullTokenizer.tokenize_to_ids` on all lines (the C path, native/wordpiece.c, on one thread
and on all cores), plus tensorflow-text's FastBertTokenizer (the in-graph tokenizer's engine) for
comparison; checks that the ids are identical, prints MB/s (UTF-8 input bytes per second) and
ends with `speedup_vs_python=X`, the default fast path (all cores) over the Python path. Each
path is timed `--repeats` times, interleaved so that load from other processes hits both alike;
the best time counts. Tokenizer construction is timed apart.
"""
import argparse
import gzip
import os
import pathlib
import time

REPO = pathlib.Path(__file__).resolve().parents[1]
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import common

import tokenization
from bert import graph_tokenizer


def default_vocab_file():
  return str(common.minilm_dir() / "vocab.txt")


def read_austen(data_dir):
  lines = []
  for path in sorted(pathlib.Path(data_dir).glob("*.txt.gz")):
    with gzip.open(path, "rt", encoding="utf-8") as f:
      lines.extend(f.read().splitlines())
  if not lines:
    raise FileNotFoundError(f"{data_dir}: no *.txt.gz files.")
  return lines


def timed(function, timings, name):
  """Runs `function`, appends its wall time to timings[name], returns its result."""
  start = time.perf_counter()
  result = function()
  timings.setdefault(name, []).append(time.perf_counter() - start)
  return result


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--vocab_file", default=None, help="default: MiniLM's bert-base-uncased")
  parser.add_argument("--do_lower_case", default="true", choices=["true", "false"])
  parser.add_argument("--data_dir", default=str(REPO / "tests" / "data" / "austen"))
  parser.add_argument("--repeats", type=int, default=3)
  args = parser.parse_args()

  lines = read_austen(args.data_dir)
  megabytes = sum(len(line.encode("utf-8")) for line in lines) / 1e6
  start = time.perf_counter()
  tokenizer = tokenization.FullTokenizer(args.vocab_file or default_vocab_file(),
                                         do_lower_case=args.do_lower_case == "true")
  tokenizer.tokenize_to_ids(lines[:100])  # Builds the C tokenizer's tables.
  setup_seconds = time.perf_counter() - start

  def python_path():
    return [tokenizer.convert_tokens_to_ids(tokenizer.tokenize(line)) for line in lines]

  in_graph = graph_tokenizer.for_tokenizer(tokenizer)

  def in_graph_path():
    return [row for start in range(0, len(lines), 4096)
            for row in in_graph(lines[start:start + 4096]).to_list()]

  paths = {
      "python (exact reference)": python_path,
      "in-graph (tensorflow-text)": in_graph_path,
      "fast C, 1 thread": lambda: tokenizer.tokenize_to_ids(lines, num_threads=1),
      f"fast C, {os.cpu_count()} threads": lambda: tokenizer.tokenize_to_ids(lines),
  }
  timings, results = {}, {}
  for _ in range(args.repeats):
    for name, function in paths.items():
      results[name] = timed(function, timings, name)

  reference = results["python (exact reference)"]
  for name, ids in results.items():
    if ids != reference:
      bad = next(i for i, (a, b) in enumerate(zip(ids, reference)) if a != b)
      raise SystemExit(f"MISMATCH: {name} differs from the Python path on line {bad}: "
                       f"{lines[bad]!r}")

  print(f"Austen corpus: {len(lines)} lines, {megabytes:.2f} MB, "
        f"{sum(len(ids) for ids in reference)} tokens; ids identical on every path.")
  print(f"Fast path setup (vocabulary, character tables): {setup_seconds:.2f} s")
  print(f"{'path':<28}{'best s':>10}{'MB/s':>10}{'speedup':>10}")
  python_seconds = min(timings["python (exact reference)"])
  for name in paths:
    seconds = min(timings[name])
    print(f"{name:<28}{seconds:>10.3f}{megabytes / seconds:>10.2f}"
          f"{python_seconds / seconds:>10.1f}")
  default_name = list(paths)[-1]
  print(f"speedup_vs_python={python_seconds / min(timings[default_name]):.1f} "
        f"ours_MB_per_s={megabytes / min(timings[default_name]):.2f} "
        f"peer_MB_per_s={megabytes / python_seconds:.2f}")


if __name__ == "__main__":
  main()
