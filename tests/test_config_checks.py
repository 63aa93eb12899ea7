"""gan_jax/config_checks.py: every real config passes, and each bad value is one UserError line
that names its field (no model is built, nothing trains)."""

import glob
import importlib
import os
import re

import ml_collections
import pytest

from gan_jax import config_checks
from gan_jax import evaluators
from gan_jax import hardware
from gan_jax.errors import UserError
from tests.conftest import ROOT
from tests.conftest import load_config

NAN, INF = float('nan'), float('inf')

CONFIGS = sorted(
  os.path.basename(p)[:-3]
  for p in glob.glob(os.path.join(ROOT, 'configs', '*.py'))
  if not os.path.basename(p).startswith(('_', 'common'))
)
HARDWARE = sorted(
  os.path.basename(p)[:-3] for p in glob.glob(os.path.join(ROOT, 'configs', 'hardware', '*.py'))
)
# (image shape, classes) of each data source the configs name.
SOURCES = {
  'embedded:mnist': ((28, 28, 1), 10),
  'embedded:stacked_mnist': ((28, 28, 3), 1000),
  'tfds:cifar10': ((32, 32, 3), 10),
}


def with_value(config, key: str, value):
  """`config` with the dotted `key` set to `value`, even where the field's type refuses it
  (an int field given a float, say): it is then removed and added again."""
  *sections, field = key.split('.')
  node = config
  for section in sections:
    node = node[section]
  try:
    node[field] = value
  except TypeError:
    with config.unlocked():
      del node[field]
      node[field] = value
  return config


def expect_error(fragment: str, fn, *args):
  with pytest.raises(UserError, match=re.escape(fragment)) as e:
    fn(*args)
  assert '\n' not in str(e.value)
  return str(e.value)


def test_every_config_file_is_found():
  assert {'mnist_dcgan', 'mnist_classifier', 'stacked_mnist_r3gan', 'cifar10_sngan'} <= set(CONFIGS)
  assert HARDWARE


@pytest.mark.parametrize('variant', [None, 'smoke'])
@pytest.mark.parametrize('name', CONFIGS)
def test_every_config_passes(name, variant):
  config = load_config(name, variant)
  config_checks.check(config, evaluators.REGISTRY)
  shape, classes = SOURCES[config.data.source]
  config_checks.check_data_fits(config, shape, classes)


def test_a_config_without_optional_fields_passes():
  config = load_config('mnist_r3gan')
  with config.unlocked():
    for key in ('evals', 'eval'):
      if key in config:
        del config[key]
    del config.model.r3gan  # The module's defaults: group_size 16 divides 8 x expansion 2.
  config_checks.check(config)


@pytest.mark.parametrize('name', HARDWARE)
def test_hardware_configs_pass(name):
  config_checks.check_hardware(importlib.import_module(f'configs.hardware.{name}').get_config())
  config_checks.check_hardware(hardware.default_config())


