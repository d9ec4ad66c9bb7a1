"""optimization.py against a float64 numpy version of the issue's equations, and the pieces
the training loop composes: schedule, clipping after unscaling, loss scaling, gradient
accumulation and checkpointing.

Run with -s to see the measured max abs error of each optimizer against numpy.
"""
import copy

import keras
import numpy as np
import pytest
import tensorflow as tf

import optimization

BETA_1, BETA_2, EPSILON = 0.9, 0.999, 1e-6


# ----------------------------------------------------------------------------------------
# Numpy float64 reference of the equations.

def reference_lr(step, init_lr, num_train_steps, num_warmup_steps, power):
  if step < num_warmup_steps:
    return init_lr * step / num_warmup_steps
  return init_lr * (1.0 - min(step, num_train_steps) / num_train_steps) ** power


def reference_train(optimizer_type, weights, grad_steps, *, init_lr, num_train_steps,
                    num_warmup_steps, power, weight_decay_rate, decays, adapts, clip_norm):
  """weights: {path: float64 array}; grad_steps: list of {path: array}; decays/adapts: {path: bool}.

  Returns the weights after len(grad_steps) updates (step = 0, 1, ...; t = step + 1).
  """
  w = {p: np.array(x, np.float64) for p, x in weights.items()}
  m = {p: np.zeros_like(x) for p, x in w.items()}
  v = {p: np.zeros_like(x) for p, x in w.items()}
  for step, grads in enumerate(grad_steps):
    grads = {p: np.asarray(g, np.float64) for p, g in grads.items()}
    norm = np.sqrt(sum(np.sum(g * g) for g in grads.values()))
    grads = {p: g * clip_norm / max(norm, clip_norm) for p, g in grads.items()}
    lr = reference_lr(step, init_lr, num_train_steps, num_warmup_steps, power)
    t = step + 1
    for p, g in grads.items():
      m[p] = BETA_1 * m[p] + (1 - BETA_1) * g
      v[p] = BETA_2 * v[p] + (1 - BETA_2) * g * g
      if optimizer_type in ("adam", "lamb"):
        u = m[p] / (np.sqrt(v[p]) + EPSILON)
      else:
        m_hat = m[p] / (1 - BETA_1 ** (t + 1))
        v_hat = v[p] / (1 - BETA_2 ** t)
        m_bar = BETA_1 * m_hat + (1 - BETA_1) * g / (1 - BETA_1 ** t)
        u = m_bar / (np.sqrt(v_hat) + EPSILON)
      if decays[p]:
        u = u + weight_decay_rate * w[p]
      r = 1.0
      if optimizer_type in ("lamb", "nlamb") and adapts[p]:
        w_norm, u_norm = np.linalg.norm(w[p]), np.linalg.norm(u)
        r = w_norm / u_norm if w_norm > 0 and u_norm > 0 else 1.0
      w[p] = w[p] - lr * r * u
  return w


def bert_named_variables():
  """Keras variables whose paths look like BERT's: dense/kernel, dense/bias, LayerNorm/*."""
  dense = keras.layers.Dense(4, name="dense", bias_initializer="zeros")
  dense.build((None, 3))
  layer_norm = keras.layers.LayerNormalization(name="LayerNorm")
  layer_norm.build((None, 4))
  dense.kernel.assign(np.random.default_rng(0).normal(size=(3, 4)).astype(np.float32))
  return dense.trainable_variables + layer_norm.trainable_variables


# Each case: (optimizer_type, exclude_from_layer_adaptation). The ("LayerNorm",) cases make
# dense/bias adapted but not decayed, starting from ||w|| = 0 (the r = 1 fallback).
EQUATION_CASES = [("adam", None), ("nadam", None), ("lamb", None), ("lamb", ("LayerNorm",)),
                  ("nlamb", None), ("nlamb", ("LayerNorm",))]


