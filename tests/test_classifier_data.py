"""classifier_data: GLUE/XNLI processors on hand-written files, features, metrics, outputs."""
import pathlib

import numpy as np
import pytest

import tokenization
from bert import classifier_data
from bert import classifier_features
from bert import classifier_metrics
from bert import files

GLUE = pathlib.Path(__file__).parent / "data" / "glue"

# task, data dir, labels, (n train, n dev, n test), first train (text_a, text_b, label).
TASKS = [
    ("MNLI", "MNLI", ["contradiction", "entailment", "neutral"], (3, 2, 1),
     ("Conceptually cream skimming has two basic dimensions.",
      "Product and geography are what make cream skimming work.", "neutral")),
    ("xnli", "XNLI", ["contradiction", "entailment", "neutral"], (2, 2, 1),
     ("从概念上看,奶油收入有两个基本方面产品和地理.", "产品和地理是什么使奶油抹霜工作.",
      "neutral")),
    ("MRPC", "MRPC", ["0", "1"], (2, 1, 1),
     ("Amrozi accused his brother of distorting evidence .",
      'Referring to him as only " the witness " , Amrozi accused his brother .', "1")),
    ("cola", "CoLA", ["0", "1"], (2, 2, 1),
     ("Our friends won't buy this analysis, let alone the next one we propose.", None, "1")),
    ("SST-2", "SST-2", ["0", "1"], (2, 1, 1),
     ("hide new secretions from the parental units ", None, "0")),
    ("sst2", "SST-2", ["0", "1"], (2, 1, 1),
     ("hide new secretions from the parental units ", None, "0")),
    ("QNLI", "QNLI", ["entailment", "not_entailment"], (2, 1, 1),
     ("When did the third Digimon series begin?",
      "Unlike the two seasons before it, it is set in reality.", "not_entailment")),
    ("rte", "RTE", ["entailment", "not_entailment"], (1, 1, 1),
     ("No Weapons of Mass Destruction Found in Iraq Yet.",
      "Weapons of Mass Destruction Found in Iraq.", "not_entailment")),
    ("WNLI", "WNLI", ["0", "1"], (1, 1, 1),
     ("I stuck a pin through a carrot. When I pulled the pin out, it had a hole.",
      "The carrot had a hole.", "1")),
    ("qqp", "QQP", ["0", "1"], (2, 1, 1),
     ("How is the life of a math student?",
      "Which level of prepration is enough for the exam jlpt5?", "0")),
    ("STS-B", "STS-B", None, (2, 1, 1),
     ("A plane is taking off.", "An air plane is taking off.", 5.0)),
]


@pytest.mark.parametrize("task, folder, labels, counts, first", TASKS,
                         ids=[t[0] for t in TASKS])
def test_processor_reads_every_set(task, folder, labels, counts, first):
  processor = classifier_data.get_processor(task)
  data_dir = str(GLUE / folder)
  assert processor.get_labels() == labels
  train = processor.get_train_examples(data_dir)
  dev = processor.get_dev_examples(data_dir)
  test = processor.get_test_examples(data_dir)
  assert (len(train), len(dev), len(test)) == counts
  assert (train[0].text_a, train[0].text_b, train[0].label) == first
  if task == "xnli":  # XNLI's test set is labelled like its dev set.
    assert [e.label for e in test] == ["neutral"]
  else:
    assert all(e.label is None for e in test)
  assert all(e.text_a and (e.text_b is None) == (first[1] is None) for e in train + test)
  valid = labels if labels is not None else None
  for e in train + dev:
    assert (e.label in valid) if valid else isinstance(e.label, float)
  assert train[0].guid == ("train-0" if task == "cola" else "train-1")


