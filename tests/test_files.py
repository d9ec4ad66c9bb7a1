"""bert/files.py: the one glob expander, JSON reader and Google's results files."""
import pytest

from bert import files


def test_globs_expand_in_order_and_a_pattern_matching_nothing_is_named(tmp_path):
  for name in ("b.txt", "a.txt", "c.dat"):
    (tmp_path / name).write_text("x\n")
  pattern = str(tmp_path / "nothing-*.txt")
  with pytest.raises(FileNotFoundError, match=r"--input_file: .*nothing-\*\.txt.* matches no file"):
    files.expand_input_files(f"{tmp_path / 'a.txt'},{pattern}")
  # Each glob sorted, the patterns in the order given, blanks ignored.
  assert files.expand_input_files(f"{tmp_path / 'c.dat'}, ,{tmp_path / '*.txt'}") == [
      str(tmp_path / n) for n in ("c.dat", "a.txt", "b.txt")]
  with pytest.raises(FileNotFoundError, match="--input_text_file"):
    files.expand_input_files(pattern, "--input_text_file")
  with pytest.raises(ValueError, match="--input_file is empty"):
    files.expand_input_files(" , ")


def test_load_json_names_the_file_line_and_expected_type(tmp_path):
  path = tmp_path / "p.json"
  path.write_text('{\n"a": 1,\n}\n')
  with pytest.raises(ValueError, match=rf"{path}:3: predictions file is not valid JSON"):
    files.load_json(str(path), "predictions", dict)
  path.write_text("[1, 2]")
  with pytest.raises(ValueError, match="must hold a JSON dict, found list"):
    files.load_json(str(path), "predictions", dict)
  with pytest.raises(FileNotFoundError, match="predictions file not found"):
    files.load_json(str(tmp_path / "missing.json"), "predictions", dict)
  assert files.load_json(str(path), "predictions", list) == [1, 2]


def test_results_files_are_googles(tmp_path):
  path = tmp_path / "out" / "eval_results.txt"
  files.write_results(str(path), {"global_step": 3, "eval_accuracy": 0.5, "b": "x"})
  assert path.read_text() == "b = x\neval_accuracy = 0.5\nglobal_step = 3\n"
  path = tmp_path / "test_results.tsv"
  assert files.write_test_results(str(path), [[0.25, 0.75], [1.0, 0.0]]) == 2
  assert path.read_text() == "0.25\t0.75\n1.0\t0.0\n"
  assert files.write_test_results(str(path), [2.5]) == 1
  assert path.read_text() == "2.5\n"
