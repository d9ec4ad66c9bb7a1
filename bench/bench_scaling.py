"""Scaling figures: a 2-rank Horovod run against 1 rank on this machine, and a paper projection
of 8-GPU scaling efficiency for BERT-base.

Measured (CPU, this machine): BERT-Mini (configs/bert_mini.json), seq 128, batch 8 per rank,
20 masked positions, fp32, one TensorFlow compute thread per rank (so 1 rank uses one core and
2 ranks two: the ranks do not share cores). Each rank runs the run_pretraining step (forward,
backward, `distributed.HorovodWorld.allreduce_gradients` = one grouped all-reduce of every
gradient, AdamWeightDecay) on a fixed synthetic batch, under `horovodrun -np N`.
  * sequences/s per rank = batch / median step time;
  * all-reduce time per step: our own timer around the same grouped all-reduce of tensors of
    the gradients' shapes, called alone (median of calls, all ranks in step);
  * bus bandwidth = 2(n-1)/n x gradient bytes / all-reduce time (the ring all-reduce moves
    that many bytes through each rank's link: NCCL's "busbw").
  * scaling_efficiency_2rank = sequences/s per rank at 2 ranks / at 1 rank.

Projection (on paper, for 8 GPUs of one host training BERT-base, seq 128, batch 64 per GPU):
  efficiency = t_compute / (t_compute + t_allreduce), because our step all-reduces once after
  the whole backward pass (no overlap of communication with compute: a lower bound);
  t_allreduce = 2(n-1)/n x bytes / bus bandwidth + 2(n-1) x per-hop latency, ring all-reduce;
  bytes = BERT-base's parameters x 2 (fp16 gradients, --fp16_allreduce; x 4 without);
  t_compute = BERT-base training FLOPs per step (bench/common.py's analytical count)
    / (GPU peak x MFU). Assumptions, printed with the result: A100 dense fp16 peak
    312 TFLOP/s at 40% MFU; NVLink (NVSwitch) bus bandwidth 230 GB/s, PCIe 4.0 x16 through
    the host 20 GB/s, per-hop latency 10 us; and, from this machine, the measured bus bandwidth
    (8 ranks on a link as fast as this machine's measured all-reduce).

Usage: .venv/bin/python bench/bench_scaling.py [--steps 8] [--model bert_mini]
Last line: `scaling_efficiency_2rank=X allreduce_ms_per_step=Y projected_8gpu_efficiency=Z
projected_8gpu_efficiency_pcie=W` (Z: NVLink assumption).
"""
import argparse
import json
import os
import pathlib
import shutil
import subprocess
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
REPO = pathlib.Path(__file__).resolve().parents[1]

SEQ, BATCH, PREDICTIONS = 128, 8, 20
RESULT_PREFIX = "bench_scaling_result "

# Paper assumptions for the projection (see the module docstring).
GPU_PEAK_FLOPS = 312e12         # A100 dense fp16/bf16 tensor-core peak
ASSUMED_MFU = 0.40              # model FLOP utilisation of a well-tuned BERT step
NVLINK_BUS_BYTES_PER_S = 230e9  # NCCL all-reduce bus bandwidth, 8 GPUs on NVSwitch
PCIE_BUS_BYTES_PER_S = 20e9     # PCIe 4.0 x16, through the host
HOP_LATENCY_S = 10e-6
PROJECTION_GPUS, PROJECTION_BATCH, GRADIENT_BYTES_PER_PARAM = 8, 64, 2


# ---------------------------------------------------------------------- one rank

def synthetic_batch(config, rng):
  """A fixed pre-training batch: {"input_ids": int32 [B, S], ..., "masked_lm_weights": [B, P]}."""
  import numpy as np
  ids = rng.integers(1000, config.vocab_size, size=(BATCH, SEQ), dtype=np.int32)
  positions = np.sort(np.stack([rng.choice(np.arange(1, SEQ), PREDICTIONS, replace=False)
                                for _ in range(BATCH)]), axis=1).astype(np.int32)
  return {"input_ids": ids, "input_mask": np.ones_like(ids), "segment_ids": np.zeros_like(ids),
          "masked_lm_positions": positions,
          "masked_lm_ids": np.take_along_axis(ids, positions, axis=1),
          "masked_lm_weights": np.ones((BATCH, PREDICTIONS), np.float32),
          "next_sentence_labels": rng.integers(0, 2, size=(BATCH, 1), dtype=np.int32)}