def test_mnli_matched_and_mismatched():
  processor = classifier_data.get_processor("mnli")
  data_dir = str(GLUE / "MNLI")
  assert processor.dev_set_names == ("dev_matched", "dev_mismatched")
  matched = processor.get_dev_matched_examples(data_dir)
  mismatched = processor.get_dev_mismatched_examples(data_dir)
  assert [e.label for e in matched] == ["neutral", "entailment"]  # The last column.
  assert [(e.text_a, e.label) for e in mismatched] == [
      ("Your contribution helped make it possible.", "contradiction")]
  assert len(processor.get_examples(data_dir, "test_mismatched")) == 2
  with pytest.raises(ValueError, match="has no 'dev_other' set"):
    processor.get_examples(data_dir, "dev_other")


def test_xnli_language_filter_and_alias(tmp_path):
  data_dir = GLUE / "XNLI"
  zh = classifier_data.get_processor("XNLI")
  dev = zh.get_dev_examples(str(data_dir))
  assert [(e.text_b, e.label) for e in dev] == [("他没说一句话。", "contradiction"),
                                               ("他说他回家了。", "entailment")]
  assert zh.get_train_examples(str(data_dir))[1].label == "contradiction"  # "contradictory"
  de = classifier_data.get_processor("xnli", language="de").get_dev_examples(str(data_dir))
  assert [e.label for e in de] == ["entailment"]
  # The XNLI-1.0.zip download unpacks to XNLI-1.0/ rather than Google's XNLI1.0/.
  (tmp_path / "XNLI-1.0").mkdir()
  (tmp_path / "XNLI-1.0" / "xnli.dev.tsv").write_bytes(
      (data_dir / "XNLI1.0" / "xnli.dev.tsv").read_bytes())
  assert len(zh.get_dev_examples(str(tmp_path))) == 2


def test_generic_tsv_task():
  processor = classifier_data.get_processor(
      "TSV", label_list=["neg", "pos"], text_a_column=1, text_b_column=2, label_column=0,
      has_header=False)
  train = processor.get_train_examples(str(GLUE / "tsv"))
  assert [(e.text_a, e.text_b, e.label) for e in train] == [
      ("A fine day.", "Sunny and warm.", "pos"), ("A grim day.", "Cold rain.", "neg")]
  (test,) = processor.get_test_examples(str(GLUE / "tsv"))
  assert (test.text_a, test.label) == ("Lovely.", None)  # Its label column is not read.
  with pytest.raises(ValueError, match="needs a label list"):
    classifier_data.get_processor("tsv", label_list=[])


def test_unknown_task():
  with pytest.raises(ValueError, match="Task not found: 'squad'.*'sts-b'"):
    classifier_data.get_processor("squad")


def _write(tmp_path, name, text):
  path = tmp_path / name
  path.write_text(text, encoding="utf-8")
  return path


def test_wrong_column_count_names_file_line_and_format(tmp_path):
  _write(tmp_path, "train.tsv", "Quality\t#1 ID\t#2 ID\t#1 String\t#2 String\n"
                                "1\t1\t2\tOne .\tTwo .\n"
                                "0\t3\t4\tOnly one string .\n")
  processor = classifier_data.get_processor("mrpc")
  with pytest.raises(ValueError, match=r"train\.tsv:3: found 4 tab-separated columns, "
                                       r"expected 5: MRPC: Quality, #1 ID, #2 ID, #1 String, "
                                       r"#2 String with a header"):
    processor.get_train_examples(str(tmp_path))


def test_cola_rows_without_header_have_four_columns(tmp_path):
  _write(tmp_path, "train.tsv", "gj04\t1\t\tFine.\ngj04\t1\tFine too.\n")
  with pytest.raises(ValueError, match=r"train\.tsv:2: found 3 .* expected 4: CoLA"):
    classifier_data.get_processor("cola").get_train_examples(str(tmp_path))


def test_unknown_label_names_file_and_line(tmp_path):
  _write(tmp_path, "dev.tsv", "index\tquestion\tsentence\tlabel\n"
                              "0\tWhy?\tBecause.\tentailment\n"
                              "1\tWhy?\tBecause.\tcontradiction\n")
  with pytest.raises(ValueError, match=r"dev\.tsv:3: unknown label 'contradiction', expected "
                                       r"one of \['entailment', 'not_entailment'\]"):
    classifier_data.get_processor("qnli").get_dev_examples(str(tmp_path))


