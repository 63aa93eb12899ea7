"""Inception FID/KID/IS from a weights file the user supplies, equal to pytorch-fid's.

    python -m gan_jax.fid PATH_A PATH_B --weights pt_inception-2015-12-05-6726825d.pth

Each PATH is a folder of images (read as pytorch-fid reads them: RGB, [0, 1]), an .npz of images
(an `images` array, or its only array: uint8, or floats in [0, 1]; NHWC or NHW), or an .npz of
statistics (`mu`, `sigma`, as pytorch-fid's --save-stats writes). The last line printed is
`FID: <value>`. The weights file is pytorch-fid's, read without torch and without running code
from it (gan_jax/torch_weights.py); its SHA-256 is checked against the published file's.
"""

import dataclasses
import os
import sys

import jax
import jax.numpy as jnp
import numpy as np

from gan_jax import metrics
from gan_jax import progress
from gan_jax import sharding as sharding_lib
from gan_jax import torch_weights
from gan_jax.errors import ArgumentParser
from gan_jax.errors import UserError
from gan_jax.models import inception

WEIGHTS_FILE = 'pt_inception-2015-12-05-6726825d.pth'
# torch.hub's convention: the name's suffix is the start of the file's SHA-256.
WEIGHTS_SHA256_PREFIX = '6726825d'
IMAGE_EXTENSIONS = ('bmp', 'jpg', 'jpeg', 'pgm', 'png', 'ppm', 'tif', 'tiff', 'webp')


@dataclasses.dataclass(frozen=True)
class Weights:
  """FIDInception's variables and the file they came from."""

  variables: dict
  path: str
  sha256: str

  @property
  def published(self) -> bool:
    """True when the file is pytorch-fid's published one (its numbers compare with papers)."""
    return self.sha256.startswith(WEIGHTS_SHA256_PREFIX)


def load_weights(path: str, quiet: bool = False) -> Weights:
  """pytorch-fid's FID Inception weights from a local `.pth`, checked in full."""
  path = os.path.abspath(os.path.expanduser(path))
  state = torch_weights.load_state_dict(path)
  variables = inception.variables_from_state_dict(state, repr(path))
  weights = Weights(jax.device_put(variables), path, torch_weights.sha256(path))
  if not weights.published and not quiet:
    print(
      f"note: {path} has SHA-256 {weights.sha256[:16]}..., not that of pytorch-fid's "
      f'{WEIGHTS_FILE} ({WEIGHTS_SHA256_PREFIX}...): its numbers are not comparable with '
      'published ones',
      file=sys.stderr,
    )
  return weights


_apply = jax.jit(lambda variables, images: inception.FIDInception().apply(variables, images))


def default_num_samples() -> int:
  """Generated images judged when `config.eval.inception_num_samples` is 0: the 50,000 of
  papers' FID (StyleGAN's and R3GAN's fid50k_full) on an accelerator, 10,000 on a CPU."""
  return 10_000 if jax.default_backend() == 'cpu' else 50_000


def default_batch_size() -> int:
  """XLA:CPU runs this network fastest on small batches (bench/inception_speed.py: 7.9 images/s
  at 10 against 5.2 at 100; docs/inception.md); accelerators want large ones."""
  return 10 if jax.default_backend() == 'cpu' else 200


