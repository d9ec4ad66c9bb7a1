"""Benchmark: BERT-base inference, ours (TensorFlow/Keras 3) vs Hugging Face (PyTorch), same run.

BERT-base (configs/bert_base.json), seq 128, batch 8, fp32, one process, this CPU. Both sides
return the sequence output [8, 128, 768] and the pooled output [8, 768]:
  * ours: `modeling.BertModel` called with training=False inside a tf.function (the way
    extract_features runs it), without and with XLA (jit_compile);
  * Hugging Face: transformers `BertModel` (its default attention implementation) in eval
    mode under torch.inference_mode().
The sides run in turn (ABAB...) on the same random batch (no padding); the speed-up is the
median over rounds of HF time / our time. MFU counts the forward's model FLOPs analytically
(bench/common.py) against the best fp32 GEMM rate TensorFlow reaches here.

Usage: .venv/bin/python bench/bench_inference.py [--rounds 10] [--threads N]
Last line: `speedup_vs_hf_torch=X` (our faster configuration, named in the table).
Needs bench/requirements.txt (torch CPU, transformers); never a runtime dependency.
"""
import argparse
import os
import pathlib

REPO = pathlib.Path(__file__).resolve().parents[1]
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import common

BATCH, SEQ = 8, 128


def make_batch(config, seed=0):
  """Random ids, all-ones mask, two segments: int32 numpy arrays [BATCH, SEQ]."""
  import numpy as np
  rng = np.random.default_rng(seed)
  return {
      "input_ids": rng.integers(1000, config.vocab_size, (BATCH, SEQ), dtype=np.int32),
      "input_mask": np.ones((BATCH, SEQ), np.int32),
      "token_type_ids": np.concatenate([np.zeros((BATCH, SEQ // 2), np.int32),
                                        np.ones((BATCH, SEQ - SEQ // 2), np.int32)], axis=1),
  }


def build_ours(model, batch, use_xla):
  """Returns run_one_batch(): our encoder's sequence and pooled outputs, read to the host."""
  import tensorflow as tf

  inputs = {k: tf.constant(v) for k, v in batch.items()}

  @tf.function(jit_compile=use_xla)
  def encode(inputs):
    outputs = model(inputs, training=False)
    return outputs["sequence_output"], outputs["pooled_output"]

  def run_one_batch():
    sequence_output, pooled_output = encode(inputs)
    sequence_output.numpy()
    pooled_output.numpy()

  return run_one_batch


def build_hf(config, batch):
  """Returns (run_one_batch, transformers version) for BertModel under inference_mode."""
  import torch
  import transformers

  hf_config = transformers.BertConfig(**{**config.to_hf_dict(), "hidden_act": "gelu_new"})
  torch.manual_seed(0)
  model = transformers.BertModel(hf_config, add_pooling_layer=True).eval()
  inputs = {"input_ids": torch.from_numpy(batch["input_ids"]).long(),
            "attention_mask": torch.from_numpy(batch["input_mask"]).long(),
            "token_type_ids": torch.from_numpy(batch["token_type_ids"]).long()}

  def run_one_batch():
    with torch.inference_mode():
      outputs = model(**inputs)
      outputs.last_hidden_state.numpy()
      outputs.pooler_output.numpy()

  return run_one_batch, transformers.__version__


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--rounds", type=int, default=10, help="ABAB rounds")
  parser.add_argument("--steps_per_round", type=int, default=2,
                      help="batches per side per round")
  common.add_model_arguments(parser)
  args = parser.parse_args()
  config = common.load_model_config(args)
  import modeling
  batch = make_batch(config)
  print(f"BERT {args.config}: inference, batch {BATCH}, seq {SEQ}, fp32, sequence + pooled "
        f"outputs, {args.threads} threads; {common.load_report()}", flush=True)
  peak = common.print_gemm_peak()

  model = modeling.BertModel(config)
  sides = {"ours": build_ours(model, batch, use_xla=False),
           "ours_xla": build_ours(model, batch, use_xla=True)}
  if not args.no_hf:
    sides["hf_torch"], hf_version = build_hf(config, batch)
    print(f"transformers {hf_version}", flush=True)
  times, probe_flops = common.time_sides(sides, args.rounds, args.steps_per_round)

  flops = common.bert_forward_flops(config, BATCH, SEQ, with_heads=False)
  rows, results = common.summarize(times, lambda name: flops, peak, BATCH, probe_flops)
  print(common.format_table(
      ["side", "batch_s(median)", "batch_s(min)", "seq/s", "model_GFLOP", "GFLOP/s",
       "MFU(peak)", "MFU(round)", "speedup_vs_hf"], rows))
  print("MFU(peak): against the GEMM peak measured once, first; MFU(round): median over "
        "rounds of the batch's rate / the GEMM probe's rate in the same round (robust to load).")
  best = common.best_of_ours(times, results)
  if best:
    print(f"speedup_vs_hf_torch={results[best][2]:.2f} "
          f"{common.throughput_keys(results, best, BATCH)}")


if __name__ == "__main__":
  main()