@pytest.mark.parametrize("optimizer_type,exclude_from_layer_adaptation", EQUATION_CASES)
def test_optimizer_matches_numpy_equations(optimizer_type, exclude_from_layer_adaptation):
  variables = bert_named_variables()
  paths = [v.path for v in variables]
  assert paths == ["dense/kernel", "dense/bias", "LayerNorm/gamma", "LayerNorm/beta"]
  settings = dict(init_lr=0.05, num_train_steps=14, num_warmup_steps=4, weight_decay_rate=0.1)
  optimizer = optimization.create_optimizer(
      optimizer_type=optimizer_type, clip_norm=1.0,
      exclude_from_layer_adaptation=exclude_from_layer_adaptation, **settings)
  rng = np.random.default_rng(1)
  # Alternate small and large gradients so global-norm clipping is both idle and active.
  grad_steps = [{p: (rng.normal(size=v.shape) * (0.05 if step % 2 else 0.6)).astype(np.float32)
                 for p, v in zip(paths, variables)} for step in range(14)]
  initial = {p: v.numpy() for p, v in zip(paths, variables)}

  @tf.function
  def train_step(grads):
    optimizer.apply(grads, variables)

  for grads in grad_steps:
    train_step([tf.constant(grads[p]) for p in paths])

  decays = {p: not any(s in p for s in ("LayerNorm", "layer_norm", "bias")) for p in paths}
  adapt_exclusions = exclude_from_layer_adaptation or ("LayerNorm", "layer_norm", "bias")
  adapts = {p: not any(s in p for s in adapt_exclusions) for p in paths}
  expected = reference_train(
      optimizer_type, initial, grad_steps, power=0.5 if "lamb" in optimizer_type else 1.0,
      decays=decays, adapts=adapts, clip_norm=1.0, **settings)
  errors = {p: float(np.max(np.abs(v.numpy() - expected[p]))) for p, v in zip(paths, variables)}
  max_error = max(errors.values())
  print(f"\n{optimizer_type} (exclude_from_layer_adaptation={exclude_from_layer_adaptation}): "
        f"max abs error vs numpy float64 after 14 steps = {max_error:.3e}")
  assert int(optimizer.iterations.numpy()) == 14
  # Every variable moved, so the comparison is not trivially between unchanged weights.
  for p, v in zip(paths, variables):
    assert np.max(np.abs(v.numpy() - initial[p])) > 1e-3, p
  assert max_error < 1e-6, errors


def test_exclusions_match_substrings_of_variable_path():
  with keras.name_scope("encoder"), keras.name_scope("layer_0"), \
      keras.name_scope("attention"), keras.name_scope("output"):
    layer_norm = keras.layers.LayerNormalization(name="LayerNorm")
    layer_norm.build((None, 4))
  dense = keras.layers.Dense(4, name="dense")
  dense.build((None, 4))
  variables = layer_norm.trainable_variables + dense.trainable_variables
  assert variables[0].path == "encoder/layer_0/attention/output/LayerNorm/gamma"
  optimizer = optimization.create_optimizer(1e-3, 10, 1, "lamb",
                                            exclude_from_layer_adaptation=("gamma",))
  optimizer.build(variables)
  # gamma, beta, dense/kernel, dense/bias
  assert optimizer._decays == [False, False, True, False]
  assert optimizer._adapts == [False, True, True, True]


# ----------------------------------------------------------------------------------------
# Learning-rate schedule.

@pytest.mark.parametrize("optimizer_type,power", [("adam", 1.0), ("nadam", 1.0),
                                                  ("lamb", 0.5), ("nlamb", 0.5)])
def test_schedule_values_at_chosen_steps(optimizer_type, power):
  optimizer = optimization.create_optimizer(1e-3, 100, 10, optimizer_type)
  expected = {0: 0.0, 1: 1e-4, 5: 5e-4, 9: 9e-4, 10: 1e-3 * 0.9 ** power,
              55: 1e-3 * 0.45 ** power, 99: 1e-3 * 0.01 ** power, 100: 0.0, 150: 0.0}
  for step, lr in expected.items():
    optimizer.iterations.assign(step)
    np.testing.assert_allclose(float(optimizer.learning_rate), lr, rtol=1e-6, atol=1e-12,
                               err_msg=f"step {step}")


def test_poly_power_override_and_config_round_trip():
  optimizer = optimization.create_optimizer(2e-3, 40, 0, "lamb", poly_power=2.0)
  optimizer.iterations.assign(0)
  np.testing.assert_allclose(float(optimizer.learning_rate), 2e-3, rtol=1e-6)
  optimizer.iterations.assign(30)
  np.testing.assert_allclose(float(optimizer.learning_rate), 2e-3 * 0.25 ** 2, rtol=1e-6)

  schedule = optimization.WarmupPolynomialDecay(1e-3, 100, 10, power=0.5)
  restored = keras.optimizers.schedules.deserialize(
      keras.optimizers.schedules.serialize(schedule))
  assert isinstance(restored, optimization.WarmupPolynomialDecay)
  assert restored.get_config() == schedule.get_config()
  config = optimizer.get_config()
  clone = optimization.LAMB.from_config(copy.deepcopy(config))
  assert clone.get_config() == config