def test_bad_stsb_score(tmp_path):
  header = "\t".join(["c"] * 10)
  _write(tmp_path, "train.tsv", f"{header}\n0\tg\tf\ty\t1\ts\ts\tA.\tB.\tfive\n")
  with pytest.raises(ValueError, match=r"train\.tsv:2: score 'five' is not a number"):
    classifier_data.get_processor("sts-b").get_train_examples(str(tmp_path))


def test_empty_missing_and_header_only_files(tmp_path):
  processor = classifier_data.get_processor("sst-2")
  _write(tmp_path, "train.tsv", "")
  with pytest.raises(ValueError, match=r"train\.tsv: empty file.*SST-2: sentence, label"):
    processor.get_train_examples(str(tmp_path))
  _write(tmp_path, "train.tsv", "sentence\tlabel\n")
  with pytest.raises(ValueError, match=r"train\.tsv: empty file"):
    processor.get_train_examples(str(tmp_path))
  with pytest.raises(FileNotFoundError, match=r"dev\.tsv: file not found"):
    processor.get_dev_examples(str(tmp_path))
  _write(tmp_path, "test.tsv", "sentence\n")  # Header lacks the text column.
  with pytest.raises(ValueError, match=r"test\.tsv:1: header has 1 columns"):
    processor.get_test_examples(str(tmp_path))


def test_qqp_malformed_rows_error_or_counted_skip(tmp_path):
  # A question with an embedded newline breaks its row in two, as in the real QQP files.
  _write(tmp_path, "train.tsv", "id\tqid1\tqid2\tquestion1\tquestion2\tis_duplicate\n"
                                "0\t1\t2\tWhat is\n"
                                "this?\tWhat is that?\t0\n"
                                "1\t3\t4\tHow?\tWhy?\t1\n")
  with pytest.raises(ValueError, match=r"train\.tsv:2: found 4 .*--skip_malformed_rows"):
    classifier_data.get_processor("qqp").get_train_examples(str(tmp_path))
  processor = classifier_data.get_processor("qqp", skip_malformed_rows=True)
  examples = processor.get_train_examples(str(tmp_path))
  assert [(e.text_a, e.label) for e in examples] == [("How?", "1")]
  assert processor.num_skipped_rows == 2
  assert processor.skipped_rows == {str(tmp_path / "train.tsv"): [2, 3]}


def test_carriage_returns_and_invalid_utf8(tmp_path):
  (tmp_path / "train.tsv").write_bytes(b"sentence\tlabel\r\nfine\r\n\t1\r\n")
  with pytest.raises(ValueError, match=r"train\.tsv:2: found 1 "):
    classifier_data.get_processor("sst-2").get_train_examples(str(tmp_path))
  (tmp_path / "train.tsv").write_bytes(b"sentence\tlabel\r\nfine\t1\r\nbad \xff\t0\n")
  with pytest.raises(ValueError, match=r"train\.tsv:3: not valid UTF-8"):
    classifier_data.get_processor("sst-2").get_train_examples(str(tmp_path))
  (tmp_path / "train.tsv").write_bytes(b"sentence\tlabel\r\nfine\t1\r\n")
  (example,) = classifier_data.get_processor("sst-2").get_train_examples(str(tmp_path))
  assert (example.text_a, example.label) == ("fine", "1")


# ---------------------------------------------------------------------------------------
# Features.


@pytest.fixture(scope="module")
def tokenizer(uncased_vocab):
  return tokenization.FullTokenizer(str(uncased_vocab), do_lower_case=True)


def test_truncate_seq_pair_trims_the_longer():
  a, b = list("abcdef"), list("xyz")
  classifier_features.truncate_seq_pair(a, b, 6)
  assert (a, b) == (list("abc"), list("xyz"))
  a, b = list("ab"), list("wxyz")
  classifier_features.truncate_seq_pair(a, b, 3)
  assert (a, b) == (list("ab"), list("w"))  # Ties trim b.


