"""Keeps the README's flag tables equal to the scripts' absl flags.

The README holds one table per script between `<!-- flags: SCRIPT -->` and `<!-- /flags -->`.
  python scripts/flag_tables.py --write   # regenerate them in README.md
  python scripts/flag_tables.py           # exit 1 and show the script whose table is stale
Each table is made in a fresh process that imports the script and defines its flags, so flag
names, defaults and help strings come from the code itself.
"""
import pathlib
import re
import subprocess
import sys

REPO = pathlib.Path(__file__).resolve().parents[1]
README = REPO / "README.md"
_BLOCK = re.compile(r"(<!-- flags: (\S+) -->\n)(.*?)(<!-- /flags -->)", re.S)

# Run in a subprocess: prints the Markdown table of one script's flags.
_TABLE_PROGRAM = r"""
import importlib, sys
from absl import flags
name = sys.argv[1]
module = importlib.import_module(name)
if hasattr(module, "define_flags"):
    module.define_flags()
own = ("absl.", "tensorflow", "keras", "tensorboard")
rows = []
for module_name, module_flags in flags.FLAGS.flags_by_module_dict().items():
    if module_name.startswith(own) or "site-packages" in module_name:
        continue
    for flag in module_flags:
        default = ("" if flag.default is None else repr(flag.default)
                   if isinstance(flag.default, str) else str(flag.default))
        help_text = " ".join((flag.help or "").split()).replace("|", "\\|")
        rows.append((flag.name, default, help_text))
print("| flag | default | meaning |")
print("|---|---|---|")
for name_, default, help_text in sorted(set(rows)):
    print(f"| `--{name_}` | {'`' + default + '`' if default else ''} | {help_text} |")
"""


def table_for(script: str) -> str:
  module = script.removesuffix(".py")
  result = subprocess.run([sys.executable, "-c", _TABLE_PROGRAM, module], cwd=REPO,
                          capture_output=True, text=True, check=False,
                          env={"TF_CPP_MIN_LOG_LEVEL": "3", "PATH": "/usr/bin:/bin"})
  if result.returncode:
    raise RuntimeError(f"{script}: could not list its flags:\n{result.stderr}")
  return result.stdout


def render(text: str) -> str:
  return _BLOCK.sub(lambda m: m.group(1) + table_for(m.group(2)) + m.group(4), text)


def main(argv: list[str]) -> int:
  text = README.read_text()
  updated = render(text)
  if "--write" in argv:
    README.write_text(updated)
    return 0
  if updated != text:
    stale = [m.group(2) for m, n in zip(_BLOCK.finditer(text), _BLOCK.finditer(updated))
             if m.group(0) != n.group(0)]
    print(f"README.md flag tables are stale for: {', '.join(stale)}; "
          "run python scripts/flag_tables.py --write", file=sys.stderr)
    return 1
  return 0


if __name__ == "__main__":
  sys.exit(main(sys.argv[1:]))