def worker(model_name: str, steps: int) -> None:
  """Runs under horovodrun: times the training step and the gradient all-reduce alone."""
  import common
  import numpy as np
  import tensorflow as tf

  import modeling
  import optimization
  from bert import distributed

  tf.config.threading.set_intra_op_parallelism_threads(1)
  tf.config.threading.set_inter_op_parallelism_threads(1)
  world = distributed.make_world(use_horovod=True)
  config = modeling.BertConfig.from_json_file(str(REPO / "configs" / f"{model_name}.json"))
  model = modeling.BertPretrainingModel(config)
  variables = list(model.trainable_variables)
  optimizer = optimization.create_optimizer(1e-4, 1000, 100)
  optimizer.build(variables)
  features = {k: tf.constant(v) for k, v in synthetic_batch(
      config, np.random.default_rng(world.rank)).items()}

  @tf.function
  def train_step():
    with tf.GradientTape() as tape:
      loss = modeling.pretraining_losses(model(features, training=True), features)["loss"]
    grads = world.allreduce_gradients(tape.gradient(loss, variables))
    optimizer.apply(grads, variables)
    return loss

  gradients = [tf.ones(v.shape, tf.float32) for v in variables]

  @tf.function
  def allreduce_only():
    return world.allreduce_gradients(gradients)

  def timed(fn, count):
    return common.median_seconds(fn, count, before=world.barrier)

  timed(train_step, 2)  # trace and warm up
  step_seconds = timed(train_step, steps)
  timed(allreduce_only, 2)
  allreduce_seconds = timed(allreduce_only, max(steps, 10))
  step_seconds = world.average_scalars({"s": step_seconds})["s"]
  allreduce_seconds = world.average_scalars({"s": allreduce_seconds})["s"]
  if world.is_chief:
    params = sum(int(np.prod(v.shape)) for v in variables)
    print(RESULT_PREFIX + json.dumps({
        "ranks": world.size, "params": params, "step_seconds": step_seconds,
        "allreduce_seconds": allreduce_seconds}), flush=True)
  world.barrier()


# ------------------------------------------------------------------------ parent

def run_ranks(num_ranks: int, model_name: str, steps: int) -> dict:
  horovodrun = shutil.which("horovodrun", path=os.path.dirname(sys.executable)) or shutil.which(
      "horovodrun")
  if horovodrun is None:
    sys.exit("bench_scaling.py needs Horovod: run scripts/setup.sh")
  command = [horovodrun, "-np", str(num_ranks), "-H", f"localhost:{num_ranks}",
             sys.executable, str(pathlib.Path(__file__).resolve()), "--worker",
             "--model", model_name, "--steps", str(steps)]
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", TF_NUM_INTRAOP_THREADS="1",
             TF_NUM_INTEROP_THREADS="1", OMP_NUM_THREADS="1")
  result = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True,
                          check=False)
  for line in result.stdout.splitlines():
    if RESULT_PREFIX in line:
      # raw_decode: a launcher may print more on the same line after the JSON.
      return json.JSONDecoder().raw_decode(line.split(RESULT_PREFIX, 1)[1])[0]
  sys.exit(f"{' '.join(command)} failed (exit {result.returncode}):\n"
           f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}")


def ring_allreduce_seconds(num_ranks: int, num_bytes: float, bus_bytes_per_s: float) -> float:
  """Ring all-reduce: 2(n-1)/n x bytes through each link, 2(n-1) latency-bound hops."""
  return (2 * (num_ranks - 1) / num_ranks * num_bytes / bus_bytes_per_s
          + 2 * (num_ranks - 1) * HOP_LATENCY_S)


