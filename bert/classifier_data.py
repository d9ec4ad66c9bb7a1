"""Sentence (pair) classification data for run_classifier.py: GLUE/XNLI processors, features.

Every task reads tab-separated files in the GLUE / XNLI distribution layouts, split on tabs
only (no quoting, as Google's csv reader with quotechar=None). Task names are
case-insensitive (`get_processor`):

  task        files (under data_dir)                       text_a, text_b, label columns
  xnli        multinli/multinli.train.<lang>.tsv (header)  0, 1, 2 ("contradictory" is
              XNLI1.0/xnli.{dev,test}.tsv (header, rows      read as "contradiction")
              of other languages are skipped)              6, 7, 1
  mnli        train.tsv, dev_{matched,mismatched}.tsv,     8, 9, last
              test_{matched,mismatched}.tsv (headers)
  mrpc        {train,dev,test}.tsv (headers)               3, 4, 0 (test: no label)
  cola        {train,dev}.tsv (no header, 4 columns)       3, -, 1
              test.tsv (header: index, sentence)           1
  sst-2/sst2  {train,dev}.tsv (header: sentence, label)    0, -, 1; test: index, sentence
  qnli, rte,  {train,dev}.tsv (header: index, a, b, label) 1, 2, 3; test: index, a, b
  wnli
  qqp         {train,dev}.tsv (header, 6 columns)          3, 4, 5; test: id, q1, q2
  sts-b/stsb  {train,dev}.tsv (header, 10 columns)         7, 8, 9 (a float score);
                                                           test: 9 columns
  tsv         {train,dev,test}.tsv, columns and labels from the constructor (the
              --text_a_column --text_b_column --label_column --has_header --label_list flags)

Bad input is an error naming the file, its 1-based line and the expected layout: a row whose
column count differs from the header's (or, without header, the layout's / the first row's),
an unknown label, a bad STS-B score, an empty file, a missing file. The real QQP files hold a
few rows broken by embedded newlines; Google-style silent skipping is not done: pass
skip_malformed_rows=True (flag --skip_malformed_rows) to skip rows with a wrong column count,
which are then counted in `num_skipped_rows` and logged with their line numbers.

Feature conversion and metrics live in bert/classifier_features.py and are re-exported here.
"""
import dataclasses
import logging
import os
from collections.abc import Sequence

logger = logging.getLogger(__name__)


@dataclasses.dataclass
class InputExample:
  """One example: text_b is None for single-sentence tasks, label None for test sets.

  label is a label string for classification tasks and a float for regression (STS-B).
  """
  guid: str
  text_a: str
  text_b: str | None = None
  label: object | None = None


@dataclasses.dataclass(frozen=True)
class TsvLayout:
  """Where one kind of TSV file keeps its fields.

  Column indices may be negative (counted from the end of the row, like Google's line[-1]).
  num_columns: the exact column count of every row; None takes the header's count (or, with
  no header, the first row's). filter_column/filter_value keep only the rows whose column
  equals the value (XNLI's language).
  """
  description: str
  text_a: int
  text_b: int | None = None
  label: int | None = None
  has_header: bool = True
  num_columns: int | None = None
  filter_column: int | None = None


