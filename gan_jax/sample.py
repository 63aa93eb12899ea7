"""--mode=sample: images from a trained generator, as PNG files, an .npz and a grid."""

import os

import jax
from jax.experimental import multihost_utils
import numpy as np

from gan_jax import experiment as experiment_lib
from gan_jax import generation
from gan_jax import pictures
from gan_jax.errors import UserError


def write_samples(
  config, workdir: str, num_samples: int, seed: int, truncation: float = 0.0, hardware=None
) -> str:
  """Writes `num_samples` images from the EMA generator of the latest checkpoint; returns the
  folder.

  The folder holds one PNG per image, `samples.npz` (uint8 `images`; for conditional models
  the requested `labels`, cycling 0, 1, 2, ...), `grid.png` (one row per class for
  conditional models) and `interpolation.png` (a slerp between two noise vectors).
  """
  if num_samples <= 0:
    raise UserError(f'--num_samples must be positive, got {num_samples}')
  if truncation < 0:
    raise UserError(f'--truncation must be >= 0 (0 = off), got {truncation}')
  experiment, step, state = experiment_lib.restore_for_inference(config, workdir, hardware=hardware)
  gan = experiment.gan
  name = f'step_{step:06d}_seed_{seed}_n{num_samples}' + (
    f'_trunc{truncation:g}' if truncation > 0 else ''
  )
  out_dir = os.path.join(os.path.abspath(workdir), 'generated', name)
  if os.path.exists(out_dir):
    raise UserError(f'{out_dir!r} already exists; choose another --sample_seed or --num_samples')
  if jax.process_count() > 1:  # Every process checks before process 0 can create it.
    multihost_utils.sync_global_devices(f'sample: checked {out_dir}')
  z_rng, strip_rng = jax.random.split(jax.random.key(seed))
  z = generation.truncated_normal(z_rng, (num_samples, gan.latent_dim), truncation)
  labels = np.arange(num_samples, dtype=np.int32) % gan.num_classes if gan.num_classes else None
  images = generation.ema_images(gan, state, z, labels)
  if jax.process_index() != 0:
    return out_dir
  tmp_dir = out_dir + '.partial'
  os.makedirs(tmp_dir, exist_ok=True)
  for i, image in enumerate(images):
    pictures.save_png(os.path.join(tmp_dir, f'{i:06d}.png'), image, min_size=0)
  arrays = {'images': images, 'step': np.int64(step), 'seed': np.int64(seed)}
  if labels is not None:
    arrays['labels'] = labels
    by_class, _ = generation.class_rows(images, labels, gan.num_classes)
    grid = pictures.grid(by_class, rows=gan.num_classes)
  else:
    grid = pictures.grid(images[:256])
  np.savez(os.path.join(tmp_dir, 'samples.npz'), **arrays)
  pictures.save_png(os.path.join(tmp_dir, 'grid.png'), grid)
  pictures.save_png(
    os.path.join(tmp_dir, 'interpolation.png'),
    generation.interpolation_strip(gan, state, strip_rng, truncation=truncation),
  )
  os.replace(tmp_dir, out_dir)
  return out_dir