def projection(measured_bus_bytes_per_s: float) -> dict:
  """8-GPU BERT-base efficiency on paper for each link: {name: (bus B/s, t_comm, eff)}."""
  import common

  import modeling
  config = modeling.BertConfig.from_json_file(str(REPO / "configs" / "bert_base.json"))
  flops = common.bert_train_flops(config, PROJECTION_BATCH, SEQ, PREDICTIONS)
  compute_seconds = flops / (GPU_PEAK_FLOPS * ASSUMED_MFU)
  # BERT-base with its pre-training heads (configs/README.md).
  gradient_bytes = 110_106_428 * GRADIENT_BYTES_PER_PARAM
  links = {"nvlink": NVLINK_BUS_BYTES_PER_S, "pcie": PCIE_BUS_BYTES_PER_S,
           "measured_here": measured_bus_bytes_per_s}
  rows = {}
  for name, bandwidth in links.items():
    comm = ring_allreduce_seconds(PROJECTION_GPUS, gradient_bytes, bandwidth)
    rows[name] = (bandwidth, comm, compute_seconds / (compute_seconds + comm))
  return {"compute_seconds": compute_seconds, "flops": flops,
          "gradient_bytes": gradient_bytes, "links": rows}


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
  parser.add_argument("--model", default="bert_mini", help="configs/NAME.json to measure")
  parser.add_argument("--steps", type=int, default=8, help="timed steps per run")
  parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
  args = parser.parse_args()
  if args.worker:
    worker(args.model, args.steps)
    return

  import common
  print(f"{args.model}, seq {SEQ}, batch {BATCH} per rank, fp32, 1 compute thread per rank; "
        f"{common.load_report()}", flush=True)
  one = run_ranks(1, args.model, args.steps)
  two = run_ranks(2, args.model, args.steps)
  per_rank = {r["ranks"]: BATCH / r["step_seconds"] for r in (one, two)}
  gradient_bytes = two["params"] * 4
  bus_bytes_per_s = 2 * (2 - 1) / 2 * gradient_bytes / two["allreduce_seconds"]
  efficiency = per_rank[2] / per_rank[1]
  rows = [[f"{r['ranks']}", f"{r['step_seconds'] * 1e3:.1f}", f"{per_rank[r['ranks']]:.2f}",
           f"{r['allreduce_seconds'] * 1e3:.2f}"] for r in (one, two)]
  print(common.format_table(["ranks", "step ms", "seq/s per rank", "all-reduce ms/step"],
                            rows))
  print(f"gradients: {two['params']:,} fp32 = {gradient_bytes / 1e6:.1f} MB per step; "
        f"2-rank all-reduce bus bandwidth {bus_bytes_per_s / 1e9:.2f} GB/s; "
        f"scaling efficiency at 2 ranks {efficiency:.2f}")

  paper = projection(bus_bytes_per_s)
  print(f"\nProjection, 8 GPUs, BERT-base seq {SEQ} batch {PROJECTION_BATCH}/GPU: "
        f"{paper['flops'] / 1e12:.2f} TFLOP per step / ({GPU_PEAK_FLOPS / 1e12:.0f} TFLOP/s "
        f"x MFU {ASSUMED_MFU}) = {paper['compute_seconds'] * 1e3:.1f} ms compute; "
        f"{paper['gradient_bytes'] / 1e6:.0f} MB fp16 gradients, ring all-reduce "
        f"2(n-1)/n x bytes / bus bandwidth + 2(n-1) x {HOP_LATENCY_S * 1e6:.0f} us, "
        "no overlap with the backward pass")
  print(common.format_table(
      ["link", "bus GB/s", "all-reduce ms", "efficiency"],
      [[name, f"{bw / 1e9:.2f}", f"{comm * 1e3:.2f}", f"{eff:.3f}"]
       for name, (bw, comm, eff) in paper["links"].items()]))
  links = paper["links"]
  print(f"scaling_efficiency_2rank={efficiency:.2f} "
        f"allreduce_ms_per_step={two['allreduce_seconds'] * 1e3:.2f} "
        f"projected_8gpu_efficiency={links['nvlink'][2]:.3f} "
        f"projected_8gpu_efficiency_pcie={links['pcie'][2]:.3f}")


if __name__ == "__main__":
  main()
