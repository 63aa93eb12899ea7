"""Every toolbox option trains: losses, regularisers, DiffAugment, SN, conditioning, AC-GAN."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gan_jax import data
from gan_jax import gan as gan_lib
from gan_jax import gan_builder
from gan_jax import generation
from gan_jax.errors import UserError
from tests.conftest import load_config

SOURCE = data.load('embedded:mnist', 'train')
BATCH = {'image': SOURCE.images[:8], 'label': SOURCE.labels[:8]}

OPTIONS = {
  'hinge': {'loss.name': 'hinge'},
  'wgan_gp': {'loss.name': 'wasserstein', 'loss.gp_weight': 10.0},
  'lsgan_r1': {'loss.name': 'least_squares', 'loss.r1_gamma': 1.0},
  'lecam_diffaugment': {'loss.lecam_weight': 0.1, 'augment.policy': 'color,translation,cutout'},
  'spectral_norm': {'model.spectral_norm': True},
  'projection_cgan': {'model.conditional': True},
  'acgan': {'model.conditional': True, 'model.conditioning': 'acgan'},
  'rpgan_r1_r2': {'loss.name': 'rpgan', 'loss.r1_gamma': 1.0, 'loss.r2_gamma': 1.0},
  'rpgan_cgan': {'loss.name': 'rpgan', 'model.conditional': True},
}


def configured(overrides):
  config = load_config('mnist_dcgan')
  for key, value in overrides.items():
    section, name = key.split('.')
    config[section][name] = value
  return config


def run_steps(config, n=2):
  gan = gan_builder.build(config, SOURCE.image_shape, SOURCE.num_classes)
  state = gan.init(jax.random.key(0))
  step = jax.jit(functools.partial(gan_lib.train_step, gan))
  for _ in range(n):
    state, metrics = step(state, BATCH, jax.random.key(1))
  return gan, state, jax.device_get(metrics)


@pytest.mark.parametrize('name', sorted(OPTIONS))
def test_option_trains_with_finite_metrics(name):
  _, state, metrics = run_steps(configured(OPTIONS[name]))
  assert int(state.step) == 2
  for key, value in metrics.items():
    assert np.isfinite(value), (key, value)
  if 'gp_weight' in str(OPTIONS[name]):
    assert metrics['gp'] > 0
  if 'r1_gamma' in str(OPTIONS[name]):
    assert metrics['r1'] > 0
  if 'r2_gamma' in str(OPTIONS[name]):
    assert metrics['r2'] > 0
  if name == 'acgan':
    assert metrics['d_class_loss'] > 0


def test_lecam_state_tracks_discriminator_outputs():
  _, state, metrics = run_steps(configured(OPTIONS['lecam_diffaugment']))
  assert float(state.lecam.ema_real) != 0.0 and float(state.lecam.ema_fake) != 0.0
  assert 'lecam' in metrics


def test_spectral_norm_state_lives_in_the_train_state_and_advances():
  config = configured(OPTIONS['spectral_norm'])
  gan = gan_builder.build(config, SOURCE.image_shape, SOURCE.num_classes)
  state = gan.init(jax.random.key(0))
  assert jax.tree.leaves(state.d_stats), 'no power-iteration vectors in the D state'
  new, _ = jax.jit(functools.partial(gan_lib.train_step, gan))(state, BATCH, jax.random.key(1))
  moved = [
    float(jnp.max(jnp.abs(a - b)))
    for a, b in zip(jax.tree.leaves(state.d_stats), jax.tree.leaves(new.d_stats))
  ]
  assert max(moved) > 0


def test_conditional_generator_uses_the_requested_labels():
  gan, state, _ = run_steps(configured(OPTIONS['projection_cgan']))
  z = jnp.repeat(jax.random.normal(jax.random.key(0), (1, gan.latent_dim)), 2, axis=0)
  images = generation.generate_ema(gan, state, z, jnp.array([1, 7]))
  assert not np.allclose(images[0], images[1])


@pytest.mark.parametrize(
  'overrides, message',
  [
    ({'augment.policy': 'color,flip'}, 'flip'),
    ({'model.conditioning': 'film'}, 'conditioning'),
    ({'loss.r1_gamma': float('nan')}, 'r1_gamma'),
    ({'loss.r2_gamma': -0.1}, 'r2_gamma must be >= 0'),
    ({'loss.penalty_every': 0}, 'penalty_every must be >= 1'),
    ({'schedule.steps': -1}, 'schedule.steps must be >= 0'),
    ({'schedule.b2_start': 1.0}, 'b2_start must be in'),
    ({'schedule.gamma_final': -1.0}, 'fractions of the start values'),
  ],
)
def test_bad_toolbox_settings_are_user_errors(overrides, message):
  with pytest.raises(UserError, match=message):
    gan_builder.build(configured(overrides), SOURCE.image_shape, SOURCE.num_classes)
