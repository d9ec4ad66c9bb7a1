"""A sentence-per-line corpus from the raw Austen novels in tests/data/austen (for tests/bench).

Documents are chapters; paragraphs are unwrapped and split into sentences with a simple
punctuation rule. scripts/prepare_corpus.py is the real tool; this only needs to be stable.
"""

import gzip
import pathlib
import re

AUSTEN_DIR = pathlib.Path(__file__).resolve().parents[1] / "tests" / "data" / "austen"
_CHAPTER = re.compile(r"^(CHAPTER|Chapter) [0-9IVXLC]+\.?\s*$", re.MULTILINE)
_SENTENCE_END = re.compile(r"(?<=[.!?])[\"']?\s+(?=[\"'(_]?[A-Z])")


def novel_chapters(path: pathlib.Path) -> list[list[str]]:
  """The chapters of one novel (a .txt.gz file), each a list of sentences."""
  with gzip.open(path, "rt", encoding="utf-8") as f:
    text = f.read().replace("\r\n", "\n")
  chapters = []
  for chapter in _CHAPTER.split(text)[2::2]:
    sentences = []
    for paragraph in re.split(r"\n\s*\n", chapter):
      paragraph = " ".join(paragraph.split())
      sentences.extend(s for s in _SENTENCE_END.split(paragraph) if s.strip())
    if sentences:
      chapters.append(sentences)
  return chapters


def austen_documents() -> list[list[str]]:
  """Chapters of all six novels, each a list of sentences."""
  return [chapter for path in sorted(AUSTEN_DIR.glob("*.txt.gz"))
          for chapter in novel_chapters(path)]


def novel_sentences(min_words: int = 1) -> dict[str, list[str]]:
  """{novel (file name without .txt.gz): its sentences of at least min_words words, in order}."""
  return {path.name.split(".")[0]: [s for chapter in novel_chapters(path) for s in chapter
                                    if len(s.split()) >= min_words]
          for path in sorted(AUSTEN_DIR.glob("*.txt.gz"))}


def write_austen_corpus(path, max_bytes: int | None = None) -> int:
  """Writes whole chapters, one sentence per line, blank line between chapters, until the file
  would pass `max_bytes`. Returns the number of bytes written."""
  written = 0
  with open(path, "w", encoding="utf-8") as f:
    for sentences in austen_documents():
      block = "\n".join(sentences) + "\n\n"
      size = len(block.encode("utf-8"))
      if max_bytes is not None and written + size > max_bytes:
        break
      f.write(block)
      written += size
  return written