def test_invalid_optimizer_type_lists_valid_values():
  with pytest.raises(ValueError, match="adam, lamb, nadam, nlamb.*'adamw'"):
    optimization.create_optimizer(1e-3, 10, 1, optimizer_type="adamw")


# ----------------------------------------------------------------------------------------
# Clipping after unscaling.

@pytest.mark.parametrize("true_norm", [0.5, 3.0])
def test_clipping_sees_unscaled_gradients(true_norm):
  """A gradient scaled by 2^12 must be clipped exactly as its unscaled self would be."""
  rng = np.random.default_rng(2)
  raw = [rng.normal(size=(3, 4)), rng.normal(size=(4,))]
  norm = np.sqrt(sum(np.sum(g * g) for g in raw))
  true_grads = [(g * true_norm / norm).astype(np.float32) for g in raw]

  def run(loss_scale, grads):
    dense = keras.layers.Dense(4, name="dense")
    dense.build((None, 3))
    dense.kernel.assign(np.ones((3, 4), np.float32))
    optimizer = optimization.create_optimizer(0.1, 10, 0, "lamb", loss_scale=loss_scale)
    optimizer.apply([tf.constant(g) for g in grads], dense.trainable_variables)
    return [v.numpy() for v in dense.trainable_variables + optimizer.variables]

  scale = 2.0 ** 12
  scaled = run(optimization.DynamicLossScale(initial_scale=scale),
               [g * np.float32(scale) for g in true_grads])
  unscaled = run(None, true_grads)
  for a, b in zip(scaled, unscaled):
    np.testing.assert_array_equal(a, b)
  # First-moment slot = (1 - beta_1) * clipped gradient: shows whether clipping happened.
  kernel_m = scaled[3]
  np.testing.assert_allclose(kernel_m, 0.1 * true_grads[0] * min(1.0, 1.0 / true_norm),
                             rtol=1e-5)


# ----------------------------------------------------------------------------------------
# Gradient accumulation.

def tiny_model(seed=3):
  keras.utils.set_random_seed(seed)
  return keras.Sequential([keras.Input((6,)), keras.layers.Dense(8, "tanh", name="dense"),
                           keras.layers.Dense(1, name="output")])


def mse(model, x, y):
  return keras.ops.mean(keras.ops.square(model(x) - y))


@pytest.mark.parametrize("num_micro_batches", [2, 4])
def test_accumulation_equals_one_step_on_concatenated_batch(num_micro_batches):
  full_model, accumulated_model = tiny_model(), tiny_model()
  full_vars = full_model.trainable_variables
  accumulated_vars = accumulated_model.trainable_variables
  full_opt = optimization.create_optimizer(0.01, 10, 0, "lamb")
  accumulated_opt = optimization.create_optimizer(0.01, 10, 0, "lamb")
  accumulator = optimization.GradientAccumulator(accumulated_vars)

  @tf.function
  def full_step(x, y):
    with tf.GradientTape() as tape:
      loss = mse(full_model, x, y)
    grads = tape.gradient(loss, full_vars)
    full_opt.apply(grads, full_vars)
    return grads

  @tf.function
  def accumulate(x, y):
    with tf.GradientTape() as tape:
      loss = mse(accumulated_model, x, y)
    accumulator.accumulate(tape.gradient(loss, accumulated_vars))

  @tf.function
  def apply_accumulated():
    grads = accumulator.gradients()
    accumulated_opt.apply(grads, accumulated_vars)
    accumulator.reset()
    return grads

  rng = np.random.default_rng(4)
  for _ in range(3):
    x = rng.normal(size=(8, 6)).astype(np.float32)
    y = rng.normal(size=(8, 1)).astype(np.float32)
    full_grads = full_step(x, y)
    for x_part, y_part in zip(np.split(x, num_micro_batches), np.split(y, num_micro_batches)):
      accumulate(x_part, y_part)
    assert int(accumulator.num_micro_batches.numpy()) == num_micro_batches
    accumulated_grads = apply_accumulated()
    for a, b in zip(accumulated_grads, full_grads):
      assert a.dtype == tf.float32
      np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5, atol=1e-7)
    assert int(accumulator.num_micro_batches.numpy()) == 0
  assert int(accumulated_opt.iterations.numpy()) == 3
  for a, b in zip(accumulated_vars, full_vars):
    np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5, atol=1e-6)


