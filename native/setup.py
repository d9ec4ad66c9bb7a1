"""Builds the C extensions:

* _wordpiece: tokenization.FullTokenizer's batch path (without it, Google's Python algorithm
  runs instead, ~50x slower, with a warning);
* _instances and _tfrecord: pre-training instance layout, masking and TFRecord writing for
  create_pretraining_data.py and run_pretraining's dynamic masking (required there);
* _jsonl: the float text of extract_features.py's JSONL output (required there).

scripts/setup.sh runs `pip install --no-build-isolation ./native`.
"""
from setuptools import Extension
from setuptools import setup

setup(
    name="bert-wordpiece-native",
    version="1.0.0",
    description=("Fast paths of the BERT TF2 port: WordPiece tokenization, TFRecord and JSONL "
                 "writing"),
    ext_modules=[Extension("_wordpiece", ["wordpiece.c"], extra_compile_args=["-O3"]),
                 Extension("_instances", ["instances.c"], extra_compile_args=["-O3"]),
                 Extension("_tfrecord", ["tfrecord.c"], extra_compile_args=["-O3"]),
                 Extension("_jsonl", ["jsonl.c"], extra_compile_args=["-O3"])],
)
