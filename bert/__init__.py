"""The library behind the top-level scripts: one module per concept, no flags read here.

The scripts (run_*.py, create_pretraining_data.py, extract_features.py, ...) parse absl flags
and call these modules with explicit arguments; tokenization.py, modeling.py and
optimization.py stay at the top level under Google's names. docs/DEVELOPING.md has the map.
"""
