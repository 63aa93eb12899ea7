"""--mode=sample: images from a trained generator, as PNG files, an .npz and a grid."""

import os

import jax
import jax.numpy as jnp
import numpy as np

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


def write_samples(config, workdir: str, num_samples: int, seed: int,
                  truncation: float = 0.0) -> str:
  """Writes `num_samples` images from the EMA generator of the latest checkpoint; returns the folder.

  Conditional models get labels 0, 1, 2, ... cycling (so the grid has one class per column
  and a row per draw), stored in the .npz as `labels`.
  """
  if num_samples <= 0:
    raise UserError(f'--num_samples must be positive, got {num_samples}')
  experiment, step, state = train.restore_for_inference(config, workdir)
  gan = experiment.gan
  name = f'step_{step:06d}_seed_{seed}_n{num_samples}' + (
      f'_trunc{truncation:g}' if truncation > 0 else '')
  out_dir = os.path.join(os.path.abspath(workdir), 'generated', name)
  if os.path.exists(out_dir):
    raise UserError(f'{out_dir!r} already exists; choose another --sample_seed or --num_samples')
  z = truncated_normal(jax.random.key(seed), (num_samples, gan.latent_dim), truncation)
  labels = jnp.arange(num_samples) % gan.num_classes if gan.num_classes else None
  images = np.concatenate([
      data.to_uint8(jax.device_get(gan_lib.generate_ema(
          gan, state, z[i:i + 256], None if labels is None else labels[i:i + 256])))
      for i in range(0, num_samples, 256)])
  tmp_dir = out_dir + '.partial'
  os.makedirs(tmp_dir, exist_ok=True)
  for i, image in enumerate(images):
    image_lib.save_png(os.path.join(tmp_dir, f'{i:06d}.png'), image, min_size=0)
  arrays = {'images': images, 'step': np.int64(step), 'seed': np.int64(seed)}
  if labels is not None:
    arrays['labels'] = np.asarray(labels, np.int32)
  np.savez(os.path.join(tmp_dir, 'samples.npz'), **arrays)
  rows = None
  if gan.num_classes:
    rows = int(np.ceil(num_samples / gan.num_classes))
  image_lib.save_png(os.path.join(tmp_dir, 'grid.png'), image_lib.grid(images[:256], rows))
  os.replace(tmp_dir, out_dir)
  return out_dir
