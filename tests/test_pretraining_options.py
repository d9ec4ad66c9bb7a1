"""run_pretraining's options beyond Google's: --only_mlm_loss, --dynamic_masking and
--input_text_file (bert/pretraining_sources.py).

The masking and the raw-text stream are tested on their dataset functions in this process
(fast); three short real runs of run_pretraining.py start together from a module fixture and
share the two cores. Data: create_pretraining_data.py over 600 Austen lines with the tiny
235-token vocab of pretraining_helpers, once masked and once with --no_masking. Both runs of
create_pretraining_data use the same seed, so record i of one is record i of the other.
"""
import dataclasses
import pathlib
import sys

import numpy as np
import pretraining_helpers as h
import pytest
import tiny

SEQ = h.SEQ_LENGTH
PRED = h.MAX_PREDICTIONS
RUN_TIMEOUT = 600
TEXT_STEPS = 40


@dataclasses.dataclass
class Data:
  root: pathlib.Path
  vocab: pathlib.Path
  vocab_size: int
  config: pathlib.Path
  corpus: pathlib.Path
  masked: pathlib.Path  # create_pretraining_data.py
  unmasked: pathlib.Path  # the same instances, --no_masking


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Data:
  root = tmp_path_factory.mktemp("pretraining_options")
  vocab, vocab_size, corpus = h.write_tiny_vocab_and_corpus(root)
  (masked,) = h.create_pretraining_data(corpus, [root / "masked.tfrecord"], vocab)
  unmasked = root / "unmasked.tfrecord"
  h.run_process([sys.executable, h.REPO / "create_pretraining_data.py", f"--input_file={corpus}",
                 f"--output_file={unmasked}", f"--vocab_file={vocab}", f"--max_seq_length={SEQ}",
                 f"--max_predictions_per_seq={PRED}", f"--masked_lm_prob={h.MASKED_LM_PROB}",
                 "--dupe_factor=1", "--short_seq_prob=0", "--num_workers=1", "--no_masking"],
                timeout=120).check()
  return Data(root, vocab, vocab_size,
              tiny.write_config(root / "bert_config.json", vocab_size, dropout=0.0),
              corpus, masked, unmasked)


@pytest.fixture(scope="module")
def runs(data):
  """The real runs, started together; {name: Future of h.Result}."""
  root = data.root
  common = dict(do_eval=True, max_eval_steps=4)
  jobs = {
      "only_mlm": h.run_pretraining_args(data.config, [data.masked], root / "only_mlm",
                                         only_mlm_loss=True, **common),
      "dynamic": h.run_pretraining_args(data.config, [data.unmasked], root / "dynamic",
                                        dynamic_masking=True, vocab_file=data.vocab,
                                        masked_lm_prob=h.MASKED_LM_PROB, **common),
      "text": h.run_pretraining_args(data.config, [], root / "text", input_file=None,
                                     input_text_file=data.corpus, vocab_file=data.vocab,
                                     masked_lm_prob=h.MASKED_LM_PROB, chunk_bytes=8192,
                                     train_batch_size=8, learning_rate=2e-3,
                                     num_train_steps=TEXT_STEPS, shuffle_input=True, **common),
  }
  pool = h.CorePool(cores=2)
  futures = {name: pool.submit(1, h.run_process, args, RUN_TIMEOUT)
             for name, args in jobs.items()}
  yield futures
  pool.shutdown()


# ------------------------------------------------------------------------------ helpers

def masking_config(data, max_predictions=PRED, masked_lm_prob=h.MASKED_LM_PROB,
                   whole_word=False):
  import tokenization
  from bert import pretraining_data
  vocab = tokenization.load_vocab(str(data.vocab))
  return pretraining_data.masking_config(vocab, str(data.vocab), masked_lm_prob,
                                             max_predictions, whole_word)


def unmasked_dataset(data, batch_size, is_training, masked=False, path=None):
  from bert import pretraining_input
  return pretraining_input.pretraining_dataset(
      [str(path or (data.masked if masked else data.unmasked))], batch_size, SEQ, PRED,
      data.vocab_size, is_training=is_training, shuffle=False, masked=masked)


