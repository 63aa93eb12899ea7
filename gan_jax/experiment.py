"""Setting up an experiment: config checks, the mesh, the data, the state's shape and sharding,
and restoring a trained one. The train loop, --mode=sample, --mode=eval, the judge and bench/
all start here; this module imports none of them.

An experiment (`gan.Experiment`, `classifier.Experiment`) is built from a `Run` and supplies
`init(rng)`, a pure `train_step(state, batch, key) -> (state, metrics)`, a host-side
`evaluate(state, step) -> (scalars, images)` and optionally `step_options(step) -> dict`.
"""

from collections.abc import Callable
import dataclasses
import os
from typing import Any

import jax

from gan_jax import checkpoint
from gan_jax import classifier
from gan_jax import data
from gan_jax import gan
from gan_jax import sharding
from gan_jax.errors import UserError

EXPERIMENTS = {'gan': gan.Experiment, 'classifier': classifier.Experiment}


@dataclasses.dataclass
class Run:
  """What an experiment gets from the setup: the mesh, the data source and, for a GAN scored
  while it trains, the judge (a trained classifier, `evaluate.Judge`) handed in by the caller."""

  config: Any
  workdir: str
  mesh: jax.sharding.Mesh
  source: data.Source
  log: Callable[[str], None]
  judge: Any = None


def check_numbers(config) -> None:
  """Refuses step counts, intervals, sizes and rates that make no sense, before anything runs
  (each a one-line UserError naming the field)."""
  train, at_least_one = (
    config.train,
    (
      'num_steps',
      'batch_size',
      'log_every',
      'eval_every',
      'checkpoint_every',
      'checkpoints_to_keep',
    ),
  )
  for name in at_least_one:
    if name in train and train[name] < 1:
      raise UserError(f'config.train.{name} must be >= 1, got {train[name]}')
  if train.get('time_budget_s', 0.0) < 0:
    raise UserError(
      f'config.train.time_budget_s must be >= 0 (0 = none), got {train.time_budget_s}'
    )
  if train.get('progress_every_secs', 0.0) < 0:
    raise UserError(
      f'config.train.progress_every_secs must be >= 0, got {train.progress_every_secs}'
    )
  if 'ema_decay' in train and not 0 <= train.ema_decay < 1:
    raise UserError(f'config.train.ema_decay must be in [0, 1), got {train.ema_decay}')
  eval_config = config.get('eval')
  if eval_config is not None:
    for name, least in (('num_samples', 2), ('num_grid_samples', 1)):
      if name in eval_config and eval_config[name] < least:
        raise UserError(f'config.eval.{name} must be >= {least}, got {eval_config[name]}')


def experiment_for(config):
  """The experiment class `config.experiment` names."""
  if config.experiment not in EXPERIMENTS:
    raise UserError(f"unknown experiment '{config.experiment}': choose from {sorted(EXPERIMENTS)}")
  return EXPERIMENTS[config.experiment]


def setup(config, workdir: str, make_experiment=None, batch_size: int | None = None, judge=None):
  """The mesh, data, experiment and the shape and sharding of its state; writes nothing.

  A `batch_size` is checked against the mesh first, before any data is read.
  Returns (run, experiment, abstract_state, state_shardings).
  """
  check_numbers(config)
  mesh = sharding.make_mesh(config.mesh)
  if batch_size is not None:
    sharding.check_batch_size(mesh, batch_size)
  source = data.load(config.data.source, 'train', config.data)
  log = print if jax.process_index() == 0 else (lambda *_: None)
  run = Run(config, os.path.abspath(workdir), mesh, source, log, judge)
  experiment = (make_experiment or experiment_for(config))(run)
  abstract = jax.eval_shape(experiment.init, jax.random.key(config.seed))
  return run, experiment, abstract, sharding.state_sharding(mesh, abstract)


def restore_for_inference(config, workdir: str, make_experiment=None):
  """(experiment, step, state) from the newest readable checkpoint in `workdir`, on all devices.

  For --mode=sample and --mode=eval: a missing or foreign checkpoint is a clear error.
  """
  workdir = os.path.abspath(workdir)
  ckpt_dir = os.path.join(workdir, 'checkpoints')
  if not os.path.isdir(ckpt_dir):
    raise UserError(f'no checkpoints in {workdir!r}: train there first (--mode=train)')
  run, experiment, abstract, shardings = setup(config, workdir, make_experiment)
  ckpt = checkpoint.Checkpointer(ckpt_dir)
  restored = ckpt.restore(checkpoint.abstract_with_sharding(abstract, shardings), run.log)
  ckpt.close()
  if restored is None:
    raise UserError(f'no readable checkpoint in {ckpt_dir!r}')
  step, state, _ = restored
  return experiment, step, state
