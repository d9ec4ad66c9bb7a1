"""BERT's optimizers (adam, lamb, nadam, nlamb) and the pieces the training loop composes.

What lives here:
  * `create_optimizer(...)`: the factory the run_* scripts call.
  * `WarmupPolynomialDecay`: linear warmup, then polynomial decay to `end_lr`.
  * `AdamWeightDecay`, `LAMB`, `NadamWeightDecay`, `NLAMB`: Keras 3 optimizers sharing
    `BertOptimizer`, whose `apply` runs unscale -> finite check -> clip -> update or skip.
  * `DynamicLossScale`: the fp16 loss scale (scale variable, growth interval, factors).
  * `GradientAccumulator`: float32 gradient sums over N micro-batches.

Step counter. `optimizer.iterations` counts *applied* updates: it starts at 0 and grows by
one per `apply` that changes the variables. Micro-batches folded into a `GradientAccumulator`
do not count, and neither does a step skipped because its gradients were not finite. The
update being applied uses `step = optimizer.iterations` for the learning rate (so the very
first update has lr 0 when there is warmup, as in Google's optimization.py) and
`t = step + 1` in the bias corrections.

How bert/training.py's Trainer composes them, one accumulated step of N micro-batches:

    optimizer = create_optimizer(..., loss_scale=DynamicLossScale() if fp16 else None)
    optimizer.build(model.trainable_variables)       # before checkpoint restore
    accumulator = GradientAccumulator(model.trainable_variables)  # empty between steps, so
                                                                   # not checkpointed
    # inside one tf.function, micro-batches 1 .. N-1:
    with tf.GradientTape() as tape:
      scaled_loss = optimizer.scale_loss(loss_fn(model, batch))
    accumulator.accumulate(tape.gradient(scaled_loss, model.trainable_variables))
    # the last micro-batch: its gradients join the mean without being stored, and each
    # layer's average over ranks (bert/distributed.py) starts as soon as the layer has it
    grads = world.allreduce_gradients(accumulator.gradients_with(last_grads), groups)
    optimizer.apply(grads, model.trainable_variables)      # unscale, check, clip, update
    accumulator.reset()

Without accumulation, the all-reduced `tape.gradient(...)` goes straight to `apply`.
Because the finiteness check runs on the gradients passed to `apply`, an Inf/NaN on one
rank reaches every rank through the all-reduce and all ranks skip the same step.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import keras
import tensorflow as tf
from keras import ops

OPTIMIZER_TYPES = ("adam", "lamb", "nadam", "nlamb")
# Google and the ROCm fork decay linearly for Adam-style and with power 0.5 for LAMB-style.
_DEFAULT_POLY_POWER = {"adam": 1.0, "nadam": 1.0, "lamb": 0.5, "nlamb": 0.5}


@keras.saving.register_keras_serializable(package="bert")
class WarmupPolynomialDecay(keras.optimizers.schedules.LearningRateSchedule):
  """Google's BERT learning rate: linear warmup, then polynomial decay.

  lr(step) = init_lr * step / num_warmup_steps                      if step < num_warmup_steps
           = (init_lr - end_lr) * (1 - min(step, T) / T) ** power + end_lr   otherwise,
  with T = num_train_steps. As in Google's optimization.py the decay is measured from step 0
  (not from the end of warmup), so it reaches `end_lr` exactly at `num_train_steps`.
  """

  def __init__(self, init_lr: float, num_train_steps: int, num_warmup_steps: int,
               power: float = 1.0, end_lr: float = 0.0):
    if num_train_steps <= 0:
      raise ValueError(f"num_train_steps must be > 0, got {num_train_steps}")
    if num_warmup_steps < 0:
      raise ValueError(f"num_warmup_steps must be >= 0, got {num_warmup_steps}")
    if power <= 0:
      raise ValueError(f"power must be > 0, got {power}")
    self.init_lr = float(init_lr)
    self.num_train_steps = int(num_train_steps)
    self.num_warmup_steps = int(num_warmup_steps)
    self.power = float(power)
    self.end_lr = float(end_lr)

  def __call__(self, step):
    """step: integer scalar (0-based). Returns the float32 scalar learning rate."""
    step = ops.cast(step, "float32")
    progress = ops.minimum(step, float(self.num_train_steps)) / float(self.num_train_steps)
    decayed = ((self.init_lr - self.end_lr) * ops.power(1.0 - progress, self.power)
               + self.end_lr)
    if self.num_warmup_steps == 0:
      return decayed
    warmup = self.init_lr * step / float(self.num_warmup_steps)
    return ops.where(step < float(self.num_warmup_steps), warmup, decayed)

  def get_config(self):
    return {"init_lr": self.init_lr, "num_train_steps": self.num_train_steps,
            "num_warmup_steps": self.num_warmup_steps, "power": self.power,
            "end_lr": self.end_lr}


def all_finite(grads: Sequence[tf.Tensor | None]) -> tf.Tensor:
  """True (bool scalar tensor) when no gradient holds an Inf or NaN; None entries are ignored."""
  checks = [ops.all(ops.isfinite(g)) for g in grads if g is not None]
  return ops.all(ops.stack(checks))


def global_norm(grads: Sequence[tf.Tensor | None]) -> tf.Tensor:
  """sqrt(sum of squares) over every entry of every non-None gradient; float32 scalar."""
  squares = [ops.sum(ops.square(ops.cast(g, "float32"))) for g in grads if g is not None]
  return ops.sqrt(ops.sum(ops.stack(squares)))


def clip_by_global_norm(grads: Sequence[tf.Tensor | None], clip_norm: float
                        ) -> list[tf.Tensor | None]:
  """Scales all gradients by clip_norm / max(global_norm, clip_norm).

  Same rule as tf.clip_by_global_norm (Google, NVIDIA), but written so that gradients whose
  global norm is already <= clip_norm are multiplied by exactly 1.
  """
  norm = global_norm(grads)
  factor = clip_norm / ops.maximum(norm, clip_norm)
  return [None if g is None else g * ops.cast(factor, g.dtype) for g in grads]


def _densify(grads):
  """IndexedSlices (embedding lookups) -> dense tensors; the update math is dense."""
  return [g if g is None else tf.convert_to_tensor(g) for g in grads]


class DynamicLossScale(tf.Module):
  """Dynamic loss scale for float16 training, checkpointed through tf.train.Checkpoint.

  After `growth_interval` consecutive steps with finite gradients the scale is multiplied
  by `growth_factor` (unless that overflows float32); a step with non-finite gradients
  multiplies it by `backoff_factor` (not below `min_scale`) and restarts the count.

  Attributes:
    scale: float32 scalar tf.Variable, the current loss scale (read it for logs).
    good_steps: int64 scalar tf.Variable, finite steps since the scale last changed.
  """

  def __init__(self, initial_scale: float = 2.0 ** 15, growth_interval: int = 2000,
               growth_factor: float = 2.0, backoff_factor: float = 0.5,
               min_scale: float = 1.0, name: str = "dynamic_loss_scale"):
    if initial_scale < min_scale:
      raise ValueError(f"initial_scale ({initial_scale}) must be >= min_scale ({min_scale})")
    if growth_interval < 1:
      raise ValueError(f"growth_interval must be >= 1, got {growth_interval}")
    if growth_factor <= 1.0:
      raise ValueError(f"growth_factor must be > 1, got {growth_factor}")
    if not 0.0 < backoff_factor < 1.0:
      raise ValueError(f"backoff_factor must be in (0, 1), got {backoff_factor}")
    super().__init__(name=name)
    self.growth_interval = int(growth_interval)
    self.growth_factor = float(growth_factor)
    self.backoff_factor = float(backoff_factor)
    self.min_scale = float(min_scale)
    self.scale = tf.Variable(float(initial_scale), dtype=tf.float32, trainable=False,
                             name="loss_scale")
    self.good_steps = tf.Variable(0, dtype=tf.int64, trainable=False, name="good_steps")

  def scale_loss(self, loss: tf.Tensor) -> tf.Tensor:
    """loss: scalar of any float dtype. Returns loss * scale in float32 (cannot overflow)."""
    return ops.cast(loss, "float32") * self.scale

  def unscale(self, grads: Sequence[tf.Tensor | None]) -> list[tf.Tensor | None]:
    """Divides every gradient by the scale in float32 (2^16 is Inf in float16), keeps dtypes."""
    return [None if g is None else ops.cast(ops.cast(g, "float32") / self.scale, g.dtype)
            for g in grads]

  def update(self, grads_are_finite: tf.Tensor) -> None:
    """Grows or backs off the scale after a step; grads_are_finite: bool scalar."""
    finite = ops.convert_to_tensor(grads_are_finite)
    good_steps = ops.where(finite, self.good_steps + 1, ops.zeros_like(self.good_steps))
    grow = good_steps >= self.growth_interval
    new_scale = ops.where(
        finite,
        ops.where(grow, self.scale * self.growth_factor, self.scale),
        ops.maximum(self.scale * self.backoff_factor, self.min_scale))
    self.scale.assign(ops.where(ops.isfinite(new_scale), new_scale, self.scale))
    self.good_steps.assign(ops.where(grow, ops.zeros_like(good_steps), good_steps))


class GradientAccumulator(tf.Module):
  """Sums gradients of N micro-batches in float32 and returns their mean.

  With equal micro-batches and a per-micro-batch mean loss, `gradients()` equals the gradient
  of the mean loss over the concatenated batch. Accumulation is local: read `gradients()`,
  all-reduce them once (NVIDIA's --allreduce_post_accumulation), apply, then `reset()`.
  Feed it loss-scaled gradients when loss scaling is on; the optimizer unscales the mean.

  Attributes:
    num_micro_batches: int64 scalar tf.Variable, micro-batches accumulated since reset().
  """

  def __init__(self, variables: Sequence[tf.Variable], name: str = "gradient_accumulator"):
    """variables: the trainable variables, in the order gradients will be passed."""
    super().__init__(name=name)
    self._sums = [
        tf.Variable(tf.zeros(v.shape, tf.float32), trainable=False,
                    name=_variable_path(v).replace("/", "_") + "_accum")
        for v in variables]
    self.num_micro_batches = tf.Variable(0, dtype=tf.int64, trainable=False,
                                         name="num_micro_batches")
    # Which variables get no gradient (e.g. an unused pooler) is fixed by the model; it is
    # recorded on the first accumulate so gradients() can hand back None for them.
    self._has_gradient = None

  def accumulate(self, grads: Sequence[tf.Tensor | tf.IndexedSlices | None]) -> None:
    """Adds one micro-batch's gradients (each shaped like its variable) to the float32 sums."""
    if len(grads) != len(self._sums):
      raise ValueError(f"GradientAccumulator holds {len(self._sums)} variables, "
                       f"got {len(grads)} gradients")
    has_gradient = [g is not None for g in grads]
    if self._has_gradient is None:
      self._has_gradient = has_gradient
    elif has_gradient != self._has_gradient:
      raise ValueError("GradientAccumulator: the set of variables with a gradient changed "
                       "between micro-batches")
    for total, grad in zip(self._sums, _densify(grads)):
      if grad is not None:
        total.assign_add(ops.cast(grad, "float32"))
    self.num_micro_batches.assign_add(1)

  def gradients(self) -> list[tf.Tensor | None]:
    """Mean float32 gradient per variable (None where the model gives no gradient)."""
    count = ops.cast(ops.maximum(self.num_micro_batches, 1), "float32")
    has_gradient = self._has_gradient or [True] * len(self._sums)
    return [total / count if present else None
            for total, present in zip(self._sums, has_gradient)]

  def gradients_with(self, grads: Sequence[tf.Tensor | tf.IndexedSlices | None]
                     ) -> list[tf.Tensor | None]:
    """gradients() as if `grads` (the last micro-batch's) had been accumulated first, without
    storing them: each mean depends only on its own gradient, so an all-reduce of it can start
    while the rest of the backward pass runs."""
    count = ops.cast(self.num_micro_batches + 1, "float32")
    return [None if grad is None else (total + ops.cast(grad, "float32")) / count
            for total, grad in zip(self._sums, _densify(grads))]

  def reset(self) -> None:
    for total in self._sums:
      total.assign(tf.zeros_like(total))
    self.num_micro_batches.assign(0)


def _variable_path(variable) -> str:
  """Keras Variables carry `path` ('encoder/layer_0/.../LayerNorm/gamma'); tf.Variables a name."""
  path = getattr(variable, "path", None)
  return path if path else variable.name.split(":")[0]


def _matches_any(path: str, substrings: Sequence[str] | None) -> bool:
  return any(s in path for s in substrings or ())


class BertOptimizer(keras.optimizers.Optimizer):
  """Shared base of the four BERT optimizers: moments, weight decay, trust ratio, apply().

  Subclasses choose the direction (`_direction`) and whether LAMB's layer adaptation is used.
  Every variable gets m = b1*m + (1-b1)*g and v = b2*v + (1-b2)*g^2, then
    u = direction(m, v, g) + wd * w            (wd = 0 for variables excluded from decay)
    w -= lr * r * u                            (r = 1 unless layer adaptation applies)
  Exclusions match substrings of `variable.path` and are resolved once in `build`.

  `apply(grads, variables)` runs, in this order: densify IndexedSlices; if `loss_scale` is
  set, unscale and skip the step when any gradient is not finite (variables, slots and
  `iterations` untouched; the scale backs off), then global-norm clip to `clip_norm`
  and update. Gradients are expected averaged across ranks already.
  """

  layer_adaptation = False

  def __init__(self, learning_rate, weight_decay_rate: float = 0.01, beta_1: float = 0.9,
               beta_2: float = 0.999, epsilon: float = 1e-6,
               exclude_from_weight_decay: Sequence[str] | None = ("LayerNorm", "layer_norm",
                                                                   "bias"),
               exclude_from_layer_adaptation: Sequence[str] | None = None,
               clip_norm: float | None = 1.0, loss_scale: DynamicLossScale | None = None,
               name: str | None = None, **kwargs):
    for keras_argument in ("weight_decay", "gradient_accumulation_steps", "loss_scale_factor"):
      if kwargs.get(keras_argument) is not None:
        raise ValueError(
            f"{type(self).__name__} does not take Keras's `{keras_argument}`: use "
            "weight_decay_rate, GradientAccumulator or loss_scale=DynamicLossScale() instead")
    super().__init__(learning_rate=learning_rate, name=name, **kwargs)
    self.weight_decay_rate = float(weight_decay_rate)
    self.beta_1 = float(beta_1)
    self.beta_2 = float(beta_2)
    self.epsilon = float(epsilon)
    self.exclude_from_weight_decay = tuple(exclude_from_weight_decay or ())
    self.exclude_from_layer_adaptation = tuple(
        self.exclude_from_weight_decay if exclude_from_layer_adaptation is None
        else exclude_from_layer_adaptation)
    self.clip_norm = clip_norm
    self.loss_scale = loss_scale

  def build(self, variables):
    """Creates the adam_m / adam_v slots and resolves exclusions by variable path."""
    if self.built:
      return
    super().build(variables)
    self._m, self._v = self.add_optimizer_variables(variables, ["adam_m", "adam_v"])
    paths = [_variable_path(v) for v in variables]
    self._decays = [self.weight_decay_rate != 0.0
                    and not _matches_any(p, self.exclude_from_weight_decay) for p in paths]
    self._adapts = [self.layer_adaptation
                    and not _matches_any(p, self.exclude_from_layer_adaptation) for p in paths]

  def scale_loss(self, loss):
    """Multiplies the loss by the dynamic loss scale (identity without loss scaling)."""
    return loss if self.loss_scale is None else self.loss_scale.scale_loss(loss)

  def apply(self, grads, trainable_variables=None):
    """Unscale -> finite check -> clip -> update or skip. grads: one per variable (or None)."""
    if trainable_variables is None:
      if not self.built:
        raise ValueError(f"{self.name}: pass the variables on the first apply, "
                         "or call optimizer.build(variables) first")
      trainable_variables = self._trainable_variables
    trainable_variables = list(trainable_variables)
    if not self.built:
      # Slots must exist before the tf.cond below: variables cannot be created in a branch.
      with keras.name_scope(self.name, caller=self):
        self.build(trainable_variables)
    grads = _densify(grads)
    if self.loss_scale is None:
      self._clip_and_update(grads, trainable_variables)
      return
    grads = self.loss_scale.unscale(grads)
    finite = all_finite(grads)
    ops.cond(finite, lambda: self._clip_and_update(grads, trainable_variables), lambda: None)
    self.loss_scale.update(finite)

  def _clip_and_update(self, grads, trainable_variables):
    if self.clip_norm:
      grads = clip_by_global_norm(grads, self.clip_norm)
    super().apply(grads, trainable_variables)

  def _direction(self, gradient, m, v, dtype):
    """Adam's direction m / (sqrt(v) + eps), without bias correction (Google's)."""
    del gradient, dtype
    return m / (ops.sqrt(v) + self.epsilon)

  def update_step(self, gradient, variable, learning_rate):
    """One variable's update; gradient has the variable's shape, learning_rate is a scalar."""
    index = self._get_variable_index(variable)
    dtype = variable.dtype
    g = ops.cast(gradient, dtype)
    m = self.beta_1 * self._m[index] + (1.0 - self.beta_1) * g
    v = self.beta_2 * self._v[index] + (1.0 - self.beta_2) * ops.square(g)
    self.assign(self._m[index], m)
    self.assign(self._v[index], v)
    update = self._direction(g, m, v, dtype)
    if self._decays[index]:
      update = update + self.weight_decay_rate * variable
    if self._adapts[index]:
      update = _trust_ratio(variable, update) * update
    self.assign_sub(variable, ops.cast(learning_rate, dtype) * update)

  def get_config(self):
    config = super().get_config()
    config.update({
        "weight_decay_rate": self.weight_decay_rate, "beta_1": self.beta_1,
        "beta_2": self.beta_2, "epsilon": self.epsilon,
        "exclude_from_weight_decay": list(self.exclude_from_weight_decay),
        "exclude_from_layer_adaptation": list(self.exclude_from_layer_adaptation),
        "clip_norm": self.clip_norm,
    })
    # The loss scale is state, not configuration: it travels through tf.train.Checkpoint.
    return config


def _trust_ratio(variable, update):
  """LAMB's r = ||w|| / ||u|| when both norms are > 0, else 1 (float scalar)."""
  w_norm = ops.sqrt(ops.sum(ops.square(variable)))
  u_norm = ops.sqrt(ops.sum(ops.square(update)))
  both_positive = ops.logical_and(w_norm > 0, u_norm > 0)
  return ops.where(both_positive, w_norm / ops.where(both_positive, u_norm, 1.0), 1.0)


class _NesterovDirection:
  """Nadam's direction with the issue's bias corrections (t = iterations + 1).

  m_hat = m / (1 - b1^(t+1)); v_hat = v / (1 - b2^t);
  m_bar = b1 * m_hat + (1 - b1) * g / (1 - b1^t); direction = m_bar / (sqrt(v_hat) + eps).
  """

  def _direction(self, gradient, m, v, dtype):
    t = ops.cast(self.iterations + 1, dtype)
    m_hat = m / _one_minus_power(self.beta_1, t + 1.0)
    v_hat = v / _one_minus_power(self.beta_2, t)
    m_bar = self.beta_1 * m_hat + (1.0 - self.beta_1) * gradient / _one_minus_power(self.beta_1, t)
    return m_bar / (ops.sqrt(v_hat) + self.epsilon)


def _one_minus_power(beta: float, exponent):
  """1 - beta**exponent as -expm1(exponent * log(beta)), with log(beta) taken in float64.

  Computing beta**t in float32 and subtracting from 1 loses about 1e-5 relative accuracy for
  beta = 0.999 (cancellation); this form keeps float32's full relative precision.
  """
  return -ops.expm1(exponent * math.log(beta))


@keras.saving.register_keras_serializable(package="bert")
class AdamWeightDecay(BertOptimizer):
  """Google's AdamWeightDecayOptimizer: Adam without bias correction, decay inside the update."""


@keras.saving.register_keras_serializable(package="bert")
class LAMB(BertOptimizer):
  """LAMB: the AdamWeightDecay update scaled per variable by the trust ratio ||w|| / ||u||."""
  layer_adaptation = True


@keras.saving.register_keras_serializable(package="bert")
class NadamWeightDecay(_NesterovDirection, BertOptimizer):
  """Nadam (Nesterov momentum, bias-corrected) with decoupled weight decay inside the update."""


@keras.saving.register_keras_serializable(package="bert")
class NLAMB(_NesterovDirection, BertOptimizer):
  """NLAMB: the Nadam update scaled per variable by LAMB's trust ratio."""
  layer_adaptation = True


_OPTIMIZER_CLASSES = {"adam": AdamWeightDecay, "lamb": LAMB, "nadam": NadamWeightDecay,
                      "nlamb": NLAMB}


def create_optimizer(init_lr: float, num_train_steps: int, num_warmup_steps: int,
                     optimizer_type: str = "adam", weight_decay_rate: float = 0.01,
                     beta_1: float = 0.9, beta_2: float = 0.999, epsilon: float = 1e-6,
                     exclude_from_weight_decay: Sequence[str] | None = ("LayerNorm",
                                                                         "layer_norm", "bias"),
                     exclude_from_layer_adaptation: Sequence[str] | None = None,
                     poly_power: float | None = None, clip_norm: float | None = 1.0,
                     loss_scale: DynamicLossScale | None = None, end_lr: float = 0.0,
                     name: str | None = None) -> BertOptimizer:
  """Builds BERT's optimizer with the warmup + polynomial-decay learning rate.

  Args:
    init_lr: peak learning rate, reached at the end of warmup.
    num_train_steps: optimizer updates until the learning rate reaches `end_lr`.
    num_warmup_steps: updates of linear warmup from 0 (0 disables warmup).
    optimizer_type: one of "adam", "lamb", "nadam", "nlamb".
    weight_decay_rate, beta_1, beta_2, epsilon: the update's hyperparameters.
    exclude_from_weight_decay: substrings of variable paths that get no weight decay.
    exclude_from_layer_adaptation: substrings of paths that keep r = 1 (lamb, nlamb);
      None means the same as exclude_from_weight_decay.
    poly_power: decay power; None picks 1.0 for adam/nadam and 0.5 for lamb/nlamb.
    clip_norm: global-norm clip of the unscaled, averaged gradients; None or 0 disables.
    loss_scale: a DynamicLossScale for float16 training, or None.
    end_lr: learning rate at and after num_train_steps.
    name: Keras name of the optimizer (defaults to the class name).

  Returns:
    A keras.optimizers.Optimizer; use it through `optimizer.apply(grads, variables)`.
  """
  if optimizer_type not in _OPTIMIZER_CLASSES:
    raise ValueError(f"optimizer_type must be one of {', '.join(OPTIMIZER_TYPES)}; "
                     f"got {optimizer_type!r}")
  power = _DEFAULT_POLY_POWER[optimizer_type] if poly_power is None else poly_power
  schedule = WarmupPolynomialDecay(init_lr, num_train_steps, num_warmup_steps, power, end_lr)
  return _OPTIMIZER_CLASSES[optimizer_type](
      learning_rate=schedule, weight_decay_rate=weight_decay_rate, beta_1=beta_1,
      beta_2=beta_2, epsilon=epsilon, exclude_from_weight_decay=exclude_from_weight_decay,
      exclude_from_layer_adaptation=exclude_from_layer_adaptation, clip_norm=clip_norm,
      loss_scale=loss_scale, name=name)