def all_records(tf, dataset) -> dict[str, np.ndarray]:
  """Every batch of a finite dataset, concatenated: {name: [num_records, ...]}."""
  batches = [{k: v.numpy() for k, v in batch.items()} for batch in dataset]
  return {k: np.concatenate([b[k] for b in batches]) for k in batches[0]}


def concatenate(batches: list[dict]) -> dict[str, np.ndarray]:
  return {k: np.concatenate([np.asarray(b[k]) for b in batches]) for k in batches[0]}


def restore(masked: dict) -> np.ndarray:
  """The unmasked input_ids of masked features: [N, S]."""
  ids = masked["input_ids"].copy()
  rows, slots = np.nonzero(masked["masked_lm_weights"])
  ids[rows, masked["masked_lm_positions"][rows, slots]] = masked["masked_lm_ids"][rows, slots]
  return ids


def replacement_fractions(masked: dict, mask_id: int) -> np.ndarray:
  """Fractions of predictions that became [MASK], stayed, or became another token."""
  rows, slots = np.nonzero(masked["masked_lm_weights"])
  now = masked["input_ids"][rows, masked["masked_lm_positions"][rows, slots]]
  before = masked["masked_lm_ids"][rows, slots]
  is_mask = now == mask_id
  kept = ~is_mask & (now == before)
  return np.array([is_mask.mean(), kept.mean(), (~is_mask & ~kept).mean()])


def position_sets(masked: dict) -> list[frozenset]:
  return [frozenset(p[w > 0].tolist()) for p, w in
          zip(masked["masked_lm_positions"], masked["masked_lm_weights"])]


# ------------------------------------------------------------------------ dynamic masking

def test_masks_new_each_epoch_same_per_seed_rank_and_batch(tf, data, runs):
  del runs  # Requested first, so the real runs overlap the in-process tests.
  from bert import pretraining_sources
  config = masking_config(data)
  num_records = sum(1 for _ in tf.data.TFRecordDataset(str(data.unmasked)))
  batch_size = 6

  def masked_batches(seed, rank, count, skip=0):
    dataset = pretraining_sources.mask_dataset(unmasked_dataset(data, batch_size, True),
                                               config, seed, rank)
    return [{k: v.numpy() for k, v in b.items()} for b in dataset.skip(skip).take(count)]

  # Two epochs and a bit: record r of epoch 1 is record r + num_records of the stream.
  num_batches = 2 * num_records // batch_size + 1
  stream = concatenate(masked_batches(seed=7, rank=0, count=num_batches))
  original = restore(stream)
  first, second = slice(0, num_records), slice(num_records, 2 * num_records)
  np.testing.assert_array_equal(original[first], original[second])
  epoch_1, epoch_2 = position_sets({k: v[first] for k, v in stream.items()}), position_sets(
      {k: v[second] for k, v in stream.items()})
  same_positions = np.mean([a == b for a, b in zip(epoch_1, epoch_2)])
  assert same_positions < 0.05, f"{same_positions:.0%} of records kept their masks"

  again = masked_batches(seed=7, rank=0, count=5)
  other_rank = masked_batches(seed=7, rank=1, count=5)
  other_seed = masked_batches(seed=8, rank=0, count=5)
  for name in stream:
    np.testing.assert_array_equal(concatenate(again)[name], stream[name][:5 * batch_size])
  for other in (other_rank, other_seed):
    other = concatenate(other)
    np.testing.assert_array_equal(restore(other), original[:5 * batch_size])
    assert not np.array_equal(other["masked_lm_positions"],
                              stream["masked_lm_positions"][:5 * batch_size])
  # A resumed run skips the batches it consumed; the next batch keeps its masks.
  resumed = masked_batches(seed=7, rank=0, count=2, skip=40)
  for name in stream:
    np.testing.assert_array_equal(concatenate(resumed)[name],
                                  stream[name][40 * batch_size:42 * batch_size])


