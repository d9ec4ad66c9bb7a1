"""The one benchmark table: reads each benchmark's log, takes its last `key=value` line, prints
Markdown with the date and the machine (the README carries the latest one).

Keys of a last line, by convention:
  [<what>_]speedup_vs_<peer>=R   the ratio column (R > 1: ours is faster), the peer named
                             below;
  ours_<metric>=X, peer_<metric>=Y   the ours and peer columns (several: one per metric;
                             "_per_s" in a metric reads "/s");
  mfu=U, *_gflops=G          the physical-limit column (model FLOP utilisation against the
                             measured matmul rate, measured rates);
  anything else              the notes column (e.g. peak_rss_mb, scaling figures).

Usage: python bench/summary.py [--gemm] NAME=LOG [NAME=LOG ...]
  --gemm  measure TensorFlow's best fp32 matmul GFLOP/s here (bench/common.py) for the header.
"""
import argparse
import datetime
import os
import platform
import re
import sys

PEERS = {
    "python": "Google's tokenizer, pure Python (same ids)",
    "reference": "Google's create_pretraining_data algorithm, plain Python",
    "hf_torch": "Hugging Face transformers on PyTorch (CPU)",
    "hf": "Hugging Face transformers on PyTorch (CPU)",
}
_KEY_VALUE_LINE = re.compile(r"^\s*[A-Za-z0-9_]+=\S+(\s+[A-Za-z0-9_]+=\S+)*\s*$")


def last_key_values(text: str) -> dict[str, str]:
  """The last line of `text` made only of key=value pairs, as a dict ({} when none)."""
  for line in reversed(text.splitlines()):
    if _KEY_VALUE_LINE.match(line):
      return dict(pair.split("=", 1) for pair in line.split())
  return {}


def table_row(name: str, values: dict[str, str]) -> list[str]:
  """[benchmark, peer, ours, peer value, ratio, limit, notes] for one benchmark."""
  if not values:
    return [name, "", "", "", "failed: no key=value line, see its log", "", ""]
  peer = ratio = ""
  ours, theirs, limit, notes = [], [], [], []
  for key, value in values.items():
    if "speedup_vs_" in key:
      suffix = key.split("speedup_vs_", 1)[1]
      peer, ratio = PEERS.get(suffix, suffix), f"{value}x"
    elif key.startswith(("ours_", "peer_")):
      side, metric = key.split("_", 1)
      (ours if side == "ours" else theirs).append(f"{value} {metric.replace('_per_s', '/s')}")
    elif key == "mfu" or key.endswith("_gflops"):
      limit.append(f"{key}={value}")
    else:
      notes.append(f"{key}={value}")
  return [name, peer, ", ".join(ours), ", ".join(theirs), ratio, " ".join(limit),
          " ".join(notes)]


def machine_line(gemm_gflops: float | None) -> str:
  cpu = platform.processor() or platform.machine()
  try:
    with open("/proc/cpuinfo") as f:
      cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
  except (OSError, StopIteration):
    pass
  parts = [datetime.date.today().isoformat(), cpu, f"{len(os.sched_getaffinity(0))} cores",
           f"load average {os.getloadavg()[0]:.2f}"]
  if gemm_gflops is not None:
    parts.append(f"fp32 matmul {gemm_gflops:.0f} GFLOP/s measured (TensorFlow)")
  return ", ".join(parts)


def markdown(rows: list[list[str]], machine: str) -> str:
  header = ["benchmark", "peer", "ours", "peer value", "ours vs peer", "physical limit",
            "notes"]
  lines = [f"Benchmarks, {machine}. Ratios hold for this machine only.", "",
           "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
  lines += ["| " + " | ".join(row) + " |" for row in rows]
  return "\n".join(lines)


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
  parser.add_argument("--gemm", action="store_true", help="measure the matmul GFLOP/s here")
  parser.add_argument("logs", nargs="+", metavar="NAME=LOG")
  args = parser.parse_args(argv)
  rows, failed = [], False
  for item in args.logs:
    name, _, path = item.partition("=")
    if not path:
      parser.error(f"expected NAME=LOG, got {item!r}")
    try:
      with open(path, errors="replace") as f:
        values = last_key_values(f.read())
    except FileNotFoundError:
      values = {}
    failed |= not values
    rows.append(table_row(name, values))
  gemm = None
  if args.gemm:
    import common  # bench/ is this script's folder
    gemm, _ = common.measure_matmul_peak_gflops()
  print(markdown(rows, machine_line(gemm)))
  return 1 if failed else 0


if __name__ == "__main__":
  sys.exit(main())
