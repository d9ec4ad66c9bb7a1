"""Learns a WordPiece vocab.txt or a SentencePiece model from a sentence-per-line corpus.

Google's repository ships vocabularies but no way to make one; this is that missing step.
Input is the pre-training format (one sentence per line, blank lines between documents).

WordPiece: words are counted with Google's BasicTokenizer (tokenization.py), so the vocabulary
sees exactly the words FullTokenizer will look up, then tensorflow-text's WordPiece learner
(the algorithm behind its `bert_vocab_from_dataset`, run on our counts, no Apache Beam) picks
the pieces: it binary-searches a frequency threshold so the vocab lands within 5% of the size.

  python learn_vocab.py --input_file=corpus/*.txt --output_file=vocab.txt --vocab_size=30522

SentencePiece (`--model_type=sentencepiece`): trains a model whose pad/unk pieces are [PAD]
and [UNK] and whose other special tokens are user-defined symbols, so they stay single pieces
in raw text; use it with `--spm_model_file` in the other scripts.
"""

import collections
import pathlib

from absl import app
from absl import flags
from absl import logging

import tokenization
from bert import files

FLAGS = flags.FLAGS


def define_flags():
  """Defines the command-line flags; only when run as a script, so that importing this module
  (tests, notebooks) cannot clash with the flags of other scripts in the same process."""
  flags.DEFINE_string("input_file", None,
                      "Comma-separated list of input files or glob patterns (one sentence per "
                      "line, blank lines between documents).")
  flags.DEFINE_string("output_file", None,
                      "Where to write: the vocab.txt for WordPiece, or the model file "
                      "(<prefix>.model; <prefix>.vocab is written next to it) for SentencePiece.")
  flags.DEFINE_enum("model_type", "wordpiece", ["wordpiece", "sentencepiece"],
                    "What to learn.")
  flags.DEFINE_integer("vocab_size", 30522, "Target vocabulary size, special tokens included.")
  flags.DEFINE_bool("do_lower_case", True,
                    "Lower-case (and, for WordPiece, strip accents) as the tokenizer will.")
  flags.DEFINE_list("special_tokens", list(tokenization.SPECIAL_TOKENS),
                    "Special tokens, placed first in this order. Must include [PAD] and [UNK]; "
                    "[CLS], [SEP] and [MASK] are needed by the pre-training scripts.")
  flags.DEFINE_integer("max_sentences", 0,
                       "Use only the first this many non-blank lines (0: all of them).")
  flags.DEFINE_integer("max_token_length", 50, "WordPiece: longest piece, in characters.")
  flags.DEFINE_integer("min_frequency", 10,
                       "WordPiece: a piece seen fewer times is not learned (small corpora "
                       "need less to reach the vocab size).")
  flags.DEFINE_integer("max_unique_chars", 1000,
                       "WordPiece: alphabet size; words with rarer characters are not counted.")
  flags.DEFINE_enum("spm_model_type", "unigram", ["unigram", "bpe"],
                    "SentencePiece: segmentation algorithm.")
  flags.DEFINE_float("character_coverage", 0.9995,
                     "SentencePiece: share of characters the model must cover.")


def read_sentences(paths, max_sentences=0):
  """Yields the non-blank lines (str, stripped) of `paths`, at most `max_sentences` if > 0."""
  count = 0
  for path in paths:
    with open(path, encoding="utf-8") as reader:
      for line_number, line in enumerate(reader, start=1):
        if "\ufffd" in line:
          logging.warning("%s:%d: holds U+FFFD; was the file decoded from another encoding?",
                          path, line_number)
        line = line.strip()
        if not line:
          continue
        yield line
        count += 1
        if max_sentences and count >= max_sentences:
          return


def count_words(sentences, do_lower_case):
  """Counts the basic tokens (Google's BasicTokenizer) of `sentences` -> Counter {word: n}."""
  basic_tokenizer = tokenization.BasicTokenizer(do_lower_case=do_lower_case)
  counts = collections.Counter()
  for sentence in sentences:
    counts.update(basic_tokenizer.tokenize(sentence))
  return counts


