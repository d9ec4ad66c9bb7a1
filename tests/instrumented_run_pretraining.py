"""run_pretraining.py with the test hooks the multi-rank tests pass to its Trainer.

    python tests/instrumented_run_pretraining.py [run_pretraining.py flags]
        [--trace_dir=DIR] [--fail_at=RANK:STEP]

--trace_dir: every rank writes DIR/rank<R>.json: sha256 fingerprints of its weights at the
  start and end of training, the input_ids of its first step and its network namespace (its
  host, in the multi-host tests).
--fail_at: that rank raises at the start of that step (a crashed rank).
"""
import json
import os

from absl import app
from absl import flags

import run_pretraining
from bert import guards
from bert import training

FLAGS = flags.FLAGS


class RankTrace(training.Callback):
  """Writes what the equality tests compare of each rank."""

  def __init__(self, trace_dir: str):
    self.trace_dir = trace_dir
    self.trace = {}

  def on_train_begin(self, trainer, step):
    self.trace.update(rank=trainer.world.rank, start_step=step,
                      start_weights_sha256=trainer.weights_fingerprint(),
                      network_namespace=os.readlink("/proc/self/ns/net"))

  def on_step_begin(self, trainer, step, features):
    if "first_input_ids" not in self.trace and "input_ids" in features:
      self.trace["first_input_ids"] = features["input_ids"].numpy().tolist()  # [N, B, S]

  def on_train_end(self, trainer, step):
    self.trace["end_weights_sha256"] = trainer.weights_fingerprint()
    path = os.path.join(self.trace_dir, f"rank{trainer.world.rank}.json")
    with open(path, "w", encoding="utf-8") as f:
      json.dump(self.trace, f)


class FailAt(training.Callback):
  """Raises on one rank at the start of one step."""

  def __init__(self, spec: str):
    self.rank, self.step = (int(x) for x in spec.split(":"))

  def on_step_begin(self, trainer, step, features):
    if trainer.world.rank == self.rank and step == self.step:
      raise RuntimeError(f"injected failure on rank {self.rank} at step {step}")


def main(argv):
  callbacks = []
  if FLAGS.trace_dir:
    callbacks.append(RankTrace(FLAGS.trace_dir))
  if FLAGS.fail_at:
    callbacks.append(FailAt(FLAGS.fail_at))
  run_pretraining.main(argv, callbacks=callbacks)


if __name__ == "__main__":
  run_pretraining.define_flags()
  flags.DEFINE_string("trace_dir", None, "Write each rank's trace here.")
  flags.DEFINE_string("fail_at", None, "RANK:STEP: that rank fails at that step.")
  run_pretraining.mark_required_flags()
  app.run(main, flags_parser=guards.parse_flags)
