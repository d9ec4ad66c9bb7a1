"""Unit tests of bert/training.py's Trainer that need no subprocess."""
import numpy as np
import pytest
import tensorflow as tf
import tiny

import modeling
import optimization
from bert import distributed
from bert import training


class _SecondRank(distributed.SingleProcess):
  """Rank 1 of a 2-rank world whose collectives are identities (rank 0's values kept)."""
  rank = 1
  size = 2
  is_chief = False


def _tiny_trainer(world, output_dir):
  config = tiny.config(50, hidden_size=16, num_hidden_layers=1, intermediate_size=32)
  model = modeling.BertPretrainingModel(config)
  optimizer = optimization.create_optimizer(1e-3, 10, 0)
  loop = training.LoopConfig(output_dir=str(output_dir), num_train_steps=10)
  return training.Trainer(model, optimizer, lambda *a, **k: {}, world, loop)


def test_each_rank_gets_its_own_dropout_stream(tmp_path):
  chief = _tiny_trainer(distributed.SingleProcess(), tmp_path / "a")
  second = _tiny_trainer(_SecondRank(), tmp_path / "b")
  for trainer in (chief, second):
    assert trainer.random_state, "the model's dropout has seed generators"
  # Same starting state on both, as after the broadcast from rank 0.
  for ours, theirs in zip(second.random_state, chief.random_state):
    ours.assign(theirs)
  chief.restore_or_initialize()
  second.restore_or_initialize()
  for ours, theirs in zip(second.random_state, chief.random_state):
    np.testing.assert_array_equal(ours.numpy(), theirs.numpy() + np.array([1, 0]))


# ------------------------------------------------------------------------ the training step

class RecordingWorld(distributed.SingleProcess):
  """One process whose all-reduce counts its calls, keeps the last gradients it was given,
  and returns `factor` times them (a stand-in for what averaging over ranks returns)."""

  def __init__(self, variables, factor=1.0):
    self.calls = tf.Variable(0, dtype=tf.int64)
    self.received = [tf.Variable(tf.zeros(v.shape, tf.float32)) for v in variables]
    self.factor = factor
    self.groups = "never called"

  def allreduce_gradients(self, grads, groups=None):
    self.calls.assign_add(1)
    self.groups = groups
    reduced = []
    for slot, grad in zip(self.received, grads):
      if grad is None:
        reduced.append(None)
        continue
      grad = tf.convert_to_tensor(grad)
      slot.assign(tf.cast(grad, tf.float32))
      reduced.append(grad * self.factor)
    return reduced


BATCH, SEQ, PREDICTIONS, VOCAB = 2, 8, 2, 50


def _pretraining_model():
  import keras
  keras.utils.set_random_seed(1)
  return modeling.BertPretrainingModel(
      tiny.config(VOCAB, dropout=0.0, hidden_size=16, num_hidden_layers=1, intermediate_size=32))


def _features(batch, seed):
  """A batch of pre-training features; every prediction counts (equal weights per batch, so
  the mean over micro-batches is the mean over their concatenation)."""
  rng = np.random.default_rng(seed)
  return {"input_ids": rng.integers(5, VOCAB, (batch, SEQ)).astype(np.int32),
          "input_mask": np.ones((batch, SEQ), np.int32),
          "segment_ids": np.repeat([[0] * 4 + [1] * 4], batch, axis=0).astype(np.int32),
          "masked_lm_positions": rng.integers(1, SEQ, (batch, PREDICTIONS)).astype(np.int32),
          "masked_lm_ids": rng.integers(5, VOCAB, (batch, PREDICTIONS)).astype(np.int32),
          "masked_lm_weights": np.ones((batch, PREDICTIONS), np.float32),
          "next_sentence_labels": rng.integers(0, 2, (batch, 1)).astype(np.int32)}


def _step_trainer(tmp_path, num_accumulation_steps=1, post_accumulation=True, factor=1.0,
                  weights=None, overlap=True):
  """A Trainer of one step over the tiny model, with a RecordingWorld; `weights` start it."""
  model = _pretraining_model()
  if weights is not None:
    model.set_weights(weights)
  world = RecordingWorld(model.trainable_variables, factor)
  loop = training.LoopConfig(output_dir=str(tmp_path), num_train_steps=1,
                             num_accumulation_steps=num_accumulation_steps,
                             allreduce_post_accumulation=post_accumulation,
                             overlap_allreduce=overlap)
  trainer = training.Trainer(
      model, optimization.create_optimizer(1e-3, 10, 0),
      lambda m, f, training: modeling.pretraining_losses(m(f, training=training), f),
      world, loop)
  return trainer, world


