"""Morpho-MNIST's morphometrics: shape attributes measured from a digit image itself.

Castro, Tan, Kainz, Konukoglu and Glocker, "Morpho-MNIST: Quantitative Assessment and
Diagnostics for Representation Learning", JMLR 2019. The procedure follows the paper and its
public code: the 28x28 image is upsampled 4x (a cubic pyramid expansion), binarised at the
middle of its grey range, and reduced to its medial axis with the distance map; grey-level
central moments of the upsampled image give the slant and a shear-aligned bounding
parallelogram (2% of the mass trimmed per axis) the width and height. Every length is in
pixels of the 28x28 image:

  area       pixels of the binarised digit (px^2)
  length     length of the medial axis (px), 8-connected steps of 1 or sqrt(2)
  thickness  2 x the mean distance to the background along the medial axis (px)
  slant      arctan(-mu11 / mu02) in radians, x = column, y = row downwards: positive when the
             top of the digit lies right of its bottom ("leaning right")
  width      width of the bounding parallelogram (px), along the slanted rows
  height     height of the bounding parallelogram (px)

`measure(images)` returns one float64 array per name for a batch of greyscale images;
`measure_cached` keeps a data set's table in the user's cache directory, keyed by the images'
content, so a data set is measured once.
"""

from concurrent import futures
import functools
import hashlib
import os

import numpy as np
from scipy import ndimage

ATTRIBUTES = ('area', 'length', 'thickness', 'slant', 'width', 'height')
UNITS = {
  'area': 'px^2',
  'length': 'px',
  'thickness': 'px',
  'slant': 'rad',
  'width': 'px',
  'height': 'px',
}
SCALE = 4  # Upsampling factor for sub-pixel measurement.
THRESHOLD = 0.5  # Binarisation at this fraction of the grey range.
BOUND_FRAC = 0.02  # Mass trimmed (half on each side) for the bounding parallelogram.
VERSION = 1  # Part of the cache key: bump when a measurement changes.


def _as_greyscale_batch(images) -> np.ndarray:
  images = np.asarray(images)
  if images.ndim == 4 and images.shape[-1] == 1:
    images = images[..., 0]
  if images.ndim == 2:
    images = images[None]
  if images.ndim != 3:
    raise ValueError(f'morphometrics need greyscale images (N, H, W[, 1]), got {images.shape}')
  if images.dtype != np.uint8:
    raise ValueError(f'morphometrics need uint8 images (0..255), got {images.dtype}')
  return images


def upsample(images: np.ndarray) -> np.ndarray:
  """(N, H, W) uint8 -> (N, 4H, 4W) uint8: cubic pyramid expansion, as the reference does."""
  from skimage import transform  # pylint: disable=g-import-not-at-top

  up = transform.pyramid_expand(images, upscale=SCALE, order=3, channel_axis=0)
  return (255.0 * up).astype(np.uint8)


def _patch_pixels(index: int) -> np.ndarray:
  """The 3x3 binary patch whose pixels are the bits of `index` (row-major, bit 4 the centre)."""
  return np.array([(index >> k) & 1 for k in range(9)], bool).reshape(3, 3)


@functools.cache
def _medial_axis_tables() -> tuple[np.ndarray, np.ndarray]:
  """skimage's medial-axis lookup tables over the 512 3x3 patches: whether the centre pixel
  stays (it is foreground, and removing it changes the patch's 8-connected component count
  or leaves fewer than 3 pixels), and the patch's cornerness (its background count). skimage
  rebuilds them on every call, which is most of its time on a 112x112 digit."""
  eight = np.ones((3, 3), bool)
  keep = np.zeros(512, np.uint8)
  corner = np.zeros(512, np.int64)
  for index in range(512):
    patch = _patch_pixels(index)
    corner[index] = 9 - patch.sum()
    if patch[1, 1]:
      without = patch.copy()
      without[1, 1] = False
      changes = ndimage.label(patch, eight)[1] != ndimage.label(without, eight)[1]
      keep[index] = changes or patch.sum() < 3
  return keep, corner


