"""length_buckets: batches cut to bucket lengths, outputs back in input order, training
batches grouped by length; and the models ignore the padding that the cut removes."""
import numpy as np
import pytest
import tensorflow as tf
import tiny

import modeling
from bert import distributed
from bert import finetuning
from bert import length_buckets
from bert import run_setup
from bert import task_models
from bert import training


def _mask(lengths, max_seq_length):
  return (np.arange(max_seq_length)[None, :] < np.asarray(lengths)[:, None]).astype(np.int32)


def test_bucket_lengths():
  assert length_buckets.bucket_lengths(128) == [16, 32, 48, 64, 80, 96, 112, 128]
  assert length_buckets.bucket_lengths(384) == list(range(48, 385, 48))
  assert length_buckets.bucket_lengths(10) == [2, 4, 6, 8, 10]
  assert length_buckets.bucket_lengths(3) == [1, 2, 3]
  assert [length_buckets.padded_length(n, 128) for n in (0, 1, 16, 17, 127, 128)] == [
      16, 16, 16, 32, 128, 128]


def test_sequence_lengths_reads_up_to_the_last_real_token():
  mask = np.array([[1, 1, 1, 0, 0], [1, 0, 0, 0, 0], [0, 0, 0, 0, 0], [1, 1, 1, 1, 1],
                   [1, 0, 1, 0, 0]])
  np.testing.assert_array_equal(length_buckets.sequence_lengths(mask), [3, 1, 0, 5, 3])


def test_prediction_batches_sorted_and_covering():
  rng = np.random.default_rng(0)
  lengths = rng.integers(3, 129, size=1000)
  batches = length_buckets.prediction_batches(lengths, 32, 128)
  order = np.concatenate([indices for indices, _ in batches])
  assert sorted(order.tolist()) == list(range(1000))
  np.testing.assert_array_equal(lengths[order], np.sort(lengths))
  for indices, length in batches:
    assert length in length_buckets.bucket_lengths(128)
    assert lengths[indices].max() <= length < lengths[indices].max() + 16
  cut_tokens = sum(len(indices) * length for indices, length in batches)
  assert cut_tokens < lengths.sum() + 1000 * 16  # under a bucket step of padding each

  google = length_buckets.prediction_batches(lengths, 32, 128, pad_to_max_length=True)
  assert [length for _, length in google] == [128] * 32
  np.testing.assert_array_equal(np.concatenate([i for i, _ in google]), np.arange(1000))


@pytest.mark.parametrize("pad_to_max_length", [False, True])
def test_predict_in_order_gives_input_order(pad_to_max_length):
  rng = np.random.default_rng(1)
  lengths = rng.integers(1, 21, size=50)
  inputs = {"input_ids": rng.integers(1, 100, size=(50, 20)).astype(np.int32),
            "input_mask": _mask(lengths, 20)}
  inputs["input_ids"] *= inputs["input_mask"]
  seen_lengths = set()

  def predict_fn(features):
    seen_lengths.add(features["input_ids"].shape[1])
    return {"sum": features["input_ids"].sum(axis=1), "first": features["input_ids"][:, 0]}

  outputs = length_buckets.predict_in_order(predict_fn, inputs, 8, pad_to_max_length,
                                            outputs_per_token=False)
  np.testing.assert_array_equal(outputs["sum"], inputs["input_ids"].sum(axis=1))
  np.testing.assert_array_equal(outputs["first"], inputs["input_ids"][:, 0])
  per_token = length_buckets.predict_in_order(lambda f: f["input_ids"] * 2, inputs, 8,
                                              pad_to_max_length, outputs_per_token=True)
  np.testing.assert_array_equal(per_token, inputs["input_ids"] * 2)  # zero past the cut
  if pad_to_max_length:
    assert seen_lengths == {20}
  else:
    assert len(seen_lengths) > 1 and seen_lengths <= set(length_buckets.bucket_lengths(20))