def test_masking_statistics_match_create_pretraining_data(tf, data):
  from bert import pretraining_sources
  config = masking_config(data)
  static = all_records(tf, unmasked_dataset(data, 64, False, masked=True))
  dynamic = all_records(tf, pretraining_sources.mask_dataset(
      unmasked_dataset(data, 64, False), config, seed=3))
  # The same instances (create_pretraining_data draws them before any mask)...
  np.testing.assert_array_equal(restore(static), restore(dynamic))
  np.testing.assert_array_equal(static["segment_ids"], dynamic["segment_ids"])
  np.testing.assert_array_equal(static["next_sentence_labels"], dynamic["next_sentence_labels"])
  # ... the same number of predictions per instance, at other positions.
  np.testing.assert_array_equal(static["masked_lm_weights"].sum(1),
                                dynamic["masked_lm_weights"].sum(1))
  assert np.mean([a != b for a, b in zip(position_sets(static), position_sets(dynamic))]) > 0.9
  # Chosen among the tokens of A and B only, never [CLS], [SEP] or padding.
  lengths = dynamic["input_mask"].sum(1)
  rows, slots = np.nonzero(dynamic["masked_lm_weights"])
  positions = dynamic["masked_lm_positions"][rows, slots]
  assert (positions < lengths[rows]).all()
  assert not np.isin(dynamic["masked_lm_ids"][rows, slots], [config.cls_id, config.sep_id]).any()

  # 80/10/10 and the masked ratio with enough predictions: masked_lm_prob 0.15, up to 20 per
  # sequence (Google's defaults), every instance masked with 4 batch keys.
  wide = masking_config(data, max_predictions=20, masked_lm_prob=0.15)
  original = restore(static)
  masked = concatenate([dataclasses.asdict(pretraining_sources.mask_numpy_batch(
      original, static["input_mask"], batch_index, wide, seed=3, rank=0))
                        for batch_index in range(4)])
  masked_ratio = masked["masked_lm_weights"].sum() / (4 * lengths.sum())
  assert abs(masked_ratio - 0.15) < 0.01, masked_ratio
  fractions = replacement_fractions(masked, config.mask_id)
  assert masked["masked_lm_weights"].sum() > 5000
  np.testing.assert_allclose(fractions, [0.8, 0.1, 0.1], atol=0.02)
  # The static data's own split, over its fewer predictions.
  np.testing.assert_allclose(replacement_fractions(static, config.mask_id), [0.8, 0.1, 0.1],
                             atol=0.05)


def test_whole_word_masking_masks_every_piece_of_a_word(tf, data):
  from bert import pretraining_sources
  config = masking_config(data, max_predictions=6, masked_lm_prob=0.2, whole_word=True)
  masked = all_records(tf, pretraining_sources.mask_dataset(
      unmasked_dataset(data, 64, False), config, seed=5))
  original = restore(masked)
  chosen = np.zeros(original.shape, dtype=bool)
  rows, slots = np.nonzero(masked["masked_lm_weights"])
  chosen[rows, masked["masked_lm_positions"][rows, slots]] = True
  continues = config.continues_word[original]
  # Within a word (a piece followed by "##" pieces) all pieces are chosen or none is.
  inside_word = continues[:, 1:] & ~np.isin(original[:, :-1], [config.cls_id, config.sep_id])
  assert inside_word.sum() > 100  # the tiny vocab splits rare words into letters
  np.testing.assert_array_equal(chosen[:, 1:][inside_word], chosen[:, :-1][inside_word])
  assert (chosen[:, 1:] & inside_word).sum() > 20  # multi-piece words were masked


def test_data_checks_tell_masked_from_unmasked_files(data):
  from bert import pretraining_input
  pretraining_input.check_pretraining_files([str(data.unmasked)], SEQ, PRED, data.vocab_size,
                                         masked=False)
  with pytest.raises(ValueError, match=rf"{data.unmasked.name}: record 0 is an unmasked "
                                       r"instance.*pass --dynamic_masking"):
    pretraining_input.check_pretraining_files([str(data.masked), str(data.unmasked)], SEQ, PRED,
                                           data.vocab_size)
  with pytest.raises(ValueError, match=rf"{data.masked.name}: record 0 is already masked.*"
                                       r"--no_masking"):
    pretraining_input.check_pretraining_files([str(data.masked)], SEQ, PRED, data.vocab_size,
                                           masked=False)
  with pytest.raises(ValueError, match=r"input_ids has length 32, expected 64"):
    pretraining_input.check_pretraining_files([str(data.unmasked)], 64, PRED, data.vocab_size,
                                           masked=False)