BAD_GAN_VALUES = [
  ('loss.r1_gamma', NAN, 'config.loss.r1_gamma must be a finite number >= 0, got nan'),
  ('loss.r1_gamma', INF, 'config.loss.r1_gamma must be a finite number >= 0, got inf'),
  ('loss.r2_gamma', -1.0, 'config.loss.r2_gamma must be >= 0, got -1.0'),
  ('loss.gp_weight', -INF, 'config.loss.gp_weight must be a finite number >= 0, got -inf'),
  ('loss.lecam_decay', 1.0, 'config.loss.lecam_decay must be in [0, 1), got 1.0'),
  ('loss.penalty_every', 0, 'config.loss.penalty_every must be >= 1, got 0'),
  ('loss.penalty_every', 2.5, 'config.loss.penalty_every must be an integer >= 1, got 2.5'),
  ('loss.name', 'nope', "unknown loss 'nope' (config.loss.name): choose from"),
  ('optim.g.learning_rate', NAN, 'config.optim.g.learning_rate must be a finite number > 0'),
  ('optim.d.learning_rate', 0.0, 'config.optim.d.learning_rate must be > 0, got 0.0'),
  ('optim.g.b1', 1.0, 'config.optim.g.b1 must be in [0, 1), got 1.0'),
  ('optim.d.b2', INF, 'config.optim.d.b2 must be a finite number in [0, 1), got inf'),
  ('train.ema_decay', NAN, 'config.train.ema_decay must be a finite number in [0, 1), got nan'),
  ('train.ema_decay', 1.5, 'config.train.ema_decay must be in [0, 1), got 1.5'),
  ('train.num_steps', -5, 'config.train.num_steps must be >= 1, got -5'),
  ('train.num_steps', 2.5, 'config.train.num_steps must be an integer >= 1, got 2.5'),
  ('train.batch_size', 0, 'config.train.batch_size must be >= 1, got 0'),
  ('train.log_every', -1, 'config.train.log_every must be >= 1'),
  ('train.checkpoints_to_keep', 0, 'config.train.checkpoints_to_keep must be >= 1'),
  ('train.time_budget_s', -1.0, 'config.train.time_budget_s must be >= 0 (0 = none)'),
  ('train.progress_every_secs', INF, 'config.train.progress_every_secs must be a finite'),
  ('train.ema_warmup', 'yes', 'config.train.ema_warmup must be True or False'),
  ('eval.truncation', NAN, 'config.eval.truncation must be a finite number >= 0 (0 = off)'),
  ('eval.truncation', INF, 'config.eval.truncation must be a finite number >= 0'),
  ('eval.truncation', -1.0, 'config.eval.truncation must be >= 0 (0 = off), got -1.0'),
  ('eval.num_samples', 1, 'config.eval.num_samples must be >= 2, got 1'),
  ('eval.num_grid_samples', 0, 'config.eval.num_grid_samples must be >= 1, got 0'),
  ('eval.inception_reference_samples', -1, 'inception_reference_samples must be >= 0'),
  ('schedule.steps', -1, 'config.schedule.steps must be >= 0 (0 = constant), got -1'),
  ('schedule.b2_start', 1.0, 'config.schedule.b2_start must be in [0, 1)'),
  ('schedule.gamma_final', -1.0, 'fractions of the start values'),
  ('schedule.learning_rate_final', NAN, 'config.schedule.learning_rate_final must be a finite'),
  ('model.generator', 'nope', "unknown generator 'nope' (config.model.generator)"),
  ('model.discriminator', 'nope', "unknown discriminator 'nope' (config.model.discriminator)"),
  ('model.dtype', 'float16', "config.model.dtype 'float16' is not one of"),
  ('model.conditioning', 'film', "config.model.conditioning 'film' is not one of"),
  ('model.conditional', 'yes', 'config.model.conditional must be True or False'),
  ('model.g_width', 0, 'config.model.g_width must be >= 1'),
  ('model.latent_dim', 1.0, 'config.model.latent_dim must be an integer >= 1'),
  ('model.pack', 0, 'config.model.pack must be an integer >= 1 (1 = no packing), got 0'),
  ('model.pack', 5, 'config.train.batch_size 16 does not split into packs of 5'),
  ('augment.policy', 'color,flip', "config.augment.policy: unknown DiffAugment policy 'flip'"),
  ('augment.ada_target', -0.1, 'config.augment.ada_target must be in [0, 1), got -0.1'),
  ('augment.ada_target', NAN, 'config.augment.ada_target must be a finite number in [0, 1)'),
  ('augment.ada_kimg', 0.0, 'config.augment.ada_kimg must be > 0, got 0.0'),
  ('augment.ada_kimg', INF, 'config.augment.ada_kimg must be a finite number > 0'),
  ('augment.ada_interval', 0, 'config.augment.ada_interval must be >= 1, got 0'),
  ('augment.ada_p', 1.5, 'config.augment.ada_p must be in [0, 1], got 1.5'),
  ('augment.ada_ramp_steps', -1, 'config.augment.ada_ramp_steps must be >= 0, got -1'),
  ('data.per_class', -1, 'config.data.per_class must be >= 0, got -1'),
  ('data.per_class', 2.5, 'config.data.per_class must be an integer >= 0, got 2.5'),
  ('data.source', '', 'config.data.source must be a non-empty string'),
  ('data.channels', 2, 'config.data.channels 2 is not one of [1, 3]'),
  ('experiment', 'vae', "config.experiment 'vae' is not one of ['classifier', 'gan']"),
  ('seed', 1.5, 'config.seed must be an integer, got 1.5'),
  ('mesh', (('model', -1),), 'must name distinct axes'),
  ('mesh', (('data', 0),), 'sizes must be integers >= 1, or -1'),
]