def test_accumulators_are_float32_under_mixed_precision():
  """mixed_float16 keeps float32 variables; a pure float16 layer hands back float16 grads."""
  keras.utils.set_random_seed(5)
  model = keras.Sequential([keras.Input((6,)),
                            keras.layers.Dense(8, name="dense", dtype="mixed_float16"),
                            keras.layers.Dense(2, name="output", dtype="float16")])
  accumulator = optimization.GradientAccumulator(model.trainable_variables)
  x = tf.constant(np.random.default_rng(5).normal(size=(2, 6)), tf.float32)
  with tf.GradientTape() as tape:
    output = model(x)
    assert output.dtype == tf.float16
    loss = keras.ops.mean(keras.ops.cast(output, "float32"))
  grads = tape.gradient(loss, model.trainable_variables)
  assert [g.dtype for g in grads] == [tf.float32] * 2 + [tf.float16] * 2
  accumulator.accumulate(grads)
  accumulator.accumulate(grads)
  sums = [v for v in accumulator.variables if v.dtype.is_floating]
  assert len(sums) == 4 and all(v.dtype == tf.float32 for v in sums)
  for mean, grad in zip(accumulator.gradients(), grads):
    assert mean.dtype == tf.float32
    np.testing.assert_allclose(mean.numpy(), tf.cast(grad, tf.float32).numpy(), rtol=1e-6)


# ----------------------------------------------------------------------------------------
# Dynamic loss scaling.

def test_fp16_overflow_skips_step_and_lowers_scale():
  """A real float16 overflow: scale 2^30 makes the fp16 backward pass produce Inf."""
  keras.utils.set_random_seed(6)
  model = keras.Sequential([keras.Input((6,)),
                            keras.layers.Dense(8, name="dense", dtype="mixed_float16")])
  variables = model.trainable_variables
  optimizer = optimization.create_optimizer(
      0.01, 10, 0, "lamb", loss_scale=optimization.DynamicLossScale(initial_scale=2.0 ** 30))
  optimizer.build(variables)
  before = [v.numpy() for v in variables + optimizer.variables]

  @tf.function
  def train_step(x):
    with tf.GradientTape() as tape:
      loss = keras.ops.sum(keras.ops.square(keras.ops.cast(model(x), "float32")))
      scaled_loss = optimizer.scale_loss(loss)
    grads = tape.gradient(scaled_loss, variables)
    optimizer.apply(grads, variables)
    return optimization.all_finite(grads)

  assert not bool(train_step(tf.fill((4, 6), 30.0)))
  for a, b in zip(before, [v.numpy() for v in variables + optimizer.variables]):
    np.testing.assert_array_equal(a, b)
  assert int(optimizer.iterations.numpy()) == 0
  assert float(optimizer.loss_scale.scale.numpy()) == 2.0 ** 29


def test_loss_scale_skips_non_finite_steps_and_recovers():
  variables = bert_named_variables()
  loss_scale = optimization.DynamicLossScale(initial_scale=2.0 ** 8, growth_interval=3)
  optimizer = optimization.create_optimizer(0.01, 20, 0, "adam", loss_scale=loss_scale)
  rng = np.random.default_rng(7)

  @tf.function
  def apply(grads):
    optimizer.apply(grads, variables)

  def grads(poison=None):
    values = [rng.normal(size=v.shape).astype(np.float32) * 2.0 ** 8 for v in variables]
    if poison is not None:
      values[1][0] = poison
    return [tf.constant(g) for g in values]

  apply(grads())
  assert int(optimizer.iterations.numpy()) == 1
  assert int(loss_scale.good_steps.numpy()) == 1
  for poison, expected_scale in [(np.inf, 2.0 ** 7), (np.nan, 2.0 ** 6)]:
    state = [v.numpy() for v in variables + optimizer.variables]
    apply(grads(poison))
    for a, b in zip(state, [v.numpy() for v in variables + optimizer.variables]):
      np.testing.assert_array_equal(a, b)   # weights, slots and iterations untouched
    assert int(optimizer.iterations.numpy()) == 1
    assert float(loss_scale.scale.numpy()) == expected_scale
    assert int(loss_scale.good_steps.numpy()) == 0
  # Growth after growth_interval consecutive finite steps, not before.
  for step, expected_scale in [(1, 2.0 ** 6), (2, 2.0 ** 6), (3, 2.0 ** 7), (4, 2.0 ** 7)]:
    apply(grads())
    assert float(loss_scale.scale.numpy()) == expected_scale, step
  assert int(optimizer.iterations.numpy()) == 5
  assert all(np.all(np.isfinite(v.numpy())) for v in variables)