def test_masking_needs_a_vocab_with_the_special_tokens(tmp_path):
  import tokenization
  from bert import pretraining_data
  with pytest.raises(ValueError, match=r"pass --vocab_file \(WordPiece\) or --spm_model_file"):
    pretraining_data.load_tokenizer_and_vocab(None)
  no_mask = tmp_path / "vocab.txt"
  no_mask.write_text("[PAD]\n[UNK]\n[CLS]\n[SEP]\nthe\n##s\n", encoding="utf-8")
  with pytest.raises(ValueError, match=r"vocab\.txt: the vocabulary lacks \[MASK\]"):
    pretraining_data.masking_config(tokenization.load_vocab(str(no_mask)),
                                        str(no_mask), 0.15, 20, do_whole_word_mask=False)


# ----------------------------------------------------------------------------- raw text

def text_source(data, files, chunk_bytes=4096):
  from bert import pretraining_data
  from bert import pretraining_sources
  tokenizer, vocab, _ = pretraining_data.load_tokenizer_and_vocab(str(data.vocab))
  return pretraining_sources.TextSource(
      files=tuple(map(str, files)), tokenizer=tokenizer, cls_id=vocab["[CLS]"],
      sep_id=vocab["[SEP]"], max_seq_length=SEQ, short_seq_prob=0.1, chunk_bytes=chunk_bytes)


def instance_rows(instances) -> list[tuple]:
  return [tuple(row) for chunk in instances for row in chunk["input_ids"].tolist()]


def test_text_instances_are_sharded_by_rank_and_new_each_epoch(data):
  from bert import pretraining_sources
  one_file = text_source(data, [data.corpus])

  def rows(source, rank, num_ranks, seed=1, num_epochs=1):
    return instance_rows(pretraining_sources.text_instances(source, rank, num_ranks, seed,
                                                            num_epochs))

  # Fewer files than ranks: each rank takes every other chunk.
  rank_0, rank_1 = rows(one_file, 0, 2), rows(one_file, 1, 2)
  assert len(rank_0) > 20 and len(rank_1) > 20
  assert not set(rank_0) & set(rank_1)
  assert rows(one_file, 0, 2) == rank_0  # deterministic per seed and rank
  assert rows(one_file, 0, 2, seed=2) != rank_0
  # A second epoch draws new instances from the same text.
  two_epochs = rows(one_file, 0, 1, num_epochs=2)
  first_epoch = rows(one_file, 0, 1)
  assert two_epochs[:len(first_epoch)] == first_epoch
  assert two_epochs[len(first_epoch):] != first_epoch

  # As many files as ranks: rank 0 reads exactly the first file.
  first = h.write_corpus(data.root / "first.txt", first_line=0, num_lines=300)
  second = h.write_corpus(data.root / "second.txt", first_line=300, num_lines=300)
  two_files = text_source(data, [first, second])
  assert rows(two_files, 0, 2) == rows(text_source(data, [first]), 0, 1)
  assert not set(rows(two_files, 1, 2)) & set(rows(two_files, 0, 2))