def test_training_batches_group_lengths_and_cover_each_epoch():
  rng = np.random.default_rng(2)
  batch_size, num_groups = 8, 3
  n = batch_size * length_buckets.GROUP_SIZE * num_groups
  lengths = rng.integers(1, 129, size=n)
  batches = length_buckets.training_batches(lengths, batch_size, seed=7)
  epoch = [next(batches) for _ in range(n // batch_size)]
  assert sorted(np.concatenate(epoch).tolist()) == list(range(n))  # each example once
  spreads = [np.ptp(lengths[b]) for b in epoch]
  assert np.mean(spreads) < 8  # random batches of 8 spread over ~100 tokens
  longest = [lengths[b].max() for b in epoch]
  # The batches of a group come shuffled: not in length order.
  assert longest != sorted(longest) and longest != sorted(longest, reverse=True)
  again = length_buckets.training_batches(lengths, batch_size, seed=7)
  assert all(np.array_equal(next(again), b) for b in epoch)  # seeded: resumable
  second_epoch = [next(batches) for _ in range(n // batch_size)]
  assert sorted(np.concatenate(second_epoch).tolist()) == list(range(n))
  assert not all(np.array_equal(a, b) for a, b in zip(epoch, second_epoch))


def test_small_training_sets_keep_epochs_apart():
  lengths = np.arange(20)
  batches = length_buckets.training_batches(lengths, 5, seed=0)
  for _ in range(3):
    assert sorted(np.concatenate([next(batches) for _ in range(4)]).tolist()) == list(
        range(20))


# ----------------------------------------------------- the models ignore the padding

def _features(rng, lengths, max_seq_length):
  mask = _mask(lengths, max_seq_length)
  return {"input_ids": rng.integers(1, 100, size=mask.shape).astype(np.int32) * mask,
          "input_mask": mask,
          "segment_ids": (np.arange(max_seq_length)[None] >= 3).astype(np.int32) * mask}


@pytest.mark.parametrize("model_type", ["classifier", "token_classifier", "squad", "encoder"])
def test_outputs_equal_with_and_without_the_padding(model_type):
  tf.keras.utils.set_random_seed(3)
  config = tiny.config(100, dropout=0.0)
  model = {"classifier": lambda: task_models.BertClassifier(config, 3),
           "token_classifier": lambda: task_models.BertTokenClassifier(config, 5),
           "squad": lambda: task_models.BertSquad(config),
           "encoder": lambda: modeling.BertModel(config)}[model_type]()
  rng = np.random.default_rng(4)
  lengths = np.array([5, 9, 12, 3])
  full = _features(rng, lengths, 64)
  cut = length_buckets.take(full, np.arange(4), length_buckets.padded_length(12, 64))
  assert cut["input_ids"].shape == (4, 16)
  if model_type == "encoder":
    full["token_type_ids"] = full.pop("segment_ids")
    cut["token_type_ids"] = cut.pop("segment_ids")
  padded, short = model(full, training=False), model(cut, training=False)
  if model_type == "encoder":
    padded = {"pooled": padded["pooled_output"], "sequence": padded["sequence_output"]}
    short = {"pooled": short["pooled_output"], "sequence": short["sequence_output"]}
  for key, value in (padded.items() if isinstance(padded, dict) else [("out", padded)]):
    other = np.asarray(short[key] if isinstance(short, dict) else short)
    value = np.asarray(value)
    if value.ndim >= 2 and value.shape[1] == 64:
      for row, length in enumerate(lengths):  # the real positions
        np.testing.assert_allclose(other[row, :length], value[row, :length], atol=1e-5)
    else:
      np.testing.assert_allclose(other, value, atol=1e-5)


def test_training_gradients_equal_with_and_without_the_padding():
  tf.keras.utils.set_random_seed(5)
  model = task_models.BertClassifier(tiny.config(100, dropout=0.0), 2)
  rng = np.random.default_rng(6)
  full = _features(rng, np.array([4, 7, 10, 2]), 64)
  full["label_ids"] = np.array([0, 1, 1, 0], np.int32)
  cut = length_buckets.take(full, np.arange(4), 16)

  def gradients(features):
    with tf.GradientTape() as tape:
      loss = task_models.classifier_loss_fn(model, features, training=True)["loss"]
    return loss, tape.gradient(loss, model.trainable_variables)

  (loss_full, grads_full), (loss_cut, grads_cut) = gradients(full), gradients(cut)
  np.testing.assert_allclose(loss_cut, loss_full, rtol=1e-6)
  for variable, a, b in zip(model.trainable_variables, grads_full, grads_cut):
    np.testing.assert_allclose(tf.convert_to_tensor(b), tf.convert_to_tensor(a), atol=1e-6,
                               err_msg=variable.path)


def test_training_traces_the_step_once_for_every_length(tmp_path):
  """Steps of several lengths run on one trace of the step, and the jit-compiled update sees
  dense gradients, whose shapes do not depend on the length (no compile per length)."""
  tf.keras.utils.set_random_seed(7)
  rng = np.random.default_rng(8)
  arrays = _features(rng, rng.integers(2, 64, size=48), 64)
  arrays["label_ids"] = rng.integers(0, 2, size=48).astype(np.int32)
  options = run_setup.TrainingOptions(output_dir=str(tmp_path), learning_rate=1e-3,
                                      train_batch_size=4, max_seq_length=64)
  model = task_models.BertClassifier(tiny.config(100), 2)
  trainer = run_setup.build_trainer(model, task_models.classifier_loss_fn,
                                    distributed.SingleProcess(), "fp32", options,
                                    num_train_steps=8, num_warmup_steps=0)
  lengths = set()

  class RecordLengths(training.Callback):
    def on_step_begin(self, trainer, step, features):
      lengths.add(features["input_ids"].shape[-1])

  trainer.callbacks.append(RecordLengths())
  trainer.train(finetuning.train_dataset(arrays, 4, 1, 0, 1, seed=9))
  assert len(lengths) >= 3, lengths
  assert trainer._train_step.experimental_get_tracing_count() == 1
  assert trainer._apply_gradients.experimental_get_tracing_count() == 1
