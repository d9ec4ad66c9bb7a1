"""Horovod data parallelism behind one small interface, and a single-process stand-in.

Keras 3 and Horovod 0.28: `hvd.DistributedGradientTape`/`DistributedOptimizer` fail on Keras 3
variables ("'Variable' object has no attribute 'ref'") and `hvd.broadcast_variables` turns them
into symbolic tensors inside its tf.function. So gradients are averaged with
`hvd.grouped_allreduce` inside our own train step, and variables are broadcast eagerly, one by
one. Horovod is imported only when asked for: `--use_horovod=False` runs without it installed.
"""
from collections.abc import Sequence

import numpy as np
import tensorflow as tf
from absl import logging


class SingleProcess:
  """The world of one process: all-reduce and broadcast are identities."""

  rank = 0
  size = 1
  local_rank = 0
  is_chief = True

  def allreduce_gradients(self, grads: Sequence[tf.Tensor | None],
                          groups: Sequence[Sequence[int]] | None = None) -> list:
    del groups
    return list(grads)

  def broadcast_variables(self, variables: Sequence[tf.Variable]) -> None:
    del variables

  def average_scalars(self, values: dict) -> dict:
    return {k: float(v) for k, v in values.items()}

  def max_over_ranks(self, values: Sequence[int]) -> list[int]:
    return [int(v) for v in values]

  def barrier(self) -> None:
    pass


class HorovodWorld:
  """One rank of a Horovod job (horovodrun or mpirun), with Gloo, MPI, NCCL or RCCL underneath.

  Args:
    fp16_allreduce: compress gradients to float16 for the all-reduce (NVIDIA's --fp16_allreduce).
  """

  def __init__(self, fp16_allreduce: bool = False):
    try:
      import horovod.tensorflow as hvd
    except ImportError as e:
      raise ImportError("--use_horovod=True needs Horovod: run scripts/setup.sh (or drop "
                        "--use_horovod)") from e
    self._hvd = hvd
    hvd.init()
    self.rank = hvd.rank()
    self.size = hvd.size()
    self.local_rank = hvd.local_rank()
    self.is_chief = self.rank == 0
    self._compression = hvd.Compression.fp16 if fp16_allreduce else hvd.Compression.none
    _pin_local_gpu(self.local_rank)

  def allreduce_gradients(self, grads: Sequence[tf.Tensor | None],
                          groups: Sequence[Sequence[int]] | None = None) -> list:
    """Averages gradients over ranks. None stays None.

    Args:
      groups: indices of `grads`, one list per all-reduce, in the order the backward pass
        finishes them (e.g. per layer, last layer first). Inside a tf.function each group's
        all-reduce starts as soon as its gradients exist, while the backward pass goes on;
        Horovod's fusion buffer merges the small ones. None: one grouped all-reduce of all.
    """
    out = list(grads)
    for group in [range(len(grads))] if groups is None else groups:
      present = [i for i in group if grads[i] is not None]
      if not present:
        continue
      reduced = self._hvd.grouped_allreduce(
          [tf.convert_to_tensor(grads[i]) for i in present], op=self._hvd.Average,
          compression=self._compression)
      for i, g in zip(present, reduced):
        out[i] = g
    return out

  def broadcast_variables(self, variables: Sequence[tf.Variable]) -> None:
    """Copies rank 0's values into every rank's variables, eagerly, variable by variable."""
    for i, v in enumerate(variables):
      v.assign(self._hvd.broadcast(tf.convert_to_tensor(v), root_rank=0,
                                   name=f"broadcast_{i}"))

  def average_scalars(self, values: dict) -> dict:
    """Averages a dict of float scalars over ranks (every rank must call it together)."""
    keys = sorted(values)
    stacked = tf.constant([float(values[k]) for k in keys], tf.float64)
    averaged = self._hvd.allreduce(stacked, op=self._hvd.Average, name="average_scalars")
    return dict(zip(keys, np.asarray(averaged).tolist()))

  def max_over_ranks(self, values: Sequence[int]) -> list[int]:
    """Each value's maximum over ranks (every rank must call it together): e.g. whether any
    rank must stop."""
    maxima = self._hvd.allreduce(tf.constant(list(values), tf.int32), op=self._hvd.Max,
                                 name="max_over_ranks")
    return np.asarray(maxima).tolist()

  def barrier(self) -> None:
    self._hvd.allreduce(tf.constant(0.0), name="barrier")


def _pin_local_gpu(local_rank: int) -> None:
  """Each rank sees only its own GPU (when there are GPUs), with memory growth on."""
  gpus = tf.config.list_physical_devices("GPU")
  if not gpus:
    return
  gpu = gpus[local_rank % len(gpus)]
  tf.config.experimental.set_memory_growth(gpu, True)
  tf.config.set_visible_devices(gpu, "GPU")
  logging.info("local rank %d pinned to %s", local_rank, gpu.name)


def make_world(use_horovod: bool, fp16_allreduce: bool = False):
  """HorovodWorld for --use_horovod=True, else SingleProcess."""
  if use_horovod:
    return HorovodWorld(fp16_allreduce=fp16_allreduce)
  if fp16_allreduce:
    logging.warning("--fp16_allreduce has no effect without --use_horovod")
  return SingleProcess()