def test_convert_single_example_by_hand(tokenizer):
  example = classifier_data.InputExample("g", "The cat sat.", "A dog ran away quickly.", "1")
  feature = classifier_features.convert_single_example(0, example, ["0", "1"], 10, tokenizer)
  # 7 slots for 4 + 6 tokens: b (the longer, or on ties) loses tokens until 4 + 3 = 7.
  tokens = ["[CLS]", "the", "cat", "sat", ".", "[SEP]", "a", "dog", "ran", "[SEP]"]
  assert feature.input_ids == tokenizer.convert_tokens_to_ids(tokens)
  assert feature.segment_ids == [0] * 6 + [1] * 4
  assert feature.input_mask == [1] * 10
  assert feature.label_id == 1
  single = classifier_data.InputExample("g", "The cat sat.", None, "0")
  feature = classifier_features.convert_single_example(0, single, ["0", "1"], 8, tokenizer)
  assert feature.input_ids == tokenizer.convert_tokens_to_ids(
      ["[CLS]", "the", "cat", "sat", ".", "[SEP]"]) + [0, 0]
  assert feature.input_mask == [1] * 6 + [0, 0] and feature.segment_ids == [0] * 8
  assert feature.label_id == 0


def test_batched_features_match_single_conversion(tokenizer):
  processor = classifier_data.get_processor("mrpc")
  examples = (processor.get_train_examples(str(GLUE / "MRPC"))
              + processor.get_dev_examples(str(GLUE / "MRPC"))
              + [classifier_data.InputExample("s", "Just one sentence here.", None, "0")])
  for max_seq_length in (8, 16, 64):
    arrays = classifier_features.convert_examples_to_features(
        examples, processor.get_labels(), max_seq_length, tokenizer, chunk_size=2)
    for i, example in enumerate(examples):
      single = classifier_features.convert_single_example(i, example, processor.get_labels(),
                                                      max_seq_length, tokenizer)
      assert arrays["input_ids"][i].tolist() == single.input_ids
      assert arrays["input_mask"][i].tolist() == single.input_mask
      assert arrays["segment_ids"][i].tolist() == single.segment_ids
      assert arrays["label_ids"][i] == single.label_id
    assert arrays["input_ids"].dtype == np.int32
    assert arrays["input_ids"].shape == (len(examples), max_seq_length)


def test_regression_and_unlabelled_features(tokenizer):
  processor = classifier_data.get_processor("sts-b")
  train = processor.get_train_examples(str(GLUE / "STS-B"))
  arrays = classifier_features.convert_examples_to_features(train, None, 32, tokenizer)
  assert arrays["label_ids"].dtype == np.float32
  assert arrays["label_ids"].tolist() == pytest.approx([5.0, 3.8])
  test = classifier_data.get_processor("cola").get_test_examples(str(GLUE / "CoLA"))
  arrays = classifier_features.convert_examples_to_features(test, ["0", "1"], 16, tokenizer)
  assert arrays["label_ids"].tolist() == [0]


# ---------------------------------------------------------------------------------------
# Metrics and output files.


def test_binary_metrics_by_hand():
  labels = [1, 1, 1, 0, 0, 0, 0, 1]
  predictions = [1, 1, 0, 0, 0, 1, 0, 1]
  # TP = 3, FN = 1, FP = 1, TN = 3.
  assert classifier_metrics.accuracy(labels, predictions) == 0.75
  assert classifier_metrics.f1_score(labels, predictions) == pytest.approx(0.75)  # 6 / 8.
  # (3 * 3 - 1 * 1) / sqrt(4 * 4 * 4 * 4) = 0.5.
  assert classifier_metrics.matthews_corrcoef(labels, predictions) == pytest.approx(0.5)
  assert classifier_metrics.f1_score([0, 0], [0, 0]) == 0.0
  assert classifier_metrics.matthews_corrcoef([1, 0, 1], [1, 1, 1]) == 0.0  # Undefined.
  assert classifier_metrics.matthews_corrcoef([0, 1, 0, 1], [1, 0, 1, 0]) == pytest.approx(-1)


