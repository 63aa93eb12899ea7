"""--mode=sample: images from a trained generator, as PNG files, an .npz and a grid."""

import os

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import multihost_utils

from gan_jax import data
from gan_jax import gan as gan_lib
from gan_jax import images as image_lib
from gan_jax import train
from gan_jax.errors import UserError


def truncated_normal(rng, shape, truncation: float):
  """N(0, 1) noise; with truncation > 0, values beyond +-truncation are redrawn (BigGAN)."""
  if truncation <= 0:
    return jax.random.normal(rng, shape)
  return jax.random.truncated_normal(rng, -truncation, truncation, shape)


def slerp(z0, z1, t):
  """Spherical interpolation between noise vectors (stays on the Gaussian shell)."""
  n0, n1 = z0 / jnp.linalg.norm(z0, axis=-1, keepdims=True), z1 / jnp.linalg.norm(
      z1, axis=-1, keepdims=True)
  omega = jnp.arccos(jnp.clip(jnp.sum(n0 * n1, -1, keepdims=True), -1.0, 1.0))
  so = jnp.maximum(jnp.sin(omega), 1e-6)
  return (jnp.sin((1.0 - t) * omega) / so) * z0 + (jnp.sin(t * omega) / so) * z1


def generate(gan, state, z, labels, batch_size: int = 256) -> np.ndarray:
  """uint8 images from the EMA generator, in batches."""
  return np.concatenate([
      data.to_uint8(jax.device_get(gan_lib.generate_ema(
          gan, state, z[i:i + batch_size], None if labels is None else labels[i:i + batch_size])))
      for i in range(0, len(z), batch_size)])


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
    return image_lib.grid(generate(gan, state, z, None), rows=1)
  labels = jnp.repeat(jnp.arange(gan.num_classes), steps)
  images = generate(gan, state, jnp.tile(z, (gan.num_classes, 1)), labels)
  return image_lib.grid(images, rows=gan.num_classes)


def write_samples(config, workdir: str, num_samples: int, seed: int,
                  truncation: float = 0.0) -> str:
  """Writes `num_samples` images from the EMA generator of the latest checkpoint; returns the folder.

  The folder holds one PNG per image, `samples.npz` (uint8 `images`; for conditional models
  the requested `labels`, cycling 0, 1, 2, ...), `grid.png` (one row per class for
  conditional models) and `interpolation.png` (a slerp between two noise vectors).
  """
  if num_samples <= 0:
    raise UserError(f'--num_samples must be positive, got {num_samples}')
  if truncation < 0:
    raise UserError(f'--truncation must be >= 0 (0 = off), got {truncation}')
  experiment, step, state = train.restore_for_inference(config, workdir)
  gan = experiment.gan
  name = f'step_{step:06d}_seed_{seed}_n{num_samples}' + (
      f'_trunc{truncation:g}' if truncation > 0 else '')
  out_dir = os.path.join(os.path.abspath(workdir), 'generated', name)
  if os.path.exists(out_dir):
    raise UserError(f'{out_dir!r} already exists; choose another --sample_seed or --num_samples')
  if jax.process_count() > 1:  # Every process checks before process 0 can create it.
    multihost_utils.sync_global_devices(f'sample: checked {out_dir}')
  z_rng, strip_rng = jax.random.split(jax.random.key(seed))
  z = truncated_normal(z_rng, (num_samples, gan.latent_dim), truncation)
  labels = np.arange(num_samples, dtype=np.int32) % gan.num_classes if gan.num_classes else None
  images = generate(gan, state, z, labels)
  if jax.process_index() != 0:
    return out_dir
  tmp_dir = out_dir + '.partial'
  os.makedirs(tmp_dir, exist_ok=True)
  for i, image in enumerate(images):
    image_lib.save_png(os.path.join(tmp_dir, f'{i:06d}.png'), image, min_size=0)
  arrays = {'images': images, 'step': np.int64(step), 'seed': np.int64(seed)}
  if labels is not None:
    arrays['labels'] = labels
    by_class, _ = class_rows(images, labels, gan.num_classes)
    grid = image_lib.grid(by_class, rows=gan.num_classes)
  else:
    grid = image_lib.grid(images[:256])
  np.savez(os.path.join(tmp_dir, 'samples.npz'), **arrays)
  image_lib.save_png(os.path.join(tmp_dir, 'grid.png'), grid)
  image_lib.save_png(os.path.join(tmp_dir, 'interpolation.png'),
                     interpolation_strip(gan, state, strip_rng, truncation=truncation))
  os.replace(tmp_dir, out_dir)
  return out_dir
