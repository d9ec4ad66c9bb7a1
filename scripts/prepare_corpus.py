"""Turns raw books into BERT's pre-training input format.

Output format (what create_pretraining_data.py reads): one sentence per line, a blank
line between documents. Each chapter becomes a document, so that the next-sentence
task pairs sentences from the same chapter and draws random ones from other chapters.

Input: plain-text books (optionally .gz) with hard-wrapped paragraphs separated by blank
lines, as Project Gutenberg ships them. A line matching --chapter_pattern starts a new
document; short all-caps lines (titles, "VOLUME I") are dropped.

Sentence splitting uses blingfire (Microsoft's finite-state splitter, a maintained PyPI
wheel): it handles abbreviations such as "Mr." and "St." and runs at about 2 MB/s on
one core, 40x faster than pysbd, which matters on corpora of many GB.

Example:
  python scripts/prepare_corpus.py --input='books/*.txt' --output=corpus.txt
"""
import gzip
import re
import sys

import blingfire
from absl import app
from absl import flags

from bert import files

FLAGS = flags.FLAGS


def define_flags():
  flags.DEFINE_string("input", None,
                      "Comma-separated list of globs of raw text files (.txt or .txt.gz).")
  flags.DEFINE_string("output", None,
                      "Output file: one sentence per line, blank line between documents.")
  flags.DEFINE_string("chapter_pattern", r"(?i)^\s*chapter\s+[ivxlcdm\d]+\.?\s*$",
                      "Regex (per line) that starts a new document.")
  flags.DEFINE_integer("max_bytes", 0, "Stop after this many output bytes, at a document "
                       "boundary (0: no limit).")
  flags.DEFINE_integer("min_sentences", 2, "Drop documents with fewer sentences than this.")

_EMPHASIS = re.compile(r"(?<!\w)_(\S(?:.*?\S)?)_(?!\w)")  # Gutenberg's _italics_
_HEADING = re.compile(r"^[^a-z]{1,60}$")  # short lines with no lower-case letter


def read_text(path: str) -> str:
  opener = gzip.open if path.endswith(".gz") else open
  try:
    with opener(path, "rt", encoding="utf-8") as f:
      return f.read()
  except UnicodeDecodeError as e:
    raise ValueError(f"{path}: invalid UTF-8 at byte offset {e.start}: expected UTF-8 text") from e


def split_chapters(text: str, chapter_pattern: re.Pattern) -> list[list[str]]:
  """Returns chapters, each a list of paragraphs with their hard line-wraps undone."""
  chapters: list[list[str]] = [[]]
  paragraph: list[str] = []

  def end_paragraph():
    if paragraph:
      joined = " ".join(paragraph)
      if not _HEADING.match(joined):
        chapters[-1].append(_EMPHASIS.sub(r"\1", joined))
      paragraph.clear()

  for line in text.splitlines():
    if chapter_pattern.match(line):
      end_paragraph()
      chapters.append([])
    elif line.strip():
      paragraph.append(line.strip())
    else:
      end_paragraph()
  end_paragraph()
  return [c for c in chapters if c]


def to_sentences(paragraphs: list[str]) -> list[str]:
  sentences = []
  for paragraph in paragraphs:
    sentences.extend(s.strip() for s in blingfire.text_to_sentences(paragraph).split("\n")
                     if s.strip())
  return sentences


def documents(paths: list[str], chapter_pattern: re.Pattern, min_sentences: int):
  """Yields each chapter of each file as a list of sentences."""
  for path in paths:
    for chapter in split_chapters(read_text(path), chapter_pattern):
      sentences = to_sentences(chapter)
      if len(sentences) >= min_sentences:
        yield sentences


def main(_):
  written = num_documents = num_sentences = 0
  with open(FLAGS.output, "w", encoding="utf-8") as out:
    paths = files.expand_input_files(FLAGS.input, "--input")
    for sentences in documents(paths, re.compile(FLAGS.chapter_pattern), FLAGS.min_sentences):
      block = "\n".join(sentences) + "\n\n"
      size = len(block.encode("utf-8"))
      if FLAGS.max_bytes and written + size > FLAGS.max_bytes:
        break
      out.write(block)
      written += size
      num_documents += 1
      num_sentences += len(sentences)
  print(f"wrote {FLAGS.output}: {num_documents} documents, {num_sentences} sentences, "
        f"{written} bytes", file=sys.stderr)


if __name__ == "__main__":
  define_flags()
  flags.mark_flags_as_required(["input", "output"])
  app.run(main)
