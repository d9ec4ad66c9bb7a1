# The two commands of the README, and what they build on. Every target sets up what it needs.
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: setup demo test bench
setup:
	bash scripts/setup.sh

# The main job on the embedded sample corpus: pre-training data, 2-rank pre-training, features.
demo: setup
	bash scripts/demo.sh

test: setup
	bash scripts/install_test_tools.sh
	$(VENV)/bin/ruff check .
	$(PY) -m pytest

bench: setup
	bash bench/run_all.sh