def _read_rows(path: str, layout: TsvLayout, skip_malformed_rows: bool = False):
  """Yields (line_number, columns) of the data rows of a TSV file; returns skipped lines.

  Lines are split on "\\n" only (a stray "\\r" inside a text stays text) and decoded as
  UTF-8 one by one, so errors name their line.
  """
  expected = f"expected {layout.description}"
  if not os.path.isfile(path):
    raise FileNotFoundError(f"{path}: file not found ({expected})")
  num_columns = layout.num_columns
  needed = 1 + max(i if i >= 0 else -i - 1
                   for i in (layout.text_a, layout.text_b, layout.label, layout.filter_column)
                   if i is not None)
  skipped_lines = []
  saw_data = False
  with open(path, "rb") as f:
    for line_number, raw_line in enumerate(f, start=1):
      try:
        line = raw_line.decode("utf-8")
      except UnicodeDecodeError as e:
        raise ValueError(f"{path}:{line_number}: not valid UTF-8 ({e.reason})") from None
      if line_number == 1:
        line = line.lstrip("\ufeff")
      columns = line.rstrip("\n").rstrip("\r").split("\t")
      if line_number == 1 and layout.has_header:
        if num_columns is None:
          num_columns = len(columns)
        if num_columns < needed or len(columns) != num_columns:
          raise ValueError(f"{path}:1: header has {len(columns)} columns, {expected}")
        continue
      if num_columns is None:
        num_columns = len(columns)
        if num_columns < needed:
          raise ValueError(f"{path}:{line_number}: found {num_columns} columns, at least "
                           f"{needed} needed; {expected}")
      if len(columns) != num_columns:
        if skip_malformed_rows:
          skipped_lines.append(line_number)
          continue
        raise ValueError(
            f"{path}:{line_number}: found {len(columns)} tab-separated columns, expected "
            f"{num_columns}: {layout.description} (to skip such rows with a count, use "
            f"skip_malformed_rows / --skip_malformed_rows)")
      saw_data = True
      yield line_number, columns
  if not saw_data and not skipped_lines:
    raise ValueError(f"{path}: empty file, no data rows; {expected}")
  if skipped_lines:
    logger.warning("%s: skipped %d malformed rows (wrong column count), lines %s%s", path,
                   len(skipped_lines), skipped_lines[:10],
                   " ..." if len(skipped_lines) > 10 else "")
  return skipped_lines


class DataProcessor:
  """Reads a task's train/dev/test files into InputExamples.

  Subclasses set `labels` (None for regression), `files`: set name -> (path relative to
  data_dir, TsvLayout), and optionally `label_aliases` (read label -> canonical label).
  """
  labels: Sequence[str] | None = ()
  files: dict = {}
  label_aliases: dict = {}
  dev_set_names: tuple = ("dev",)

  def __init__(self, skip_malformed_rows: bool = False):
    self.skip_malformed_rows = skip_malformed_rows
    # path -> 1-based line numbers of the rows skipped as malformed.
    self.skipped_rows: dict[str, list] = {}

  @property
  def is_regression(self) -> bool:
    return self.labels is None

  @property
  def num_skipped_rows(self) -> int:
    return sum(len(lines) for lines in self.skipped_rows.values())

  def get_labels(self) -> list | None:
    """The label strings in label-id order; None for a regression task."""
    return None if self.labels is None else list(self.labels)

  def get_train_examples(self, data_dir: str) -> list:
    return self.get_examples(data_dir, "train")

  def get_dev_examples(self, data_dir: str) -> list:
    return self.get_examples(data_dir, "dev")

  def get_test_examples(self, data_dir: str) -> list:
    return self.get_examples(data_dir, "test")

  def get_examples(self, data_dir: str, set_name: str) -> list:
    """The examples of one set ("train", "dev", "test", or a task's extra dev sets)."""
    if set_name not in self.files:
      raise ValueError(f"{type(self).__name__} has no {set_name!r} set; it has "
                       f"{sorted(self.files)}")
    relative_path, layout = self.files[set_name]
    return self._read_examples(os.path.join(data_dir, relative_path), layout, set_name)

  def _filter_value(self) -> str | None:
    return None

  def _read_examples(self, path: str, layout: TsvLayout, set_name: str) -> list:
    examples = []
    rows = _read_rows(path, layout, self.skip_malformed_rows)
    while True:
      try:
        line_number, columns = next(rows)
      except StopIteration as stop:
        if stop.value:
          self.skipped_rows[path] = stop.value
        break
      if (layout.filter_column is not None
          and columns[layout.filter_column] != self._filter_value()):
        continue
      label = None
      if layout.label is not None:
        label = self._parse_label(columns[layout.label], path, line_number, layout)
      examples.append(InputExample(
          guid=f"{set_name}-{line_number - 1}", text_a=columns[layout.text_a],
          text_b=None if layout.text_b is None else columns[layout.text_b], label=label))
    if not examples:
      raise ValueError(f"{path}: no examples read; expected {layout.description}")
    return examples

  def _parse_label(self, text: str, path: str, line_number: int, layout: TsvLayout):
    if self.labels is None:
      try:
        return float(text)
      except ValueError:
        raise ValueError(f"{path}:{line_number}: score {text!r} is not a number; expected "
                         f"{layout.description}") from None
    label = self.label_aliases.get(text, text)
    if label not in self.labels:
      raise ValueError(f"{path}:{line_number}: unknown label {text!r}, expected one of "
                       f"{list(self.labels)}; the layout is {layout.description}")
    return label