def _patch_indices(binary: np.ndarray) -> np.ndarray:
  """Each pixel's 3x3 neighbourhood as a 9-bit index (zero outside the image)."""
  padded = np.pad(binary, 1).astype(np.int64)
  h, w = binary.shape
  index = np.zeros((h, w), np.int64)
  for k in range(9):
    dr, dc = divmod(k, 3)
    index |= padded[dr : dr + h, dc : dc + w] << k
  return index


def _skeleton_and_distance(binary: np.ndarray):
  """`skimage.morphology.medial_axis(binary, return_distance=True, rng=42)`, bit for bit, with
  its lookup tables built once (tests/test_morpho.py compares the two); the fixed rng makes
  its random tie-breaking reproducible."""
  try:
    from skimage.morphology._skeletonize_various_cy import _skeletonize_loop  # pylint: disable=g-import-not-at-top
  except ImportError:  # Another scikit-image: its public function, slower.
    from skimage import morphology  # pylint: disable=g-import-not-at-top

    return morphology.medial_axis(binary, return_distance=True, rng=42)
  keep, cornerness = _medial_axis_tables()
  distance = ndimage.distance_transform_edt(binary)
  corner_score = cornerness[_patch_indices(binary)]
  rows, cols = np.nonzero(binary)
  tiebreak = np.random.default_rng(42).permutation(np.arange(len(rows)))
  order = np.lexsort((tiebreak, corner_score[binary], distance[binary])).astype(np.int32)
  result = np.ascontiguousarray(binary, np.uint8)
  _skeletonize_loop(
    result, rows.astype(np.intp), cols.astype(np.intp), np.ascontiguousarray(order), keep
  )
  return result.astype(bool), distance


def _skeleton_lengths(skeleton: np.ndarray) -> np.ndarray:
  """Per image, the summed length of the steps between 8-connected skeleton pixels (each pair
  counted once: its right, down-left, down and down-right neighbour)."""
  s = np.pad(skeleton.astype(np.float64), ((0, 0), (1, 1), (1, 1)))
  core = s[:, 1:-1, 1:-1]
  right = s[:, 1:-1, 2:]
  down_left, down, down_right = s[:, 2:, :-2], s[:, 2:, 1:-1], s[:, 2:, 2:]
  steps = right + down + np.sqrt(2.0) * (down_left + down_right)
  return np.einsum('nij,nij->n', core, steps)


def _moments(hires: np.ndarray):
  """Centroid row, mu11 and mu02 of each grey-level image (x = column, y = row)."""
  img = hires.astype(np.float64)
  _, h, w = img.shape
  x = np.arange(w, dtype=np.float64)[None, None, :]
  y = np.arange(h, dtype=np.float64)[None, :, None]
  mass = img.sum((1, 2))
  mean = lambda f: (f * img).sum((1, 2)) / mass
  m10, m01 = mean(x), mean(y)
  mu11 = mean(x * y) - m10 * m01
  mu02 = mean(y * y) - m01 * m01
  return m01, mu11, mu02


def _parallelogram(img: np.ndarray, shear: float, middle: float) -> tuple[float, float]:
  """(width, height) in upsampled pixels of the bounding parallelogram whose sides follow
  `shear`, trimming BOUND_FRAC of the mass: mass-CDFs along the sheared rows and the rows."""
  h, w = img.shape
  mass = img.astype(np.float64)
  total = mass.sum()
  # Column position of each pixel once the shear is undone; the CDF at column t counts the mass
  # strictly left of t.
  x = np.arange(w)[None, :] + 0.5 - shear * (np.arange(h)[:, None] - middle)
  order = np.argsort(x, axis=None, kind='stable')
  sorted_x = x.ravel()[order]
  cum = np.concatenate([[0.0], np.cumsum(mass.ravel()[order])])
  locs = np.arange(w)
  h_cdf = cum[np.searchsorted(sorted_x, locs, side='left')] / total
  v_cdf = np.concatenate([[0.0], np.cumsum(mass.sum(1))[:-1]]) / total
  half = BOUND_FRAC / 2
  left, right = np.interp([half, 1.0 - half], h_cdf, locs)
  top, bottom = np.interp([half, 1.0 - half], v_cdf, np.arange(h))
  return right - left, bottom - top