@pytest.mark.parametrize('key, value, fragment', BAD_GAN_VALUES)
def test_bad_gan_values_are_user_errors(key, value, fragment):
  expect_error(fragment, config_checks.check, with_value(load_config('mnist_dcgan'), key, value))


@pytest.mark.parametrize(
  'overrides, fragment',
  [
    (
      {'augment.ada_target': 0.6, 'augment.ada_ops': 'xint,zoom'},
      "unknown ADA augmentation 'zoom'",
    ),
    ({'augment.ada_target': 0.6, 'augment.policy': 'translation'}, 'turns on ada and diffaugment'),
    ({'augment.ada_p': 0.3, 'augment.policy': 'cutout'}, 'turns on ada and diffaugment'),
    ({'augment.ada_target': 0.6, 'loss.name': 'rpgan'}, 'the rpgan loss does not anchor'),
    ({'augment.ada_target': 0.6, 'loss.name': 'wasserstein'}, 'the wasserstein loss does not'),
  ],
)
def test_bad_augmentation_choices_are_user_errors(overrides, fragment):
  config = load_config('mnist_dcgan')
  for key, value in overrides.items():
    config = with_value(config, key, value)
  expect_error(fragment, config_checks.check, config)


def test_fixed_p_works_with_every_loss():
  for loss in ('rpgan', 'wasserstein', 'hinge', 'least_squares'):
    config = with_value(
      with_value(load_config('mnist_dcgan'), 'loss.name', loss), 'augment.ada_p', 0.3
    )
    config_checks.check(config)


@pytest.mark.parametrize(
  'name, key, value, fragment',
  [
    ('mnist_cgan', 'model.pack', 2, 'is for unconditional models only'),
    ('stacked_mnist_dcgan', 'data.stacked_size', 0, 'config.data.stacked_size must be >= 1'),
    ('mnist_classifier', 'model.name', 'vgg', "unknown classifier 'vgg' (config.model.name)"),
    ('mnist_classifier', 'model.dtype', 'int8', "config.model.dtype 'int8' is not one of"),
    ('mnist_classifier', 'optim.learning_rate', NAN, 'config.optim.learning_rate must be a'),
    ('mnist_classifier', 'train.num_steps', 0, 'config.train.num_steps must be >= 1, got 0'),
    ('mnist_classifier', 'data.eval_split', '', 'config.data.eval_split must be a non-empty'),
    ('mnist_r3gan', 'model.r3gan.group_size', 5, 'group_size=5 must divide the 16 expanded'),
    ('mnist_r3gan', 'model.r3gan.group_size', 0, 'config.model.r3gan.group_size must be >= 1'),
    ('mnist_r3gan', 'model.r3gan.d_head_width', -1, 'r3gan.d_head_width must be >= 0 (0 = none)'),
    ('mnist_r3gan', 'model.r3gan.expansion', 0, 'config.model.r3gan.expansion must be >= 1'),
    ('mnist_r3gan', 'model.r3gan.stage_widths', (16, 0, 8), 'stage_widths must be a tuple'),
    ('mnist_r3gan', 'model.r3gan.d_stage_widths', (10, 10, 10), 'of every discriminator stage'),
  ],
)
def test_bad_values_of_other_configs_are_user_errors(name, key, value, fragment):
  expect_error(fragment, config_checks.check, with_value(load_config(name), key, value))


def test_group_size_is_capped_at_the_expanded_width():
  # As gan_jax/models/r3gan.py: 64-channel groups on 16 x 2 channels are one 32-channel group.
  config = load_config('mnist_r3gan')
  config.model.r3gan.stage_widths, config.model.r3gan.expansion = (), 2
  config.model.g_width = config.model.d_width = 16
  config.model.r3gan.group_size = 64
  config_checks.check(config)
  config.model.d_width = 24  # D's 48 expanded channels: 48 % min(64, 48) == 0 still.
  config_checks.check(config)
  config.model.r3gan.group_size = 32  # 48 % 32 != 0; G's 32 still divide.
  message = expect_error('group_size=32 must divide the 48', config_checks.check, config)
  assert 'discriminator' in message


