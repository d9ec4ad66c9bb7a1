"""Benchmark: contextual embeddings of real sentences with the real all-MiniLM-L6-v2, ours vs
Hugging Face (PyTorch), same run.

--num_sentences sentences (5,000 by default) drawn at random from the six Austen novels
(bench/austen_corpus.py), one per line in the order drawn, natural lengths, max_seq_length
128, batch 32; both sides return the last four Transformer layers (Google's --layers default
-1,-2,-3,-4) of every token, [CLS] and [SEP] included:
  * ours: extract_features' path: feature_extraction's reading and tokenisation, then
    extract_features.window_outputs, which runs each window of WINDOW_BATCHES batches sorted
    by length, each batch cut to a bucket length (bert/length_buckets.py), outputs in input
    order;
  * Hugging Face: the fast tokenizer and BertModel(output_hidden_states=True) under
    inference_mode, batches in file order, each padded to its longest (padding=True).
The sides alternate window by window (ABAB...); each side's time is its tokenisation and
model, warm-up included. Every token's values of every layer must agree within --tolerance.
Writing Google's JSONL (extract_features' JsonlFeatureWriter, rounding included) is timed
apart, on our outputs, and reported in MB/s, next to json.dumps of the nested dicts (the way
Google's script writes it) on the first window, whose lines must be the same bytes.

Usage: .venv/bin/python bench/bench_features.py [--num_sentences 5000] [--use_xla]
Last line: `features_speedup_vs_hf=X ...`.
Needs bench/requirements.txt (torch CPU, transformers); never a runtime dependency.
"""
import argparse
import json
import os
import pathlib
import random
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import austen_corpus
import common

LAYERS = (-1, -2, -3, -4)
MAX_SEQ_LENGTH = 128
BATCH = 32


def write_sentences(path: pathlib.Path, count: int, seed: int = 0) -> list[str]:
  """`count` sentences drawn at random from all six novels, one per line; returns them."""
  sentences = [s for novel in austen_corpus.novel_sentences().values() for s in novel]
  if len(sentences) < count:
    raise ValueError(f"the novels have {len(sentences)} sentences, fewer than {count}")
  chosen = random.Random(seed).sample(sentences, count)
  path.write_text("".join(s + "\n" for s in chosen), encoding="utf-8")
  return chosen


def our_windows(input_file, tokenizer, window_size):
  """extract_features' input: yields (window's features, its model inputs), tokenising a
  window at a time."""
  from bert import feature_extraction
  examples = feature_extraction.read_examples(str(input_file))
  features = feature_extraction.convert_examples_to_features(examples, MAX_SEQ_LENGTH,
                                                             tokenizer)
  for window, arrays in feature_extraction.batch_features(features, window_size):
    yield window, {"input_ids": arrays["input_ids"], "input_mask": arrays["input_mask"],
                   "token_type_ids": arrays["input_type_ids"]}


def json_dumps_line(feature, outputs) -> str:
  """Google's way to write a line: json.dumps of nested dicts of round(float(x), 6).

  outputs: float32 [len(LAYERS), tokens, hidden], the feature's layer outputs."""
  return json.dumps({"linex_index": feature.unique_id, "features": [
      {"token": token,
       "layers": [{"index": index, "values": [round(float(x), 6) for x in layer[position]]}
                  for index, layer in zip(LAYERS, outputs)]}
      for position, token in enumerate(feature.tokens)]})


