"""--mode=sample: images from a trained generator, as PNG files, an .npz and a grid.

Requests are resolved by gan_jax/sample_requests.py into a `Plan` (each image's condition and
what samples.npz records of it); this module makes the images (gan_jax/generation.py) and
writes the files. Without a request the images cycle over the classes (conditional models)
and take training rows' other parts.
"""

import os

import jax
from jax.experimental import multihost_utils
import numpy as np

from gan_jax import edits
from gan_jax import experiment as experiment_lib
from gan_jax import generation
from gan_jax import pictures
from gan_jax import progress
from gan_jax import sample_requests
from gan_jax.errors import UserError
from gan_jax.errors import quote
from gan_jax.sample_requests import Plan
from gan_jax.sample_requests import Request

GRID_COLUMNS = 16  # Images per request shown in grid.png,
GRID_ROWS = 64  # and requests.
SEED_BATCH = 64  # --seeds: every image made in batches of this shape, padded.
MAX_SEEDS = 1_000_000


def parse_seeds(text: str) -> list[int]:
  """'0-9,42' -> [0, 1, ..., 9, 42]; a one-line UserError for anything else (negative,
  reversed or malformed ranges, a seed given twice, over 2**32 - 1 or MAX_SEEDS of them)."""
  seeds = []
  for item in text.split(','):
    item = item.strip()
    first, dash, last = item.partition('-')
    if not (first.isdigit() and (not dash or last.isdigit())):
      hint = ' (seeds are non-negative)' if item.startswith('-') else ''
      raise UserError(f"--seeds: {quote(item)} is not a seed or a range like '0-63'{hint}")
    first, last = int(first), int(last) if dash else int(first)
    if last < first:
      raise UserError(f'--seeds: range {quote(item)} runs backwards')
    if last >= 2**32:
      raise UserError(f'--seeds: {last} is over the largest seed, {2**32 - 1}')
    if len(seeds) + last - first + 1 > MAX_SEEDS:
      raise UserError(f'--seeds: more than {MAX_SEEDS:,} seeds')
    seeds.extend(range(first, last + 1))
  if len(set(seeds)) != len(seeds):
    twice = next(s for i, s in enumerate(seeds) if s in seeds[:i])
    raise UserError(f'--seeds: seed {twice} is given twice')
  return seeds


def seeds_name(seeds) -> str:
  """A short name of a seed list for folder names: runs collapsed ('0-9,42'), or a hash."""
  runs, start = [], 0
  for i in range(1, len(seeds) + 1):
    if i == len(seeds) or seeds[i] != seeds[i - 1] + 1:
      runs.append(str(seeds[start]) if i - start == 1 else f'{seeds[start]}-{seeds[i - 1]}')
      start = i
  name = ','.join(runs)
  return name if len(name) <= 40 else sample_requests.digest(seeds)


def write_samples(
  config,
  workdir: str,
  num_samples: int,
  seed: int,
  truncation: float = 0.0,
  hardware=None,
  request: Request | None = None,
  seeds: list[int] | None = None,
) -> str:
  """Writes `num_samples` images (per request, if any) from the EMA generator of the latest
  checkpoint; returns the folder.

  The folder holds one PNG per image, `samples.npz` (uint8 `images`; `labels` for models
  conditioned on a label; per image what the request asked, as the plan records it, e.g.
  each requested part by name and `request_index`), `grid.png` (one
  row per class, or per request) and, for models whose conditions are drawn independently and
  no request, `interpolation.png` (a slerp between two noise vectors). The folder's name
  carries a short hash of the request.

  With `seeds` (parse_seeds), image k of each request is a function of seeds[k] alone, made in
  a batch of fixed shape, so a seed gives the same image bit for bit whatever else is asked;
  files are named by seed, samples.npz holds `seeds`, and grid.png shows the images in seed
  order (one row per request, if any). `num_samples` and `seed` are then unused.
  """
  request = request or Request()
  if seeds is not None:
    if not seeds:
      raise UserError('--seeds names no seed')
    num_samples = len(seeds)
  if num_samples <= 0:
    raise UserError(f'--num_samples must be positive, got {num_samples}')
  if truncation < 0:
    raise UserError(f'--truncation must be >= 0 (0 = off), got {truncation}')
  sample_requests.check(config, request)
  if request.projected and seeds is not None:
    raise UserError('--projected makes each projected image again: --seeds does not apply')
  experiment, step, state = experiment_lib.restore_for_inference(config, workdir, hardware=hardware)
  if request.projected:
    todo = edits.plan(config, experiment, step, request)
  else:
    todo = sample_requests.plan(config, experiment, num_samples, seed, request, seeds)
  out_dir = _output_dir(workdir, step, seed, num_samples, truncation, seeds, todo, request)
  images, names, arrays = _generate(experiment.gan, state, todo, seed, truncation, seeds)
  if jax.process_index() == 0:
    arrays = {'images': images, 'step': np.int64(step), **arrays, **todo.arrays}
    strip = None
    if seeds is None and experiment.gan.condition.drawable and not todo.rows:
      strip_rng = jax.random.split(jax.random.key(seed))[1]
      strip = generation.interpolation_strip(
        experiment.gan, state, strip_rng, truncation=truncation
      )
    _write(out_dir, names, arrays, _grid(experiment.gan, todo, images, seeds), strip)
  return out_dir


