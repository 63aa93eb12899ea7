"""launch.py, instrumented for tests/test_multidevice.py: the same flags, the same code path.

  XLA_FLAGS=--xla_force_host_platform_device_count=8 JAX_PLATFORMS=cpu \
  GAN_JAX_REPORT=/tmp/report.json python tests/multidevice_worker.py --config=... --workdir=...

Runs launch.py's `main` unchanged, with two observers around the train loop:
- every trace of the train step (the Python function jit stages out) and every XLA compilation
  of it (jax.monitoring's backend-compile event) is counted: after the first step neither may
  happen again, whatever the loop does between steps (evaluate, checkpoint, log);
- the layout of the final train state (per leaf: shape, partition spec, local shard shape).
The report goes to $GAN_JAX_REPORT as JSON ('{process}' in the path becomes the process index).
"""

import collections
import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import jax  # noqa: E402  (XLA_FLAGS must be set before jax is imported)
import numpy as np  # noqa: E402

BACKEND_COMPILE_EVENT = '/jax/core/compile/backend_compile_duration'


class StepCounter:
  """Counts traces of a wrapped step function and XLA compilations of the jit around it.

  The loop may wrap the step again before jitting it (e.g. `skipping_nonfinite`), so the jitted
  function's name is learnt: it is the first compilation that follows a trace of the step.
  """

  def __init__(self):
    self.traces = 0
    self.compiles = collections.Counter()  # By jitted function name, for every compilation.
    self.step_names = set()
    self._traced = False
    jax.monitoring.register_event_duration_secs_listener(self._on_duration)

  def _on_duration(self, event, duration, **kwargs):
    del duration
    if event == BACKEND_COMPILE_EVENT:
      name = str(kwargs.get('fun_name'))
      self.compiles[name] += 1
      if self._traced:
        self.step_names.add(name)
        self._traced = False

  def close(self):
    jax.monitoring.unregister_event_duration_listener(self._on_duration)

  @property
  def step_compiles(self) -> int:
    return sum(self.compiles[name] for name in self.step_names)

  def wrap(self, step_fn):
    """`step_fn`, counting each time jax traces it."""

    def counted_train_step(state, batch, key):
      self.traces += 1
      self._traced = True
      return step_fn(state, batch, key)

    return counted_train_step


def state_layout(state) -> dict:
  """{leaf path: shape, partition spec, whether replicated, this process's first shard shape}."""
  layout = {}
  for path, leaf in jax.tree_util.tree_flatten_with_path(state)[0]:
    layout[jax.tree_util.keystr(path)] = {
      'shape': list(leaf.shape),
      'spec': str(getattr(leaf.sharding, 'spec', None)),
      'replicated': bool(leaf.sharding.is_fully_replicated),
      'shard_shape': list(leaf.addressable_shards[0].data.shape),
    }
  return layout


def main():
  from absl import app  # pylint: disable=g-import-not-at-top

  from gan_jax import experiment as experiment_lib  # pylint: disable=g-import-not-at-top
  from gan_jax import train  # pylint: disable=g-import-not-at-top
  import launch  # pylint: disable=g-import-not-at-top

  counter = StepCounter()
  report = {}
  original = train.train_and_evaluate

  def instrumented(config, workdir, make_experiment=None, hardware=None):
    make = make_experiment or experiment_lib.experiment_for(config)

    def make_counted(run):
      experiment = make(run)
      experiment.train_step = counter.wrap(experiment.train_step)
      return experiment

    state = original(config, workdir, make_counted, hardware)
    report['layout'] = state_layout(state)
    report['step'] = int(jax.device_get(state.step))
    # This process's own copy of each augmentation state value (ADA's p), bit for bit.
    augment = getattr(state, 'augment', None) or {}
    report['augment'] = {
      k: np.asarray(v.addressable_shards[0].data).tobytes().hex() for k, v in augment.items()
    }
    return state

  train.train_and_evaluate = instrumented  # gan_jax.main looks it up at call time.

  def instrumented_main(argv):
    try:
      launch.main(argv)
    finally:
      path = os.environ.get('GAN_JAX_REPORT')
      if path:
        report.update(
          process_index=jax.process_index(),
          process_count=jax.process_count(),
          device_count=jax.device_count(),
          traces=counter.traces,
          step_compiles=counter.step_compiles,
          step_names=sorted(counter.step_names),
          compiles=dict(counter.compiles),
        )
        with open(path.replace('{process}', str(jax.process_index())), 'w') as f:
          json.dump(report, f, indent=1)

  app.run(instrumented_main, flags_parser=launch.parse_flags)


if __name__ == '__main__':
  main()
