"""GAN losses by name. Each is a pair of functions of discriminator logits (shape (B,)):
`d(real_logits, fake_logits) -> scalar` and `g(real_logits, fake_logits) -> scalar`.

Only relativistic losses (`paired=True`) read the real logits in `g`; for the others the
train step passes None and spends no discriminator pass on real images in G's update.
"""

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp

from gan_jax.errors import UserError


class GANLoss(NamedTuple):
  d: Callable[[jax.Array, jax.Array], jax.Array]
  g: Callable[[jax.Array | None, jax.Array], jax.Array]
  paired: bool = False  # g needs D(real), paired example by example with D(fake).
  # D's loss on each example it must call fake, (B,), given the real logits it is paired with
  # (read by paired losses only): the matching-aware loss's penalty on mismatched pairs.
  d_fake_each: Callable[[jax.Array, jax.Array], jax.Array] | None = None
  # The logit at which D's loss turns from calling an image fake to calling it real (ADA's
  # overfitting measure reads the sign of D(real) - boundary); None where the loss fixes no
  # such value (a Wasserstein critic or a relativistic D is defined up to a constant).
  boundary: float | None = 0.0


def _ns_d(real, fake):
  # -log sigmoid(real) - log(1 - sigmoid(fake)), in the stable softplus form.
  return jnp.mean(jax.nn.softplus(-real)) + jnp.mean(jax.nn.softplus(fake))


def _ns_g(real, fake):
  del real
  return jnp.mean(jax.nn.softplus(-fake))


def _hinge_d(real, fake):
  return jnp.mean(jax.nn.relu(1.0 - real)) + jnp.mean(jax.nn.relu(1.0 + fake))


def _wasserstein_d(real, fake):
  return jnp.mean(fake) - jnp.mean(real)


def _mean_negative(real, fake):  # The generator side of both hinge and Wasserstein losses.
  del real
  return -jnp.mean(fake)


def _lsgan_d(real, fake):
  return 0.5 * (jnp.mean((real - 1.0) ** 2) + jnp.mean(fake**2))


def _lsgan_g(real, fake):
  del real
  return 0.5 * jnp.mean((fake - 1.0) ** 2)


def _rpgan_d(real, fake):
  # Relativistic pairing (Jolicoeur-Martineau 2019; R3GAN, Huang et al. 2024): D is judged on
  # how much more real each real example looks than the fake it is paired with.
  return jnp.mean(jax.nn.softplus(fake - real))


def _rpgan_g(real, fake):
  return jnp.mean(jax.nn.softplus(real - fake))


LOSSES = {
  'non_saturating': GANLoss(_ns_d, _ns_g, d_fake_each=lambda real, fake: jax.nn.softplus(fake)),
  'hinge': GANLoss(
    _hinge_d, _mean_negative, d_fake_each=lambda real, fake: jax.nn.relu(1.0 + fake)
  ),
  'wasserstein': GANLoss(
    _wasserstein_d, _mean_negative, d_fake_each=lambda real, fake: fake, boundary=None
  ),
  'least_squares': GANLoss(
    _lsgan_d, _lsgan_g, d_fake_each=lambda real, fake: 0.5 * fake**2, boundary=0.5
  ),
  'rpgan': GANLoss(
    _rpgan_d,
    _rpgan_g,
    paired=True,
    d_fake_each=lambda real, fake: jax.nn.softplus(fake - real),
    boundary=None,
  ),
}


def mismatch(loss: GANLoss, real_logits, mismatched_logits, contradicts) -> jax.Array:
  """The matching-aware term (Reed et al. 2016): D calls a real image paired with a sentence
  that contradicts it fake. Averaged over the pairs that do contradict (`contradicts`, (B,)
  bool); 0 when none does."""
  each = loss.d_fake_each(real_logits, mismatched_logits)
  weight = contradicts.astype(each.dtype)
  return jnp.sum(each * weight) / jnp.maximum(jnp.sum(weight), 1.0)


def get(name: str) -> GANLoss:
  if name not in LOSSES:
    raise UserError(f"unknown loss '{name}': choose from {sorted(LOSSES)}")
  return LOSSES[name]