def _output_dir(workdir, step, seed, num_samples, truncation, seeds, todo, request) -> str:
  """The new folder's path (refused if it exists; every process checks before any writes)."""
  if request.projected:  # Neither the noise seed nor the count applies.
    name = f'step_{step:06d}_projected_{todo.key}'
  else:
    name = f'step_{step:06d}_' + (
      f'seed_{seed}_n{num_samples}' if seeds is None else f'seeds_{seeds_name(seeds)}'
    )
    name += f'_trunc{truncation:g}' if truncation > 0 else ''
    if todo.key:
      name += f'_{request.given[0][2:]}_{todo.key}'
  out_dir = os.path.join(os.path.abspath(workdir), 'generated', name)
  if os.path.exists(out_dir):
    raise UserError(f'{out_dir!r} already exists; choose another --sample_seed or --num_samples')
  if jax.process_count() > 1:  # Every process checks before process 0 can create it.
    multihost_utils.sync_global_devices(f'sample: checked {out_dir}')
  return out_dir


def _generate(gan, state, todo: Plan, seed: int, truncation: float, seeds):
  """(uint8 images, their file names, arrays for samples.npz) of the plan."""
  total = todo.per_request * max(todo.rows, 1)
  z_rng = jax.random.split(jax.random.key(seed))[0]
  meter = progress.Meter(total, 'sample: generating', 'images', enabled=jax.process_index() == 0)
  if todo.z is not None:  # --projected: the noise projection found.
    images = generation.ema_images(gan, state, todo.z, todo.condition, meter=meter)
    names = [f'r{r:03d}_e{e:02d}' for r in range(todo.rows) for e in range(todo.per_request)]
    arrays = {}
  elif seeds is None:
    z = generation.truncated_normal(z_rng, (total, gan.latent_dim), truncation)
    images = generation.ema_images(gan, state, z, todo.condition, meter=meter)
    names = [f'{i:06d}' for i in range(total)]
    arrays = {'seed': np.int64(seed)}
  else:
    z = np.tile(generation.seed_noise(seeds, gan.latent_dim, truncation), (max(todo.rows, 1), 1))
    images = generation.ema_images(gan, state, z, todo.condition, SEED_BATCH, True, meter)
    names = [f'seed{s:04d}' for s in seeds]
    if todo.rows:
      names = [f'r{r:03d}_{n}' for r in range(todo.rows) for n in names]
    arrays = {'seeds': np.tile(np.asarray(seeds, np.int64), max(todo.rows, 1))}
  meter.close()
  return images, names, arrays


def _write(out_dir: str, names, arrays: dict, grid, strip) -> None:
  """images/*.png (one per sample, alone in their folder so that an FID tool reading it counts
  only samples), samples.npz, grid.png and interpolation.png (if `strip`), written beside the
  folder and renamed into place, so it appears whole or not at all."""
  tmp_dir = out_dir + '.partial'
  os.makedirs(os.path.join(tmp_dir, 'images'), exist_ok=True)
  meter = progress.Meter(len(names), 'sample: writing', 'images')
  for name, image in zip(names, arrays['images']):
    pictures.save_png(os.path.join(tmp_dir, 'images', f'{name}.png'), image, min_size=0)
    meter.update(1)
  meter.close()
  np.savez(os.path.join(tmp_dir, 'samples.npz'), **arrays)
  pictures.save_png(os.path.join(tmp_dir, 'grid.png'), grid)
  if strip is not None:
    pictures.save_png(os.path.join(tmp_dir, 'interpolation.png'), strip)
  os.replace(tmp_dir, out_dir)


def _grid(gan, todo: Plan, images, seeds) -> np.ndarray:
  if seeds is not None and not todo.rows:
    return pictures.grid(images[:256])
  if todo.rows:  # One row per request, the first GRID_ROWS (--like, --projected: real first).
    shown, count = min(todo.per_request, GRID_COLUMNS), min(todo.rows, GRID_ROWS)
    rows = images.reshape(todo.rows, todo.per_request, *images.shape[1:])[:count, :shown]
    if todo.real is not None:
      rows = np.concatenate([todo.real[:count, None], rows], axis=1)
    return pictures.grid(rows.reshape(-1, *images.shape[1:]), rows=count)
  labels = todo.arrays.get('labels')
  if labels is not None:
    classes = gan.num_classes or int(labels.max()) + 1  # The classes a condition names.
    by_class, _ = generation.class_rows(images, labels, classes)
    return pictures.grid(by_class, rows=classes)
  return pictures.grid(images[:256])