def _check_special_tokens(special_tokens):
  missing = [token for token in ("[PAD]", "[UNK]") if token not in special_tokens]
  if missing:
    raise ValueError(f"--special_tokens={','.join(special_tokens)} lacks {missing}.")
  if len(set(special_tokens)) != len(special_tokens):
    raise ValueError(f"--special_tokens={','.join(special_tokens)} repeats a token.")


def learn_wordpiece_vocab(word_counts, vocab_size, special_tokens, min_frequency=10,
                          max_token_length=50, max_unique_chars=1000):
  """Returns the vocabulary (list of str; special tokens first, then single characters with
  their ## forms, then learned pieces) for `word_counts` ({word: count})."""
  from tensorflow_text.tools.wordpiece_vocab import wordpiece_tokenizer_learner_lib as learner
  _check_special_tokens(special_tokens)
  if vocab_size <= len(special_tokens):
    raise ValueError(f"--vocab_size={vocab_size} leaves no room next to "
                     f"{len(special_tokens)} special tokens.")
  if not word_counts:
    raise ValueError("The corpus holds no words.")
  vocab = learner.learn(
      dict(word_counts), vocab_size=vocab_size, reserved_tokens=list(special_tokens),
      lower_thresh=min_frequency, max_token_length=max_token_length,
      max_unique_chars=max_unique_chars,
      include_joiner_token=True, joiner="##")
  # The learner keeps reserved tokens first; drop repeats (a reserved token learned again).
  return list(dict.fromkeys(token for token in vocab if token.strip()))


def write_vocab(path, tokens):
  pathlib.Path(path).write_text("".join(token + "\n" for token in tokens), encoding="utf-8")


def learn_sentencepiece_model(sentences, output_file, vocab_size, special_tokens,
                              do_lower_case, model_type="unigram", character_coverage=0.9995):
  """Trains a sentencepiece model into `output_file` (<prefix>.model) and <prefix>.vocab."""
  import sentencepiece
  _check_special_tokens(special_tokens)
  if not str(output_file).endswith(".model"):
    raise ValueError(f"--output_file={output_file} must end in .model for SentencePiece.")
  # The same lower-casing as SentencePieceTokenizer(do_lower_case) applies at run time.
  prepare = tokenization.SentencePieceTokenizer.lower_case_keeping_special_tokens
  if do_lower_case:
    sentences = (prepare(sentence) for sentence in sentences)
  user_symbols = [t for t in special_tokens if t not in ("[PAD]", "[UNK]")]
  sentencepiece.SentencePieceTrainer.train(
      sentence_iterator=iter(sentences), model_prefix=str(output_file)[:-len(".model")],
      vocab_size=vocab_size, model_type=model_type, character_coverage=character_coverage,
      pad_id=special_tokens.index("[PAD]"), pad_piece="[PAD]",
      unk_id=special_tokens.index("[UNK]"), unk_piece="[UNK]", bos_id=-1, eos_id=-1,
      user_defined_symbols=user_symbols, minloglevel=2)


def main(_):
  paths = files.expand_input_files(FLAGS.input_file)
  logging.info("Learning a %s vocabulary of %d from %d file(s).", FLAGS.model_type,
               FLAGS.vocab_size, len(paths))
  sentences = read_sentences(paths, FLAGS.max_sentences)
  if FLAGS.model_type == "wordpiece":
    word_counts = count_words(sentences, FLAGS.do_lower_case)
    logging.info("%d distinct words, %d in all.", len(word_counts), sum(word_counts.values()))
    vocab = learn_wordpiece_vocab(word_counts, FLAGS.vocab_size, FLAGS.special_tokens,
                                  FLAGS.min_frequency, FLAGS.max_token_length,
                                  FLAGS.max_unique_chars)
    write_vocab(FLAGS.output_file, vocab)
    logging.info("Wrote %d tokens to %s.", len(vocab), FLAGS.output_file)
  else:
    learn_sentencepiece_model(sentences, FLAGS.output_file, FLAGS.vocab_size,
                              FLAGS.special_tokens, FLAGS.do_lower_case, FLAGS.spm_model_type,
                              FLAGS.character_coverage)
    logging.info("Wrote %s.", FLAGS.output_file)


if __name__ == "__main__":
  define_flags()
  flags.mark_flags_as_required(["input_file", "output_file"])
  app.run(main)