_NLI_LABELS = ("contradiction", "entailment", "neutral")


class XnliProcessor(DataProcessor):
  """XNLI: MultiNLI machine-translated training data, XNLI dev/test for one language."""
  labels = _NLI_LABELS
  label_aliases = {"contradictory": "contradiction"}
  _XNLI_LAYOUT = TsvLayout("XNLI: language, gold_label, ..., sentence1 (7th), sentence2 "
                           "(8th), ... with a header", text_a=6, text_b=7, label=1,
                           filter_column=0)

  def __init__(self, language: str = "zh", skip_malformed_rows: bool = False):
    super().__init__(skip_malformed_rows)
    self.language = language
    self.files = {
        "train": (os.path.join("multinli", f"multinli.train.{language}.tsv"),
                  TsvLayout("premise, hypo, label with a header", text_a=0, text_b=1,
                            label=2)),
        "dev": (os.path.join("XNLI1.0", "xnli.dev.tsv"), self._XNLI_LAYOUT),
        "test": (os.path.join("XNLI1.0", "xnli.test.tsv"), self._XNLI_LAYOUT),
    }

  def get_examples(self, data_dir: str, set_name: str) -> list:
    # Google's path is XNLI1.0/; the XNLI-1.0.zip download unpacks to XNLI-1.0/.
    relative_path, layout = self.files.get(set_name, (None, None))
    if (relative_path and relative_path.startswith("XNLI1.0")
        and not os.path.exists(os.path.join(data_dir, relative_path))):
        dashed = relative_path.replace("XNLI1.0", "XNLI-1.0", 1)
        if os.path.exists(os.path.join(data_dir, dashed)):
          return self._read_examples(os.path.join(data_dir, dashed), layout, set_name)
    return super().get_examples(data_dir, set_name)

  def _filter_value(self) -> str | None:
    return self.language


_MNLI_LAYOUT = TsvLayout("MNLI: index, promptID, pairID, genre, 4 parses, sentence1, "
                         "sentence2, labels..., gold_label with a header", text_a=8, text_b=9,
                         label=-1)
_MNLI_TEST_LAYOUT = TsvLayout("MNLI test: index, promptID, pairID, genre, 4 parses, "
                              "sentence1, sentence2 with a header", text_a=8, text_b=9)


class MnliProcessor(DataProcessor):
  """MultiNLI; "dev" is dev_matched, "dev_mismatched"/"test_mismatched" the other genres."""
  labels = _NLI_LABELS
  dev_set_names = ("dev_matched", "dev_mismatched")
  files = {
      "train": ("train.tsv", _MNLI_LAYOUT),
      "dev": ("dev_matched.tsv", _MNLI_LAYOUT),
      "dev_matched": ("dev_matched.tsv", _MNLI_LAYOUT),
      "dev_mismatched": ("dev_mismatched.tsv", _MNLI_LAYOUT),
      "test": ("test_matched.tsv", _MNLI_TEST_LAYOUT),
      "test_matched": ("test_matched.tsv", _MNLI_TEST_LAYOUT),
      "test_mismatched": ("test_mismatched.tsv", _MNLI_TEST_LAYOUT),
  }

  def get_dev_matched_examples(self, data_dir: str) -> list:
    return self.get_examples(data_dir, "dev_matched")

  def get_dev_mismatched_examples(self, data_dir: str) -> list:
    return self.get_examples(data_dir, "dev_mismatched")


def _same_layout_sets(train_dev: TsvLayout, test: TsvLayout) -> dict:
  return {"train": ("train.tsv", train_dev), "dev": ("dev.tsv", train_dev),
          "test": ("test.tsv", test)}


class MrpcProcessor(DataProcessor):
  labels = ("0", "1")
  files = _same_layout_sets(
      TsvLayout("MRPC: Quality, #1 ID, #2 ID, #1 String, #2 String with a header",
                text_a=3, text_b=4, label=0),
      TsvLayout("MRPC test: index, #1 ID, #2 ID, #1 String, #2 String with a header",
                text_a=3, text_b=4))


