"""Benchmark: one BERT-base pre-training step, ours (TensorFlow/Keras 3) vs Hugging Face (PyTorch).

BERT-base (configs/bert_base.json), seq 128, batch 8, 20 masked positions, fp32, one process,
this CPU. Both sides train: dropout 0.1 as configured (train mode), forward + backward + the
optimizer, with global-norm clipping to 1.0 on both sides.
  * ours: `training.Trainer`'s step function (the run_pretraining path) with our AdamWeightDecay
    (create_optimizer "adam"), once without XLA and once with --use_xla. The masked-LM head
    runs at the 20 masked positions only (Google's design).
  * Hugging Face: transformers `BertForPreTraining` (its default attention implementation)
    with torch.optim.AdamW, masked-LM labels -100 except at the masked positions; its head
    computes logits at every position (its design).
The sides run in turn (ABAB...) on the same random batch; the speed-up is the median over
rounds of HF time / our time. Model FLOP utilisation (MFU) counts our step's model FLOPs
analytically (bench/common.py) against the best fp32 GEMM rate TensorFlow reaches here.

Usage: .venv/bin/python bench/bench_pretraining.py [--rounds 6] [--threads N] [--no_xla]
Last line: `speedup_vs_hf_torch=X mfu=Y` (our faster configuration, named in the table).
Needs bench/requirements.txt (torch CPU, transformers); never a runtime dependency.
"""
import argparse
import os
import pathlib
import tempfile

REPO = pathlib.Path(__file__).resolve().parents[1]
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import common

BATCH, SEQ, PREDICTIONS = 8, 128, 20


def make_batch(config, seed=0):
  """A random pre-training batch as numpy arrays, in run_pretraining's feature names.

  No padding (every input_mask 1), 20 distinct masked positions per sequence, all weights 1:
  both sides then do exactly the same work.
  """
  import numpy as np
  rng = np.random.default_rng(seed)
  positions = np.sort(np.stack([rng.choice(np.arange(1, SEQ), PREDICTIONS, replace=False)
                                for _ in range(BATCH)]), axis=1).astype(np.int32)
  input_ids = rng.integers(1000, config.vocab_size, (BATCH, SEQ), dtype=np.int32)
  return {
      "input_ids": input_ids,
      "input_mask": np.ones((BATCH, SEQ), np.int32),
      "segment_ids": np.concatenate([np.zeros((BATCH, SEQ // 2), np.int32),
                                     np.ones((BATCH, SEQ - SEQ // 2), np.int32)], axis=1),
      "masked_lm_positions": positions,
      "masked_lm_ids": np.take_along_axis(input_ids, positions, axis=1),
      "masked_lm_weights": np.ones((BATCH, PREDICTIONS), np.float32),
      "next_sentence_labels": rng.integers(0, 2, (BATCH, 1), dtype=np.int32),
  }


def build_ours(config, batch, use_xla, model=None, optimizer=None):
  """Returns (run_one_step, model, optimizer): a Trainer step on a 1-micro-batch stack."""
  import tensorflow as tf

  import modeling
  import optimization
  import run_pretraining
  from bert import distributed
  from bert import training

  if model is None:
    model = modeling.BertPretrainingModel(config)
    optimizer = optimization.create_optimizer(1e-4, num_train_steps=100_000,
                                              num_warmup_steps=1000, optimizer_type="adam")
  loop_config = training.LoopConfig(output_dir=tempfile.mkdtemp(prefix="bench_pretraining_"),
                                    num_train_steps=1 << 30, use_xla=use_xla,
                                    micro_batch_size=BATCH, seq_length=SEQ)
  trainer = training.Trainer(model, optimizer, run_pretraining.pretraining_loss_fn,
                             distributed.SingleProcess(), loop_config)
  stacked = {k: tf.constant(v[None]) for k, v in batch.items()}

  def run_one_step():
    trainer._train_step(stacked)["loss"].numpy()

  return run_one_step, model, optimizer


def build_hf(config, batch):
  """Returns (run_one_step, transformers version) for BertForPreTraining + AdamW."""
  import numpy as np
  import torch
  import transformers

  # Google's "gelu" (ours: gelu_tanh) is Hugging Face's "gelu_new".
  hf_config = transformers.BertConfig(**{**config.to_hf_dict(), "hidden_act": "gelu_new"})
  torch.manual_seed(0)
  model = transformers.BertForPreTraining(hf_config)
  model.train()
  optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.01, eps=1e-6)
  labels = np.full((BATCH, SEQ), -100, np.int64)
  np.put_along_axis(labels, batch["masked_lm_positions"], batch["masked_lm_ids"], axis=1)
  inputs = {
      "input_ids": torch.from_numpy(batch["input_ids"].astype(np.int64)),
      "attention_mask": torch.from_numpy(batch["input_mask"].astype(np.int64)),
      "token_type_ids": torch.from_numpy(batch["segment_ids"].astype(np.int64)),
      "labels": torch.from_numpy(labels),
      "next_sentence_label": torch.from_numpy(
          batch["next_sentence_labels"][:, 0].astype(np.int64)),
  }

  def run_one_step():
    optimizer.zero_grad(set_to_none=True)
    loss = model(**inputs).loss
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    optimizer.step()
    loss.item()

  return run_one_step, transformers.__version__


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--rounds", type=int, default=6, help="ABAB rounds (one step per side)")
  parser.add_argument("--no_xla", action="store_true", help="skip our XLA configuration")
  common.add_model_arguments(parser)
  args = parser.parse_args()
  config = common.load_model_config(args)
  batch = make_batch(config)
  print(f"BERT {args.config}: batch {BATCH}, seq {SEQ}, {PREDICTIONS} masked positions, fp32, "
        f"dropout {config.hidden_dropout_prob}/{config.attention_probs_dropout_prob} (train "
        f"mode, both sides), {args.threads} threads; {common.load_report()}", flush=True)
  peak = common.print_gemm_peak()

  sides = {}
  sides["ours"], model, optimizer = build_ours(config, batch, use_xla=False)
  if not args.no_xla:
    sides["ours_xla"], _, _ = build_ours(config, batch, True, model, optimizer)
  hf_version = None
  if not args.no_hf:
    sides["hf_torch"], hf_version = build_hf(config, batch)
    print(f"transformers {hf_version}", flush=True)
  times, probe_flops = common.time_sides(sides, args.rounds)

  our_flops = common.bert_train_flops(config, BATCH, SEQ, PREDICTIONS)
  hf_flops = common.bert_train_flops(config, BATCH, SEQ, None)
  rows, results = common.summarize(
      times, lambda name: hf_flops if name == "hf_torch" else our_flops, peak, BATCH,
      probe_flops)
  print(common.format_table(
      ["side", "step_s(median)", "step_s(min)", "seq/s", "model_GFLOP", "GFLOP/s",
       "MFU(peak)", "MFU(round)", "speedup_vs_hf"], rows))
  print(f"MFU: our model FLOPs (MLM head at {PREDICTIONS} positions) / median step / GEMM "
        f"peak (measured once, first) or, MFU(round), the median over rounds of the step's "
        f"rate / the GEMM probe's rate in the same round (robust to load; mfu= uses it); "
        f"hf_torch's row counts its own FLOPs (MLM head at all {SEQ} positions).")
  best = common.best_of_ours(times, results)
  if best:
    print(f"speedup_vs_hf_torch={results[best][2]:.2f} "
          f"{common.throughput_keys(results, best, BATCH)} mfu={results[best][1]:.2f}")


if __name__ == "__main__":
  main()
