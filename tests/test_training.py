"""Unit tests of training.py's Trainer that need no subprocess."""
import numpy as np

import distributed
import modeling
import optimization
import training


class _SecondRank(distributed.SingleProcess):
  """Rank 1 of a 2-rank world whose collectives are identities (rank 0's values kept)."""
  rank = 1
  size = 2
  is_chief = False


def _tiny_trainer(world, output_dir):
  config = modeling.BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=1,
                               num_attention_heads=2, intermediate_size=32)
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
