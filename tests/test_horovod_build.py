"""Horovod in .venv is built for TensorFlow with the Gloo and MPI controllers.

scripts/setup.sh builds Horovod 0.28.1 against TF 2.21 with Gloo, and with MPI too (it installs
Open MPI when run as root). `horovodrun --check-build` imports each framework extension, so it
fails to list TensorFlow when the build does not load against the installed TF.
"""
import re

import pretraining_helpers as h


def checked(output: str) -> set[str]:
  """The names `horovodrun --check-build` marks [X], e.g. {"TensorFlow", "Gloo", "MPI"}."""
  return {m.group(1).strip() for m in re.finditer(r"^\s*\[X\]\s*(\S.*?)\s*$", output, re.M)}


def section(output: str, title: str) -> str:
  """The lines under `title:` up to the next blank line."""
  match = re.search(rf"^{title}:\n(.*?)(?:\n\s*\n|\Z)", output, re.M | re.S)
  assert match, f"no {title!r} section in:\n{output}"
  return match.group(1)


def test_check_build_lists_tensorflow_gloo_and_mpi():
  run = h.run_process([h.VENV_BIN / "horovodrun", "--check-build"], timeout=300).check()
  output = run.output.replace("\r", "")
  assert re.search(r"Horovod v0\.28\.1", output), output
  assert "TensorFlow" in checked(section(output, "Available Frameworks"))
  assert {"Gloo", "MPI"} <= checked(section(output, "Available Controllers"))
  assert {"Gloo", "MPI"} <= checked(section(output, "Available Tensor Operations"))