def _measure_chunk(images: np.ndarray) -> np.ndarray:
  """(N, 6) morphometrics of a chunk of (N, H, W) uint8 images, in ATTRIBUTES order."""
  hires = upsample(images)
  lo = hires.min((1, 2), keepdims=True).astype(np.float64)
  hi = hires.max((1, 2), keepdims=True).astype(np.float64)
  binary = (hires >= lo + (hi - lo) * THRESHOLD) & (hi > lo)  # A blank image has no digit.
  skeleton = np.zeros_like(binary)
  distance = np.zeros(binary.shape, np.float64)
  for i in range(len(binary)):
    skeleton[i], distance[i] = _skeleton_and_distance(binary[i])
  on_axis = skeleton.sum((1, 2))
  with np.errstate(invalid='ignore', divide='ignore'):
    thickness = 2.0 * (distance * skeleton).sum((1, 2)) / on_axis / SCALE
    middle, mu11, mu02 = _moments(hires)
    shear = mu11 / mu02
  out = np.empty((len(images), len(ATTRIBUTES)))
  out[:, 0] = binary.sum((1, 2)) / SCALE**2
  out[:, 1] = _skeleton_lengths(skeleton) / SCALE
  out[:, 2] = thickness
  out[:, 3] = np.arctan(-shear)
  for i in range(len(images)):
    if np.isfinite(shear[i]):
      width, height = _parallelogram(hires[i], shear[i], middle[i])
    else:  # A blank image: nothing to bound.
      width = height = np.nan
    out[i, 4], out[i, 5] = width / SCALE, height / SCALE
  return out


def measure(images, workers: int | None = None, chunk: int = 250) -> dict[str, np.ndarray]:
  """The morphometrics of each greyscale uint8 image: {name: (N,) float64}, names in
  ATTRIBUTES order. A blank image measures NaN. `workers` threads share the chunks
  (default: the CPUs this process may use); skimage and numpy release the GIL in their loops.
  """
  images = _as_greyscale_batch(images)
  chunks = [images[i : i + chunk] for i in range(0, len(images), chunk)]
  workers = workers or len(os.sched_getaffinity(0))
  if workers > 1 and len(chunks) > 1:
    with futures.ThreadPoolExecutor(workers) as pool:
      parts = list(pool.map(_measure_chunk, chunks))
  else:
    parts = [_measure_chunk(c) for c in chunks]
  table = np.concatenate(parts) if parts else np.zeros((0, len(ATTRIBUTES)))
  return {name: table[:, i] for i, name in enumerate(ATTRIBUTES)}


def content_key(images) -> str:
  """A short hash of the images' bytes and shape, and of this module's VERSION."""
  images = np.ascontiguousarray(images)
  digest = hashlib.sha256(f'{images.shape}|{images.dtype}|v{VERSION}'.encode())
  digest.update(images.tobytes())
  return digest.hexdigest()[:16]


def cache_dir() -> str:
  """$GAN_JAX_CACHE or ~/.cache/gan_jax, then morpho/."""
  root = os.environ.get('GAN_JAX_CACHE') or os.path.join('~', '.cache', 'gan_jax')
  return os.path.join(os.path.expanduser(root), 'morpho')


def measure_cached(images, log=None) -> dict[str, np.ndarray]:
  """`measure(images)`, kept in cache_dir() under the images' content key (an .npz loaded
  without pickle), so each data set is measured once per machine."""
  path = os.path.join(cache_dir(), content_key(images) + '.npz')
  if os.path.exists(path):
    with np.load(path, allow_pickle=False) as f:
      return {name: f[name] for name in ATTRIBUTES}
  if log:
    log(f'measuring the morphometrics of {len(images)} images (cached in {cache_dir()})')
  table = measure(images)
  os.makedirs(os.path.dirname(path), exist_ok=True)
  tmp = f'{path}.{os.getpid()}.tmp.npz'
  np.savez(tmp, **table)
  os.replace(tmp, path)
  return table