def test_loss_scale_never_drops_below_min_scale():
  loss_scale = optimization.DynamicLossScale(initial_scale=2.0, min_scale=1.0)
  for _ in range(3):
    loss_scale.update(tf.constant(False))
  assert float(loss_scale.scale.numpy()) == 1.0


# ----------------------------------------------------------------------------------------
# Checkpointing.

class Training:
  """Model + optimizer (loss scale) + accumulator, driven micro-batch by micro-batch."""

  def __init__(self, optimizer_type):
    self.model = tiny_model(seed=8)
    self.variables = self.model.trainable_variables
    self.optimizer = optimization.create_optimizer(
        0.02, 12, 2, optimizer_type,
        loss_scale=optimization.DynamicLossScale(initial_scale=2.0 ** 4, growth_interval=3))
    self.optimizer.build(self.variables)
    self.accumulator = optimization.GradientAccumulator(self.variables)
    self.checkpoint = tf.train.Checkpoint(model=self.model, optimizer=self.optimizer,
                                          accumulator=self.accumulator)
    self.accumulate = tf.function(self._accumulate)
    self.apply = tf.function(self._apply)

  def _accumulate(self, x, y):
    with tf.GradientTape() as tape:
      scaled_loss = self.optimizer.scale_loss(mse(self.model, x, y))
    self.accumulator.accumulate(tape.gradient(scaled_loss, self.variables))

  def _apply(self):
    self.optimizer.apply(self.accumulator.gradients(), self.variables)
    self.accumulator.reset()

  def run(self, micro_batches, num_micro_batches=2):
    for index, (x, y) in micro_batches:
      self.accumulate(x, y)
      if index % num_micro_batches == num_micro_batches - 1:
        self.apply()

  def state(self):
    return [v.numpy() for v in (self.variables + self.optimizer.variables
                                + list(self.optimizer.loss_scale.variables)
                                + list(self.accumulator.variables))]


def micro_batch_stream(count):
  rng = np.random.default_rng(9)
  for index in range(count):
    x = rng.normal(size=(4, 6)).astype(np.float32)
    y = rng.normal(size=(4, 1)).astype(np.float32)
    if index == 2:
      y[0, 0] = np.inf   # a non-finite step in the middle exercises the skip
    yield index, (x, y)


@pytest.mark.parametrize("optimizer_type", ["adam", "lamb"])
def test_checkpoint_restore_continues_bit_exactly(optimizer_type, tmp_path):
  stream = list(micro_batch_stream(16))
  uninterrupted = Training(optimizer_type)
  uninterrupted.run(stream)

  first = Training(optimizer_type)
  first.run(stream[:9])   # 4 accumulated steps (one skipped) + 1 pending micro-batch
  assert int(first.accumulator.num_micro_batches.numpy()) == 1
  assert int(first.optimizer.iterations.numpy()) == 3
  assert float(first.optimizer.loss_scale.scale.numpy()) != 2.0 ** 4
  path = first.checkpoint.save(str(tmp_path / "ckpt"))
  saved_state = first.state()

  resumed = Training(optimizer_type)
  resumed.checkpoint.restore(path).assert_consumed()
  for a, b in zip(saved_state, resumed.state()):
    np.testing.assert_array_equal(a, b)
  resumed.run(stream[9:])

  assert int(resumed.optimizer.iterations.numpy()) == 7
  for a, b in zip(uninterrupted.state(), resumed.state()):
    np.testing.assert_array_equal(a, b)


def test_restore_into_lazily_built_optimizer_restores_slots(tmp_path):
  trained = Training("lamb")
  trained.run(list(micro_batch_stream(4)))
  path = trained.checkpoint.save(str(tmp_path / "ckpt"))

  model = tiny_model(seed=10)
  optimizer = optimization.create_optimizer(
      0.02, 12, 2, "lamb", loss_scale=optimization.DynamicLossScale())
  tf.train.Checkpoint(model=model, optimizer=optimizer).restore(path)
  assert not optimizer.built
  optimizer.build(model.trainable_variables)   # slots created now get their saved values
  for a, b in zip(trained.optimizer.variables, optimizer.variables):
    np.testing.assert_array_equal(a.numpy(), b.numpy())
  assert float(optimizer.loss_scale.scale.numpy()) == float(
      trained.optimizer.loss_scale.scale.numpy())
