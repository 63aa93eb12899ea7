"""Images from a GAN's EMA generator: noise, batched generation, grids and interpolations.

Everything that turns a trained `gan.GAN` and its state into images lives here, for the train
loop's sample grids, --mode=sample, the judge and bench/ alike. `gan` is any object with
`apply_generator`, `latent_dim` and `num_classes` (gan.GAN); this module imports no experiment code.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np

from gan_jax import data
from gan_jax import pictures


@functools.partial(jax.jit, static_argnums=(0,))
def generate_ema(gan, state, z, labels):
  """Images from the EMA generator in inference mode (running batch-norm statistics)."""
  return gan.apply_generator(state.ema_params, state.g_stats, z, labels, train=False)[0]


def fixed_noise(gan, config, count: int | None = None):
  """The noise (and labels in blocks: 0, 0, ..., 1, 1, ...) behind every sample grid of a run."""
  count = count or config.eval.num_grid_samples
  z = jax.random.normal(jax.random.key(config.eval.grid_seed), (count, gan.latent_dim))
  labels = (jnp.arange(count) * gan.num_classes) // count if gan.num_classes else None
  return z, labels


def truncated_normal(rng, shape, truncation: float):
  """N(0, 1) noise; with truncation > 0, values beyond +-truncation are redrawn (BigGAN)."""
  if truncation <= 0:
    return jax.random.normal(rng, shape)
  return jax.random.truncated_normal(rng, -truncation, truncation, shape)


def slerp(z0, z1, t):
  """Spherical interpolation between noise vectors (stays on the Gaussian shell)."""
  n0, n1 = (
    z0 / jnp.linalg.norm(z0, axis=-1, keepdims=True),
    z1 / jnp.linalg.norm(z1, axis=-1, keepdims=True),
  )
  omega = jnp.arccos(jnp.clip(jnp.sum(n0 * n1, -1, keepdims=True), -1.0, 1.0))
  so = jnp.maximum(jnp.sin(omega), 1e-6)
  return (jnp.sin((1.0 - t) * omega) / so) * z0 + (jnp.sin(t * omega) / so) * z1


def ema_images(
  gan, state, z, labels, batch_size: int = 256, pad: bool = False, meter=None
) -> np.ndarray:
  """uint8 images from the EMA generator, in batches; `labels` is the condition: None,
  labels, or a condition dict (gan_jax/conditioning/). With `pad`, the last batch is padded
  to `batch_size`, so one compiled program makes every image whatever their number (--seeds
  relies on it).
  `meter` (progress.Meter) counts the images made."""

  def batch(x, i):
    x = x[i : i + batch_size]
    if pad and len(x) < batch_size:
      x = np.concatenate([x, np.repeat(np.asarray(x[-1:]), batch_size - len(x), axis=0)])
    return x

  out = []
  for i in range(0, len(z), batch_size):
    images = generate_ema(gan, state, batch(z, i), jax.tree.map(lambda x, i=i: batch(x, i), labels))
    out.append(data.to_uint8(jax.device_get(images))[: min(batch_size, len(z) - i)])
    if meter is not None:
      meter.update(len(out[-1]))
  return np.concatenate(out)


def seed_noise(seeds, latent_dim: int, truncation: float = 0.0) -> np.ndarray:
  """One noise vector per seed, each a function of its seed alone (--seeds)."""
  keys = jax.vmap(jax.random.key)(jnp.asarray(seeds, jnp.uint32))
  return np.asarray(jax.vmap(lambda k: truncated_normal(k, (latent_dim,), truncation))(keys))


def class_rows(images: np.ndarray, labels: np.ndarray, num_classes: int, per_row: int = 10):
  """One row per class: the first `per_row` images generated for it."""
  rows = [images[labels == c][:per_row] for c in range(num_classes)]
  per_row = min(len(r) for r in rows)
  return np.concatenate([r[:per_row] for r in rows]), per_row


def interpolation_strip(gan, state, rng, steps: int = 10, truncation: float = 0.0):
  """Slerp between two noise vectors: one row, or one row per class (same z) if conditional."""
  ends = truncated_normal(rng, (2, gan.latent_dim), truncation)
  z = slerp(ends[0][None], ends[1][None], jnp.linspace(0.0, 1.0, steps)[:, None])
  if not gan.num_classes:
    return pictures.grid(ema_images(gan, state, z, None), rows=1)
  labels = jnp.repeat(jnp.arange(gan.num_classes), steps)
  images = ema_images(gan, state, jnp.tile(z, (gan.num_classes, 1)), labels)
  return pictures.grid(images, rows=gan.num_classes)


def generate_images(gan, state, num: int, seed: int, truncation: float = 0.0, condition=None):
  """(`num` uint8 images from the EMA generator, their condition), from noise of `seed`
  truncated at `truncation` (0 = off). `condition` (labels or a condition dict, one row
  per image) defaults to labels cycling over the classes if conditional."""
  z = truncated_normal(jax.random.key(seed), (num, gan.latent_dim), truncation)
  if condition is None and gan.num_classes:
    condition = np.arange(num, dtype=np.int32) % gan.num_classes
  return ema_images(gan, state, z, condition), condition
