"""The GAN update itself: D learns on a fixed batch, and both nets change every step."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gan_jax import data
from gan_jax import gan as gan_lib
from gan_jax import gan_builder
from tests.conftest import load_config


def tree_distance(a, b):
  return sum(float(jnp.sum(jnp.abs(x - y))) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


@pytest.fixture(scope='module')
def setup():
  config = load_config('mnist_dcgan')
  source = data.load('embedded:mnist', 'train')
  gan = gan_builder.build(config, source.image_shape, source.num_classes)
  batch = {'image': source.images[:16], 'label': source.labels[:16]}
  return gan, batch


def test_step_updates_generator_discriminator_and_ema(setup):
  gan, batch = setup
  state = gan.init(jax.random.key(0))
  step = jax.jit(functools.partial(gan_lib.train_step, gan))
  new, metrics = step(state, batch, jax.random.key(1))
  assert int(new.step) == 1
  assert tree_distance(new.g_params, state.g_params) > 0, 'the generator did not train'
  assert tree_distance(new.d_params, state.d_params) > 0, 'the discriminator did not train'
  assert tree_distance(new.ema_params, state.ema_params) > 0
  assert tree_distance(new.g_stats, state.g_stats) > 0, 'batch-norm statistics did not move'
  assert float(metrics['g_grad_norm']) > 0 and float(metrics['d_grad_norm']) > 0
  assert all(np.isfinite(float(v)) for v in metrics.values())


def test_discriminator_loss_falls_on_a_fixed_batch(setup):
  gan, batch = setup
  state = gan.init(jax.random.key(0))
  step = jax.jit(functools.partial(gan_lib.train_step, gan))
  # Freeze G (zero learning rate) by restoring its params each step: D alone must learn.
  losses = []
  for _ in range(15):
    g_params, g_opt, g_stats = state.g_params, state.g_opt, state.g_stats
    state, metrics = step(state, batch, jax.random.key(0))
    state = state.replace(
      g_params=g_params, g_opt=g_opt, g_stats=g_stats, step=jnp.zeros_like(state.step)
    )
    losses.append(float(metrics['d_loss']))
  assert losses[-1] < 0.75 * losses[0], losses
  assert sum(b < a for a, b in zip(losses, losses[1:])) >= 12, losses


def test_generator_gets_gradient_from_the_discriminator(setup):
  """A G step with D's output detached from G would give a zero G gradient."""
  gan, batch = setup
  state = gan.init(jax.random.key(0))
  _, metrics = jax.jit(functools.partial(gan_lib.train_step, gan))(state, batch, jax.random.key(2))
  assert float(metrics['g_grad_norm']) > 1e-6


def test_ema_warmup_starts_fast_and_ends_at_decay(setup):
  gan, _ = setup
  assert float(gan.ema_decay_at(0)) == pytest.approx(0.1)
  assert float(gan.ema_decay_at(10**6)) == pytest.approx(gan.ema_decay)