def build_peer():
  """Returns run_batch(texts) -> (token ids per text, float32 [layers, batch, longest, H])."""
  import numpy as np
  import torch
  import transformers
  tokenizer = transformers.AutoTokenizer.from_pretrained(str(common.minilm_dir()))
  model = transformers.BertModel.from_pretrained(str(common.minilm_dir())).eval()

  def run_batch(texts):
    encoded = tokenizer(texts, padding=True, truncation=True, max_length=MAX_SEQ_LENGTH,
                        return_tensors="pt")
    with torch.inference_mode():
      hidden_states = model(**encoded, output_hidden_states=True).hidden_states
      layers = np.stack([hidden_states[i].numpy() for i in LAYERS])
    ids = [row[mask.bool()].tolist() for row, mask in zip(encoded["input_ids"],
                                                          encoded["attention_mask"])]
    return ids, layers

  return run_batch, transformers.__version__


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--num_sentences", type=int, default=5000)
  parser.add_argument("--use_xla", action="store_true", help="our model XLA-compiled")
  parser.add_argument("--tolerance", type=float, default=1e-4)
  parser.add_argument("--threads", type=int, default=common.default_num_threads())
  args = parser.parse_args()
  common.configure_threads(args.threads)
  import numpy as np

  sys.path.insert(0, str(common.REPO))  # extract_features is a script, not an installed module
  import extract_features
  import modeling
  import tokenization
  from bert import checkpoints
  from bert import feature_extraction
  from bert import length_buckets

  with tempfile.TemporaryDirectory() as tmp:
    tmp = pathlib.Path(tmp)
    input_file = tmp / "sentences.txt"
    sentences = write_sentences(input_file, args.num_sentences)
    config = modeling.BertConfig.from_json_file(str(common.minilm_dir() / "config.json"))
    model = modeling.BertModel(config)
    report = checkpoints.init_from_checkpoint(model, str(common.minilm_dir()))
    if report.missing:
      raise SystemExit(f"MiniLM did not initialise the encoder:\n{report.summary()}")
    tokenizer = tokenization.create_tokenizer(str(common.minilm_dir() / "vocab.txt"), None, True)
    outputs_fn = extract_features.layer_outputs_fn(model, list(LAYERS), args.use_xla)
    peer_batch, hf_version = build_peer()
    print(f"MiniLM-L6-H384 features: {len(sentences)} Austen sentences, layers {LAYERS}, "
          f"batch {BATCH}, max_seq_length {MAX_SEQ_LENGTH}, windows of "
          f"{extract_features.WINDOW_BATCHES} batches{', XLA' if args.use_xla else ''}; "
          f"transformers {hf_version}; {args.threads} threads; {common.load_report()}",
          flush=True)

    seconds = {"ours": 0.0, "hf_torch": 0.0}
    tokens = {"ours": 0, "hf_torch": 0}  # positions run through the model, padding included
    real_tokens, max_difference, id_mismatches = 0, 0.0, 0
    write_seconds = 0.0
    first_window = None  # (features, our outputs) of the first window, for json.dumps
    windows = our_windows(input_file, tokenizer, BATCH * extract_features.WINDOW_BATCHES)
    with feature_extraction.JsonlFeatureWriter(str(tmp / "features.jsonl"),
                                               list(LAYERS)) as writer:
      first = 0
      while True:
        start = time.perf_counter()
        item = next(windows, None)
        if item is None:
          break
        window, inputs = item
        ours = extract_features.window_outputs(outputs_fn, window, inputs, BATCH,
                                               pad_to_max_length=False)
        seconds["ours"] += time.perf_counter() - start
        lengths = length_buckets.sequence_lengths(inputs["input_mask"])
        tokens["ours"] += sum(
            len(indices) * length for indices, length in length_buckets.prediction_batches(
                lengths, BATCH, MAX_SEQ_LENGTH, pad_to_max_length=False))
        real_tokens += int(lengths.sum())

        texts = sentences[first:first + len(window)]
        first += len(window)
        for offset in range(0, len(texts), BATCH):
          start = time.perf_counter()
          ids, layers = peer_batch(texts[offset:offset + BATCH])
          seconds["hf_torch"] += time.perf_counter() - start
          tokens["hf_torch"] += layers.shape[1] * layers.shape[2]
          for row, token_ids in enumerate(ids):
            feature = window[offset + row]
            if token_ids != list(feature.input_ids[:len(feature.tokens)]):
              id_mismatches += 1
              continue
            ours_values = ours[offset + row]
            difference = np.abs(ours_values - layers[:, row, :ours_values.shape[1]]).max()
            max_difference = max(max_difference, float(difference))

        start = time.perf_counter()
        for offset in range(0, len(window), BATCH):
          writer.write_batch(window[offset:offset + BATCH],
                             extract_features.stack_padded(ours[offset:offset + BATCH]))
        write_seconds += time.perf_counter() - start
        if first_window is None:
          first_window = (window, ours)
      written_mb = writer.bytes_written / 1e6
    window, ours = first_window
    start = time.perf_counter()
    reference_lines = [json_dumps_line(f, o) + "\n" for f, o in zip(window, ours)]
    json_dumps_seconds = time.perf_counter() - start
    with open(tmp / "features.jsonl", encoding="utf-8") as f:
      written_lines = [f.readline() for _ in window]
    if written_lines != reference_lines:
      bad = next(i for i, (a, b) in enumerate(zip(written_lines, reference_lines)) if a != b)
      raise SystemExit(f"JSONL line {bad} differs from json.dumps of Google's dicts")
    json_dumps_rate = sum(len(line) for line in reference_lines) / 1e6 / json_dumps_seconds
  if first != len(sentences):
    raise SystemExit(f"ours produced {first} examples for {len(sentences)} lines")

  rows = [[side, f"{seconds[side]:.1f}", f"{len(sentences) / seconds[side]:.1f}",
           f"{tokens[side]}", f"{100 * (1 - real_tokens / tokens[side]):.1f}%"]
          for side in seconds]
  print(common.format_table(["side", "seconds", "sentences/s", "positions_run", "padding"],
                            rows))
  print(f"{real_tokens} real tokens; same token ids on {len(sentences) - id_mismatches} of "
        f"{len(sentences)} sentences; largest |ours - hf| over their values: "
        f"{max_difference:.2e} (tolerance {args.tolerance:g})")
  jsonl_rate = written_mb / write_seconds
  print(f"JSONL: {written_mb:.0f} MB of Google's format in {write_seconds:.1f} s = "
        f"{jsonl_rate:.0f} MB/s (rounding, formatting and writing); json.dumps of the nested "
        f"dicts, the same bytes on the first {len(window)} lines: {json_dumps_rate:.1f} MB/s")
  speedup = seconds["hf_torch"] / seconds["ours"]
  agree = id_mismatches == 0 and max_difference <= args.tolerance
  print(f"features_speedup_vs_hf={speedup:.2f} "
        f"ours_sentences_per_s={len(sentences) / seconds['ours']:.1f} "
        f"peer_sentences_per_s={len(sentences) / seconds['hf_torch']:.1f} "
        f"jsonl_mb_per_s={jsonl_rate:.0f} json_dumps_mb_per_s={json_dumps_rate:.1f} "
        f"max_abs_difference={max_difference:.1e} "
        f"values_agree={'yes' if agree else 'NO'}")
  if not agree:
    raise SystemExit(1)


if __name__ == "__main__":
  main()