def features(
  weights, images, batch_size: int | None = None, mesh=None, what: str = 'Inception features'
) -> tuple[np.ndarray, np.ndarray]:
  """(2048-d pool features, 1,008 unbiased logits) of uint8 or [0, 1] float NHWC images, in
  batches of one compiled shape; with a mesh, each batch is split over its batch axes. A
  progress line on stderr names the pass `what` ('' = none)."""
  variables = weights.variables if isinstance(weights, Weights) else weights
  batch_size = batch_size or default_batch_size()
  devices = 1 if mesh is None else mesh.size
  batch_size = -(-min(batch_size, max(len(images), 1)) // devices) * devices
  where = None if mesh is None else sharding_lib.batch_sharding(mesh)
  pools, logits = [], []
  meter = progress.Meter(
    len(images), what, 'images', enabled=bool(what) and jax.process_index() == 0
  )
  for start in range(0, len(images), batch_size):
    chunk = np.asarray(images[start : start + batch_size])
    count = len(chunk)
    if chunk.dtype == np.uint8:
      chunk = chunk.astype(np.float32) / 255.0
    if count < batch_size:
      chunk = np.concatenate([chunk, np.zeros((batch_size - count, *chunk.shape[1:]), chunk.dtype)])
    chunk = jnp.asarray(chunk) if where is None else jax.device_put(chunk, where)
    pool, logit = jax.device_get(_apply(variables, chunk))
    pools.append(pool[:count])
    logits.append(logit[:count])
    meter.update(count)
  meter.close()
  return np.concatenate(pools), np.concatenate(logits)


def read_images(path: str):
  """A folder or .npz of images -> list of uint8/float NHWC arrays, one per image size; or the
  (mu, sigma) of an .npz of statistics."""
  if os.path.isdir(path):
    from PIL import Image  # Only folders need PIL.

    files = sorted(
      os.path.join(path, f)
      for f in os.listdir(path)
      if '.' in f
      and f.rsplit('.', 1)[-1] in IMAGE_EXTENSIONS
      and os.path.isfile(os.path.join(path, f))
    )
    if not files:
      raise UserError(f'no images ({", ".join(IMAGE_EXTENSIONS)}) in folder {path!r}')
    by_size = {}
    for f in files:
      try:
        with Image.open(f) as img:
          image = np.asarray(img.convert('RGB'))
      except OSError as e:
        raise UserError(f'cannot read image {f!r}: {e}') from None
      by_size.setdefault(image.shape, []).append(image)
    return [np.stack(group) for group in by_size.values()]
  if not path.endswith('.npz') or not os.path.isfile(path):
    raise UserError(f'{path!r} is neither a folder of images nor an .npz file')
  try:
    with np.load(path, allow_pickle=False) as f:
      if 'mu' in f and 'sigma' in f:
        return f['mu'].astype(np.float64), f['sigma'].astype(np.float64)
      keys = list(f.keys())
      key = 'images' if 'images' in keys else (keys[0] if len(keys) == 1 else None)
      if key is None:
        raise UserError(f'{path!r} holds {keys}: expected `images` (or one array) or mu/sigma')
      images = f[key]
  except (ValueError, OSError) as e:
    raise UserError(f'cannot read {path!r}: {e}') from None
  if images.ndim == 3:
    images = images[..., None]
  if images.ndim != 4 or images.shape[-1] not in (1, 3) or not len(images):
    raise UserError(f'{path!r}: images must be N x H x W [x 1 or 3], got shape {images.shape}')
  if images.dtype != np.uint8:
    images = images.astype(np.float32)
    if images.min() < 0 or images.max() > 1:
      raise UserError(f'{path!r}: float images must lie in [0, 1] (uint8 for 0-255)')
  return [images]


def path_statistics(path: str, weights: Weights, batch_size: int | None = None, mesh=None):
  loaded = read_images(path)
  if isinstance(loaded, tuple):
    return loaded
  pool = np.concatenate(
    [
      features(weights, group, batch_size, mesh, f'Inception features of {path}')[0]
      for group in loaded
    ]
  )
  return metrics.feature_statistics(pool)  # float64, np.cov's n - 1, as pytorch-fid


def main(argv=None) -> int:
  parser = ArgumentParser(prog='python -m gan_jax.fid', description=__doc__.split('\n')[0])
  parser.add_argument('paths', nargs=2, metavar='PATH', help='folder of images or .npz')
  parser.add_argument('--weights', required=True, help=f"pytorch-fid's {WEIGHTS_FILE}")
  parser.add_argument('--batch-size', type=int, default=None, help='default: 10 on CPU, 200 else')
  parser.add_argument(
    '--save-stats', action='store_true', help="write the first PATH's mu/sigma to the second"
  )
  args = parser.parse_args(argv)
  try:
    if args.batch_size is not None and args.batch_size < 1:
      raise UserError(f'--batch-size must be positive, got {args.batch_size}')
    weights = load_weights(args.weights)
    mesh = sharding_lib.make_mesh((('data', -1),)) if jax.device_count() > 1 else None
    if args.save_stats:
      out = args.paths[1]
      if not out.endswith('.npz') or os.path.isdir(out):
        raise UserError(f'--save-stats writes an .npz file, not {out!r}')
      mu, sigma = path_statistics(args.paths[0], weights, args.batch_size, mesh)
      np.savez(out, mu=mu, sigma=sigma)
      print(f'wrote {out}')
      return 0
    a, b = (path_statistics(p, weights, args.batch_size, mesh) for p in args.paths)
    if a[0].shape != b[0].shape:
      raise UserError(f'statistics of different sizes: {a[0].shape} and {b[0].shape}')
    print(f'FID: {metrics.frechet_distance(*a, *b)}')
    return 0
  except UserError as e:
    print(f'error: {e}', file=sys.stderr)
    return 1


if __name__ == '__main__':
  sys.exit(main())