def test_multiclass_mcc_by_hand():
  # Confusion [[1, 1, 0], [0, 1, 0], [0, 0, 1]]: c = 3, s = 4, t = (2, 1, 1),
  # p = (1, 2, 1): (12 - 5) / sqrt((16 - 6) * (16 - 6)) = 0.7.
  assert classifier_metrics.matthews_corrcoef([0, 0, 1, 2], [0, 1, 1, 2]) == pytest.approx(0.7)


def test_correlations_by_hand():
  x, y = [1.0, 2.0, 3.0, 4.0], [2.0, 4.0, 5.0, 9.0]
  # Centered: x (-1.5, -.5, .5, 1.5), y (-3, -1, 0, 4): 11 / sqrt(5 * 26).
  assert classifier_metrics.pearson_corrcoef(x, y) == pytest.approx(11 / np.sqrt(130))
  assert classifier_metrics.spearman_corrcoef(x, y) == pytest.approx(1.0)
  assert average_ranks([3.0, 1.0, 3.0, 2.0]) == [3.5, 1.0, 3.5, 2.0]
  # Ranks x (1, 2.5, 2.5, 4), y (1, 2, 3, 4): centered (-1.5, 0, 0, 1.5), (-1.5, -.5, .5,
  # 1.5): 4.5 / sqrt(4.5 * 5).
  assert classifier_metrics.spearman_corrcoef([1, 2, 2, 3], [1, 2, 3, 4]) == pytest.approx(
      4.5 / np.sqrt(22.5))
  assert classifier_metrics.pearson_corrcoef([1, 1, 1], [1, 2, 3]) == 0.0


def average_ranks(values):
  return classifier_metrics.average_ranks(values).tolist()


def test_task_metrics_keys():
  labels = np.array([1, 0, 1, 1])
  logits = np.array([[0.1, 0.9], [0.8, 0.2], [0.6, 0.4], [0.3, 0.7]])  # argmax 1, 0, 0, 1.
  assert classifier_metrics.task_metrics("MRPC", labels, logits) == {
      "eval_accuracy": 0.75, "eval_f1": pytest.approx(0.8)}
  assert set(classifier_metrics.task_metrics("cola", labels, logits)) == {"eval_accuracy",
                                                                      "eval_mcc"}
  assert set(classifier_metrics.task_metrics("qqp", labels, [1, 0, 0, 1])) == {
      "eval_accuracy", "eval_f1"}
  assert classifier_metrics.task_metrics("rte", labels, [1, 0, 0, 1]) == {"eval_accuracy": 0.75}
  result = classifier_metrics.task_metrics("STS-B", [1.0, 2.0, 3.0], [[1.5], [2.5], [2.0]])
  assert set(result) == {"eval_pearson", "eval_spearman"}
  assert result["eval_spearman"] == pytest.approx(0.5)
  with pytest.raises(ValueError, match="4 labels but 3 predictions"):
    classifier_metrics.task_metrics("rte", labels, [1, 0, 0])


def test_google_output_files(tmp_path):
  eval_path = tmp_path / "eval_results.txt"
  files.write_results(str(eval_path), {
      "global_step": 12, "eval_loss": np.float32(0.25), "eval_accuracy": 0.875})
  assert eval_path.read_text() == ("eval_accuracy = 0.875\neval_loss = 0.25\n"
                                   "global_step = 12\n")
  test_path = tmp_path / "test_results.tsv"
  probabilities = np.array([[0.25, 0.75], [0.1, 0.9]], np.float32)
  assert files.write_test_results(str(test_path), probabilities) == 2
  assert test_path.read_text() == "0.25\t0.75\n0.1\t0.9\n"