class ColaProcessor(DataProcessor):
  labels = ("0", "1")
  files = _same_layout_sets(
      TsvLayout("CoLA: source, label, original label, sentence without header", text_a=3,
                label=1, has_header=False, num_columns=4),
      TsvLayout("CoLA test: index, sentence with a header", text_a=1))


class Sst2Processor(DataProcessor):
  labels = ("0", "1")
  files = _same_layout_sets(
      TsvLayout("SST-2: sentence, label with a header", text_a=0, label=1),
      TsvLayout("SST-2 test: index, sentence with a header", text_a=1))


def _index_a_b_label(task: str) -> dict:
  return _same_layout_sets(
      TsvLayout(f"{task}: index, text_a, text_b, label with a header", text_a=1, text_b=2,
                label=3),
      TsvLayout(f"{task} test: index, text_a, text_b with a header", text_a=1, text_b=2))


class QnliProcessor(DataProcessor):
  labels = ("entailment", "not_entailment")
  files = _index_a_b_label("QNLI (question, sentence)")


class RteProcessor(DataProcessor):
  labels = ("entailment", "not_entailment")
  files = _index_a_b_label("RTE (sentence1, sentence2)")


class WnliProcessor(DataProcessor):
  labels = ("0", "1")
  files = _index_a_b_label("WNLI (sentence1, sentence2)")


class QqpProcessor(DataProcessor):
  labels = ("0", "1")
  files = _same_layout_sets(
      TsvLayout("QQP: id, qid1, qid2, question1, question2, is_duplicate with a header",
                text_a=3, text_b=4, label=5),
      TsvLayout("QQP test: id, question1, question2 with a header", text_a=1, text_b=2))


class StsbProcessor(DataProcessor):
  """STS-B: regression on a 0-5 similarity score (labels None, float label)."""
  labels = None
  files = _same_layout_sets(
      TsvLayout("STS-B: index, genre, filename, year, old_index, source1, source2, "
                "sentence1, sentence2, score with a header", text_a=7, text_b=8, label=9,
                num_columns=10),
      TsvLayout("STS-B test: index, genre, filename, year, old_index, source1, source2, "
                "sentence1, sentence2 with a header", text_a=7, text_b=8, num_columns=9))


class TsvProcessor(DataProcessor):
  """Any {train,dev,test}.tsv with the texts and label in given (0-based) columns.

  The test file uses the same text columns; its label column, if any, is not read.
  """

  def __init__(self, label_list: Sequence[str], text_a_column: int = 0,
               text_b_column: int | None = None, label_column: int = 1,
               has_header: bool = False, skip_malformed_rows: bool = False):
    super().__init__(skip_malformed_rows)
    if not label_list:
      raise ValueError("the tsv task needs a label list (--label_list=neg,pos)")
    self.labels = tuple(label_list)
    columns = f"text_a in column {text_a_column}"
    if text_b_column is not None:
      columns += f", text_b in column {text_b_column}"
    header = "with a header" if has_header else "without header"
    layout = TsvLayout(f"tab-separated rows, {columns}, label ({'/'.join(self.labels)}) in "
                       f"column {label_column}, {header}", text_a=text_a_column,
                       text_b=text_b_column, label=label_column, has_header=has_header)
    test_layout = dataclasses.replace(
        layout, label=None, description=f"tab-separated rows, {columns}, {header}")
    self.files = _same_layout_sets(layout, test_layout)


PROCESSORS = {
    "xnli": XnliProcessor, "mnli": MnliProcessor, "mrpc": MrpcProcessor,
    "cola": ColaProcessor, "sst-2": Sst2Processor, "sst2": Sst2Processor,
    "qnli": QnliProcessor, "rte": RteProcessor, "qqp": QqpProcessor, "wnli": WnliProcessor,
    "sts-b": StsbProcessor, "stsb": StsbProcessor, "tsv": TsvProcessor,
}


def get_processor(task_name: str, **kwargs) -> DataProcessor:
  """The processor of a task (case-insensitive); kwargs go to its constructor.

  E.g. get_processor("tsv", label_list=["neg", "pos"], text_a_column=1, label_column=0),
  get_processor("XNLI", language="de"), get_processor("qqp", skip_malformed_rows=True).
  """
  name = task_name.lower()
  if name not in PROCESSORS:
    raise ValueError(f"Task not found: {task_name!r}; known tasks: {sorted(PROCESSORS)}")
  return PROCESSORS[name](**kwargs)