def test_text_dataset_batches_masked_features(tf, data):
  from bert import pretraining_sources
  config = masking_config(data)
  dataset = pretraining_sources.text_dataset(text_source(data, [data.corpus]), config,
                                             batch_size=5, is_training=True, rank=1,
                                             num_ranks=2, seed=4)
  batches = [{k: v.numpy() for k, v in b.items()} for b in dataset.take(3)]
  batch = batches[0]
  assert {k: (v.shape, v.dtype.name) for k, v in batch.items()} == {
      "input_ids": ((5, SEQ), "int32"), "input_mask": ((5, SEQ), "int32"),
      "segment_ids": ((5, SEQ), "int32"), "next_sentence_labels": ((5, 1), "int32"),
      "masked_lm_positions": ((5, PRED), "int32"), "masked_lm_ids": ((5, PRED), "int32"),
      "masked_lm_weights": ((5, PRED), "float32")}
  assert (batch["input_ids"][:, 0] == config.cls_id).all()
  assert (batch["masked_lm_weights"].sum(1) >= 1).all()
  assert (batch["input_ids"] == config.mask_id).any()
  again = [{k: v.numpy() for k, v in b.items()} for b in pretraining_sources.text_dataset(
      text_source(data, [data.corpus]), config, batch_size=5, is_training=True, rank=1,
      num_ranks=2, seed=4).take(3)]
  for got, expected in zip(again, batches):
    for name in expected:
      np.testing.assert_array_equal(got[name], expected[name])


def test_text_rank_without_instances_is_an_error(data):
  from bert import pretraining_sources
  small = h.write_corpus(data.root / "small.txt", first_line=0, num_lines=60)
  source = text_source(data, [small], chunk_bytes=1 << 18)  # a single chunk
  assert instance_rows(pretraining_sources.text_instances(source, 0, 2, num_epochs=1))
  with pytest.raises(ValueError, match=r"rank 1 of 2 got no instance from .*small\.txt"):
    list(pretraining_sources.text_instances(source, 1, 2, num_epochs=1))


def test_input_file_and_input_text_file_exclude_each_other(data):
  result = h.run_process(h.run_pretraining_args(data.config, [data.masked], data.root / "both",
                                                input_text_file=data.corpus), timeout=120)
  assert result.returncode == 2  # a usage error
  assert "Exactly one of (input_file, input_text_file)" in result.output


# ------------------------------------------------------------------------------ real runs

def test_only_mlm_loss_trains_without_the_next_sentence_head(tf, data, runs):
  result = runs["only_mlm"].result().check()
  assert "masked LM loss only" in result.output
  metrics = h.logged_metrics(result.output)
  assert sorted(metrics) == [1, 2, 3, 4]
  assert not any(name.startswith("next_sentence") for m in metrics.values() for name in m)
  results = {k: float(v) for k, v in
             tiny.read_results(data.root / "only_mlm" / "eval_results.txt").items()}
  assert sorted(results) == ["global_step", "loss", "masked_lm_accuracy", "masked_lm_loss"]
  assert results["loss"] == results["masked_lm_loss"]
  weights = h.read_tf1_weights(tf, data.root / "only_mlm" / "bert_model.ckpt")
  assert "cls/predictions/output_bias" in weights
  assert not [name for name in weights if name.startswith("cls/seq_relationship")]


def test_dynamic_masking_run(tf, data, runs):
  result = runs["dynamic"].result().check()
  assert "masked while training" in result.output
  assert sorted(h.logged_losses(result.output)) == [1, 2, 3, 4]
  results = {k: float(v) for k, v in
             tiny.read_results(data.root / "dynamic" / "eval_results.txt").items()}
  assert {"masked_lm_loss", "next_sentence_loss", "next_sentence_accuracy"} <= set(results)
  assert np.isfinite(list(results.values())).all()


def test_raw_text_run_learns(data, runs):
  result = runs["text"].result().check()
  assert "1 text file(s), instances and masks made while training" in result.output
  losses = [m["masked_lm_loss"] for _, m in sorted(h.logged_metrics(result.output).items())]
  assert len(losses) == TEXT_STEPS
  # ln(235) = 5.46 at the start; the unigram statistics alone take it well below.
  assert np.mean(losses[:5]) > 5.0
  assert np.mean(losses[-10:]) < np.mean(losses[:5]) - 0.5, losses
  results = {k: float(v) for k, v in
             tiny.read_results(data.root / "text" / "eval_results.txt").items()}
  assert results["global_step"] == TEXT_STEPS
  assert results["masked_lm_loss"] < 5.0
