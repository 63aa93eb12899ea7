"""Discriminator regularisers for GAN training, as pure JAX functions.

* `r1_penalty` - R1 gradient penalty on real data (Mescheder et al. 2018).
* `r2_penalty` - R2, the same zero-centred penalty on generated data (R3GAN,
  Huang et al. 2024, with R1 for local convergence of the relativistic loss).
* `gradient_penalty` - WGAN-GP two-sided penalty on real/fake
  interpolates (Gulrajani et al. 2017).
* `LeCamState`, `lecam_update`, `lecam_penalty` - LeCam
  regularisation with EMA anchors (Tseng et al. 2021).

`d_apply` is any function `images (B, H, W, C) -> logits (B,) or (B, 1)`,
typically `lambda x: model.apply(params, x)`; close over the parameters to
differentiate the penalty w.r.t. them (double backprop works). The penalties
are returned without a weight (e.g. no `gamma / 2` for R1); the caller
scales them.
"""

from __future__ import annotations

from collections.abc import Callable

import flax.struct
import jax
import jax.numpy as jnp

Array = jax.Array
DApply = Callable[[Array], Array]

__all__ = [
  'r1_penalty',
  'r2_penalty',
  'gradient_penalty',
  'LeCamState',
  'lecam_update',
  'lecam_penalty',
]

# Added inside the sqrt of the per-example gradient norm so that the norm (and
# hence the gradient penalty) has a finite gradient when the input gradient is 0.
_GP_EPS = 1e-12


def _check_logits(logits: Array, batch: int) -> None:
  if logits.shape not in ((batch,), (batch, 1)):
    raise ValueError(
      f'd_apply must return logits of shape ({batch},) or ({batch}, 1), got {logits.shape}'
    )


def _input_grads(d_apply: DApply, images: Array) -> Array:
  """Per-example d logit_i / d x_i, shape like `images`.

  Uses grad of the *sum* of the logits: d(sum_j D(x_j))/dx_i = dD(x_i)/dx_i.
  This assumes D has no cross-example interaction (e.g. no batch norm in
  train mode, no minibatch-stddev layer); otherwise the result is not the
  per-example gradient.
  """

  def summed_logits(x):
    logits = d_apply(x)
    _check_logits(logits, x.shape[0])
    return jnp.sum(logits.astype(jnp.float32))

  return jax.grad(summed_logits)(images)


def _sq_norm_per_example(g: Array) -> Array:
  g = g.astype(jnp.float32)
  return jnp.sum(jnp.square(g), axis=tuple(range(1, g.ndim)))


def zero_centered_penalty(d_apply: DApply, images: Array) -> Array:
  """`E_x[ ||grad_x D(x)||^2 ]` over `images` (scalar).

  The squared norm is taken per example over (H, W, C) and averaged over the
  batch. Per-example gradients come from `jax.grad` of the sum of logits,
  which assumes D has no cross-example interaction such as batch norm in
  train mode.
  """
  grads = _input_grads(d_apply, images)
  return jnp.mean(_sq_norm_per_example(grads))


def r1_penalty(d_apply: DApply, real_images: Array) -> Array:
  """R1: the zero-centred gradient penalty on real images (`zero_centered_penalty`)."""
  return zero_centered_penalty(d_apply, real_images)


def r2_penalty(d_apply: DApply, fake_images: Array) -> Array:
  """R2: the zero-centred gradient penalty on generated images (`zero_centered_penalty`).

  Pass the fakes as constants (stop-gradient): the penalty trains D, not G.
  """
  return zero_centered_penalty(d_apply, fake_images)


def gradient_penalty(d_apply: DApply, real: Array, fake: Array, rng: Array) -> Array:
  """WGAN-GP penalty `E[(||grad D(x_hat)||_2 - 1)^2]` (scalar).

  `x_hat = alpha * real + (1 - alpha) * fake` with one
  `alpha = jax.random.uniform(rng, (B, 1, 1, 1), real.dtype)` per example.
  The L2 norm is per example over (H, W, C), computed as
  `sqrt(sum(g^2) + 1e-12)` so its gradient is finite at 0. Per-example
  gradients come from `jax.grad` of the sum of logits, which assumes D has
  no cross-example interaction such as batch norm in train mode.
  """
  if real.shape != fake.shape:
    raise ValueError(f'real and fake shapes differ: {real.shape} vs {fake.shape}')
  alpha = jax.random.uniform(rng, (real.shape[0],) + (1,) * (real.ndim - 1), real.dtype)
  x_hat = alpha * real + (1.0 - alpha) * fake
  grads = _input_grads(d_apply, x_hat)
  norms = jnp.sqrt(_sq_norm_per_example(grads) + _GP_EPS)
  return jnp.mean(jnp.square(norms - 1.0))


def _zero() -> Array:
  return jnp.zeros((), jnp.float32)


@flax.struct.dataclass
class LeCamState:
  """EMAs of the mean real and fake discriminator logits (float32 scalars).

  `LeCamState()` gives both EMAs initialised to 0.0.
  """

  ema_real: Array = flax.struct.field(default_factory=_zero)
  ema_fake: Array = flax.struct.field(default_factory=_zero)


def lecam_update(
  state: LeCamState, real_logits: Array, fake_logits: Array, decay: float = 0.99
) -> LeCamState:
  """`ema <- decay * ema + (1 - decay) * mean(logits)` for real and fake.

  Logits are stop-gradient'ed; the update carries no gradient.
  """
  real_mean = jnp.mean(jax.lax.stop_gradient(real_logits).astype(jnp.float32))
  fake_mean = jnp.mean(jax.lax.stop_gradient(fake_logits).astype(jnp.float32))
  return LeCamState(
    ema_real=decay * state.ema_real + (1.0 - decay) * real_mean,
    ema_fake=decay * state.ema_fake + (1.0 - decay) * fake_mean,
  )


def lecam_penalty(state: LeCamState, real_logits: Array, fake_logits: Array) -> Array:
  """`mean(relu(real - ema_fake)^2) + mean(relu(ema_real - fake)^2)` (scalar).

  The EMAs are stop-gradient constants; gradients flow only into the logits.
  """
  ema_real = jax.lax.stop_gradient(state.ema_real)
  ema_fake = jax.lax.stop_gradient(state.ema_fake)
  real = real_logits.astype(jnp.float32)
  fake = fake_logits.astype(jnp.float32)
  return jnp.mean(jnp.square(jax.nn.relu(real - ema_fake))) + jnp.mean(
    jnp.square(jax.nn.relu(ema_real - fake))
  )
