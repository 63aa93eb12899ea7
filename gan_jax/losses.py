"""GAN losses by name. Each is a pair of functions of discriminator logits (shape (B,)):
`d(real_logits, fake_logits) -> scalar` and `g(fake_logits) -> scalar`."""

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp

from gan_jax.errors import UserError


class GANLoss(NamedTuple):
  d: Callable[[jax.Array, jax.Array], jax.Array]
  g: Callable[[jax.Array], jax.Array]


def _ns_d(real, fake):
  # -log sigmoid(real) - log(1 - sigmoid(fake)), in the stable softplus form.
  return jnp.mean(jax.nn.softplus(-real)) + jnp.mean(jax.nn.softplus(fake))


def _ns_g(fake):
  return jnp.mean(jax.nn.softplus(-fake))


def _hinge_d(real, fake):
  return jnp.mean(jax.nn.relu(1.0 - real)) + jnp.mean(jax.nn.relu(1.0 + fake))


def _wasserstein_d(real, fake):
  return jnp.mean(fake) - jnp.mean(real)


def _mean_negative(fake):  # The generator side of both hinge and Wasserstein losses.
  return -jnp.mean(fake)


def _lsgan_d(real, fake):
  return 0.5 * (jnp.mean((real - 1.0) ** 2) + jnp.mean(fake ** 2))


def _lsgan_g(fake):
  return 0.5 * jnp.mean((fake - 1.0) ** 2)


LOSSES = {
    'non_saturating': GANLoss(_ns_d, _ns_g),
    'hinge': GANLoss(_hinge_d, _mean_negative),
    'wasserstein': GANLoss(_wasserstein_d, _mean_negative),
    'least_squares': GANLoss(_lsgan_d, _lsgan_g),
}


def get(name: str) -> GANLoss:
  if name not in LOSSES:
    raise UserError(f"unknown loss '{name}': choose from {sorted(LOSSES)}")
  return LOSSES[name]