def test_non_finite_floats_are_refused_in_any_field():
  config = load_config('mnist_dcgan')
  with config.unlocked():
    config.model.some_new_weight = NAN
  expect_error(
    'config.model.some_new_weight must be a finite number, got nan', config_checks.check, config
  )
  config = load_config('mnist_dcgan')
  with config.unlocked():
    config.extra = (1.0, INF)
  expect_error('config.extra[1] must be a finite number, got inf', config_checks.check, config)


def test_unknown_experiment_lists_the_choices():
  config = ml_collections.ConfigDict(dict(experiment='diffusion'))
  expect_error("['classifier', 'gan']", config_checks.check, config)


class GanOnly:
  experiments = ('gan',)


REGISTRY = {'fid': GanOnly, 'modes': GanOnly, 'accuracy': object}


def gan_with_evals(**specs):
  config = load_config('mnist_dcgan')
  with config.unlocked():
    config.evals = ml_collections.ConfigDict(specs)
  return config


@pytest.mark.parametrize(
  'spec, fragment',
  [
    (dict(type='kid', every=0), "config.evals.bad: unknown evaluator type 'kid'; registered: "),
    (dict(every=0), 'config.evals.bad needs a type'),
    (dict(type='fid', every=1.5), 'config.evals.bad.every must be an integer'),
    (dict(type='fid', num_samples=-1), 'config.evals.bad.num_samples must be >= 0'),
    (dict(type='fid', num_samples=100.0), 'config.evals.bad.num_samples must be an integer'),
    (dict(type='fid', log_steps=100), 'config.evals.bad: unknown field(s) log_steps; allowed:'),
  ],
)
def test_bad_evals_are_user_errors(spec, fragment):
  config = gan_with_evals(good=dict(type='fid', every=-1, num_samples=0), bad=spec)
  expect_error(fragment, config_checks.check_evals, config, REGISTRY)
  expect_error(fragment, config_checks.check, config, REGISTRY)


def test_unknown_evaluator_type_lists_the_registered_ones():
  config = gan_with_evals(bad=dict(type='kid'))
  message = expect_error('unknown evaluator type', config_checks.check_evals, config, REGISTRY)
  assert message.endswith('registered: accuracy, fid, modes')
  config_checks.check(config)  # No registry: types are not checked.


def test_evaluator_must_judge_this_experiment():
  config = gan_with_evals(judge=dict(type='fid'), acc=dict(type='accuracy'))
  config_checks.check_evals(config, REGISTRY)  # No `experiments`: judges anything.
  config.experiment = 'classifier'
  expect_error(
    "config.evals.judge: type 'fid' judges gan runs, not classifier",
    config_checks.check_evals,
    config,
    REGISTRY,
  )


def test_every_may_be_negative_zero_or_positive():
  config = gan_with_evals(
    a=dict(type='fid', every=-1), b=dict(type='fid', every=0), c=dict(type='modes', every=7)
  )
  config_checks.check(config, REGISTRY)


@pytest.mark.parametrize(
  'field, value',
  [('cpu_devices', -1), ('cpu_devices', 1.5), ('cpu_devices', True), ('conv_batch_slices', -2)],
)
def test_bad_hardware_values_are_user_errors(field, value):
  config = hardware.default_config()
  with config.unlocked():
    del config[field]
    config[field] = value
  expect_error(f'hardware.{field} must be an integer >= 0', config_checks.check_hardware, config)


@pytest.mark.parametrize(
  'name, shape, classes, fragment',
  [
    ('mnist_cgan', (28, 28, 1), 1, 'a conditional model needs labelled data'),
    ('mnist_dcgan', (27, 27, 1), 10, "config.model.generator 'dcgan' cannot handle"),
    ('mnist_dcgan', (28, 32, 1), 10, 'images must be square'),
    ('mnist_mlp_gan', (30, 30, 1), 10, "config.model.generator 'mlp' needs image sizes"),
    ('mnist_r3gan', (32, 32, 1), 10, 'r3gan.stage_widths has 3 entries; these images need 4'),
  ],
)
def test_data_that_does_not_fit_is_a_user_error(name, shape, classes, fragment):
  expect_error(fragment, config_checks.check_data_fits, load_config(name), shape, classes)


def test_d_stage_widths_are_counted_for_the_discriminator():
  config = load_config('mnist_r3gan')
  config.model.r3gan.d_stage_widths = (16, 8)
  expect_error(
    'r3gan.d_stage_widths has 2 entries', config_checks.check_data_fits, config, (28, 28, 1), 10
  )
