"""Setting up an experiment: config checks, the mesh, the data, the state's shape and sharding,
and restoring a trained one. The train loop, --mode=sample, --mode=eval, the evaluators and
bench/ all start here; this module imports none of them.

An experiment (`gan_experiment.Experiment`, `classifier.Experiment`) is built from a `Run` and
supplies `init(rng)`, a pure `train_step(state, batch, key) -> (state, metrics)`, a host-side
`pictures(state, step) -> {name: image}`, `progress_keys` and optionally
`step_options(step) -> dict` of static step arguments and `save_files(workdir)`, what it keeps
beside its checkpoints (the condition kinds' files, such as text's vocabulary).
"""

from collections.abc import Callable
import dataclasses
import json
import os
import re
from typing import Any

import jax
import ml_collections
import numpy as np

from gan_jax import captions
from gan_jax import checkpoint
from gan_jax import classifier
from gan_jax import condition_sources
from gan_jax import conditions as conditions_lib
from gan_jax import config_checks
from gan_jax import data
from gan_jax import gan_experiment
from gan_jax import hardware as hardware_lib
from gan_jax import sharding
from gan_jax.errors import UserError

EXPERIMENTS = {'gan': gan_experiment.Experiment, 'classifier': classifier.Experiment}


@dataclasses.dataclass
class Run:
  """What an experiment gets from the setup: the mesh, the data source, and the convolution
  slicing the hardware layer chose for this batch on this backend (gan_jax/hardware.py)."""

  config: Any
  workdir: str
  mesh: jax.sharding.Mesh
  source: data.Source
  log: Callable[[str], None]
  conv_batch_slices: int = 1
  # The training rows' conditions (gan_jax/conditions.py) when the model is conditioned on
  # more than a label; `source` then carries each example's condition vector.
  conditions: conditions_lib.Table | None = None


def experiment_for(config):
  """The experiment class `config.experiment` names."""
  if config.experiment not in EXPERIMENTS:
    raise UserError(f"unknown experiment '{config.experiment}': choose from {sorted(EXPERIMENTS)}")
  return EXPERIMENTS[config.experiment]


def setup(config, workdir: str, make_experiment=None, batch_size: int | None = None, hardware=None):
  """The mesh, data, experiment and the shape and sharding of its state; writes nothing.

  The config is checked first, then a `batch_size` against the mesh, before any data is read.
  `hardware` (default: gan_jax/hardware.py's defaults) sets the convolution slicing.
  Returns (run, experiment, abstract_state, state_shardings).
  """
  config_checks.check(config)
  mesh = sharding.make_mesh(config.mesh)
  if batch_size is not None:
    sharding.check_batch_size(mesh, batch_size)
  source = data.load(config.data.source, 'train', config.data)
  log = print if jax.process_index() == 0 else (lambda *_: None)
  per_device = config.train.batch_size // max(1, jax.device_count())
  slices = hardware_lib.conv_batch_slices_for(hardware or hardware_lib.default_config(), per_device)
  table = condition_table(config, source, log, workdir)
  if table is not None:
    if table.text is not None:  # Digits of held-out compositions are not trained on.
      source = condition_sources.Subset(source, table.text.kept)
    source = condition_sources.ConditionedSource(source, table)
  run = Run(config, os.path.abspath(workdir), mesh, source, log, slices, table)
  experiment = (make_experiment or experiment_for(config))(run)
  abstract = jax.eval_shape(experiment.init, jax.random.key(config.seed))
  return run, experiment, abstract, sharding.state_sharding(mesh, abstract)


def condition_table(config, source, log, workdir: str = '') -> conditions_lib.Table | None:
  """The training rows' conditions of a GAN conditioned on more than a label, or with a
  `config.text` section, else None: morphometrics measured (and cached) once per data set,
  features from a classifier workdir or an .npy file, captions in the vocabulary saved in
  `workdir` (else the grammar's)."""
  if config.experiment != 'gan':
    return None
  parts = conditions_lib.names(config.model)
  text_config = config.get('text')
  plugins = conditions_lib.plugin_kinds(parts)
  if not conditions_lib.vector_names(parts) and text_config is None and not plugins:
    return None
  config_checks.check_data_fits(config, source.image_shape, source.num_classes)
  images, labels = data.all_images(source)
  features = None
  if conditions_lib.FEATURES in parts:
    features = load_features(config.model.features, images)
  vocabulary = None
  if text_config is not None and os.path.isfile(os.path.join(workdir, captions.Vocabulary.FILE)):
    vocabulary = captions.Vocabulary.load(workdir)
  extra = {kind.name: kind.rows(config, images, labels) for kind in plugins}
  return conditions_lib.build_table(
    parts, images, labels, source.num_classes, features, log, text_config, vocabulary, extra
  )


def load_features(where: str, images) -> np.ndarray:
  """Per-image feature vectors: the penultimate layer of the classifier trained in the
  workdir `where`, or the (N, F) array of the .npy file `where`."""
  if where.endswith('.npy'):
    if not os.path.isfile(where):
      raise UserError(f'config.model.features: no file {where!r}')
    try:
      return np.load(where, allow_pickle=False)
    except ValueError as e:
      raise UserError(f'config.model.features: {where!r} is not a plain .npy array ({e})') from None
  model, params, _ = load_classifier(where)
  return classifier.predict_all(model, params, images)[1]


def load_classifier(workdir: str):
  """(model, parameters, step) of the classifier trained in `workdir` (its config.json says
  which one)."""
  given, workdir = workdir, os.path.abspath(workdir)
  path = os.path.join(workdir, 'config.json')
  if not os.path.isfile(path):
    seed = re.search(r'_seed(\d+)$', given.rstrip('/'))
    command = f'python launch.py --config=configs/mnist_classifier.py --workdir={given}' + (
      f' --config.seed={seed.group(1)}' if seed else ''
    )
    raise UserError(
      f'no classifier run in {workdir!r} (no config.json): train one first: {command}'
    )
  with open(path) as f:
    config = ml_collections.ConfigDict(json.load(f))
  if config.get('experiment') != 'classifier':
    raise UserError(f'{workdir!r} holds a {config.get("experiment")!r} run, not a classifier')
  experiment, step, state = restore_for_inference(config, workdir)
  return experiment.model, jax.device_get(state.params), step


def restore_for_inference(
  config,
  workdir: str,
  make_experiment=None,
  checkpoints: str = 'checkpoints',
  step: int | None = None,
  hardware=None,
):
  """(experiment, step, state) from the newest readable checkpoint in `workdir`/`checkpoints`
  (or the one at `step`), on all devices. `checkpoints='snapshots'` reads the snapshots that
  `train.snapshot_every_secs` keeps.

  For --mode=sample and --mode=eval: a missing or foreign checkpoint is a clear error.
  """
  workdir = os.path.abspath(workdir)
  ckpt_dir = os.path.join(workdir, checkpoints)
  if not os.path.isdir(ckpt_dir):
    raise UserError(f'no {checkpoints} in {workdir!r}: train there first (--mode=train)')
  run, experiment, abstract, shardings = setup(config, workdir, make_experiment, hardware=hardware)
  ckpt = checkpoint.Checkpointer(ckpt_dir)
  target = checkpoint.abstract_with_sharding(abstract, shardings)
  restored = ckpt.restore(target, run.log, step=step)
  ckpt.close()
  if restored is None:
    at = f' at step {step}' if step is not None else ''
    raise UserError(f'no readable checkpoint{at} in {ckpt_dir!r}')
  step, state, _ = restored
  return experiment, step, state