def _stacked(*batches):
  return {k: tf.constant(np.stack([b[k] for b in batches])) for k in batches[0]}


def _received(world):
  return [v.numpy() for v in world.received]


def test_accumulated_gradients_are_reduced_once_and_equal_the_whole_batch(tmp_path):
  first, second = _features(BATCH, 1), _features(BATCH, 2)
  whole = {k: np.concatenate([first[k], second[k]]) for k in first}
  accumulated, accumulated_world = _step_trainer(tmp_path / "a", num_accumulation_steps=2)
  single, single_world = _step_trainer(tmp_path / "b",
                                       weights=accumulated.model.get_weights())
  accumulated_metrics = accumulated._train_step(_stacked(first, second))
  single_metrics = single._train_step(_stacked(whole))
  # Post-accumulation: one all-reduce per optimizer step, of the micro-batches' mean.
  assert int(accumulated_world.calls.numpy()) == 1
  for ours, theirs in zip(_received(accumulated_world), _received(single_world)):
    np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-6)
  np.testing.assert_allclose(accumulated_metrics["gradient_norm"],
                             single_metrics["gradient_norm"], rtol=1e-4)
  np.testing.assert_allclose(accumulated_metrics["loss"], single_metrics["loss"], rtol=1e-5)
  for ours, theirs in zip(accumulated.model.get_weights(), single.model.get_weights()):
    np.testing.assert_allclose(ours, theirs, atol=1e-6)
  assert int(accumulated.step.numpy()) == int(single.step.numpy()) == 1


def test_without_post_accumulation_every_micro_batch_is_reduced(tmp_path):
  first, second = _features(BATCH, 1), _features(BATCH, 2)
  trainer, world = _step_trainer(tmp_path / "a", num_accumulation_steps=2,
                                 post_accumulation=False)
  alone, alone_world = _step_trainer(tmp_path / "b", weights=trainer.model.get_weights())
  trainer._train_step(_stacked(first, second))
  alone._train_step(_stacked(second))
  assert int(world.calls.numpy()) == 2
  # The last all-reduce saw the second micro-batch's own gradients, not a running sum.
  for ours, theirs in zip(_received(world), _received(alone_world)):
    np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-6)


def test_the_update_uses_the_reduced_gradients(tmp_path):
  batch = _stacked(_features(BATCH, 3))
  local, _ = _step_trainer(tmp_path / "a")
  doubled, _ = _step_trainer(tmp_path / "b", factor=2.0, weights=local.model.get_weights())
  local_norm = float(local._train_step(batch)["gradient_norm"])
  doubled_norm = float(doubled._train_step(batch)["gradient_norm"])
  # The norm is taken of what the all-reduce returned, which the optimizer then applies.
  assert doubled_norm == pytest.approx(2 * local_norm, rel=1e-5)


def test_layer_groups_follow_the_backward_pass():
  model = _pretraining_model()
  paths = [v.path for v in model.trainable_variables]
  groups = training.layer_groups(model.trainable_variables)
  assert sorted(i for group in groups for i in group) == list(range(len(paths)))
  first, *layers, last = [[paths[i] for i in group] for group in groups]
  assert all(p.startswith(("cls/", "bert/pooler/")) for p in first), first
  assert [{p.split("/")[2] for p in layer} for layer in layers] == [{"layer_0"}]
  assert all(p.startswith("bert/embeddings/") for p in last), last


@pytest.mark.parametrize("post_accumulation", [True, False])
def test_overlapped_allreduce_gives_the_same_step(tmp_path, post_accumulation):
  """Per-layer all-reduces inside the backward pass's graph, or one after it: the averaged
  gradients and the updated weights are the same."""
  batches = _stacked(_features(BATCH, 4), _features(BATCH, 5))
  overlapped, overlapped_world = _step_trainer(
      tmp_path / "a", num_accumulation_steps=2, post_accumulation=post_accumulation)
  grouped, grouped_world = _step_trainer(
      tmp_path / "b", num_accumulation_steps=2, post_accumulation=post_accumulation,
      overlap=False, weights=overlapped.model.get_weights())
  overlapped._train_step(batches)
  grouped._train_step(batches)
  assert overlapped_world.groups == training.layer_groups(overlapped.variables)
  assert grouped_world.groups is None
  assert int(overlapped_world.calls.numpy()) == int(grouped_world.calls.numpy())
  for ours, theirs in zip(_received(overlapped_world), _received(grouped_world)):
    np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-7)
  for ours, theirs in zip(overlapped.model.get_weights(), grouped.model.get_weights()):
    np.testing.assert_allclose(ours, theirs, atol=1e-6)
