"""DiffAugment (Zhao et al. 2020) for NHWC images in [-1, 1], in pure JAX; and the ordinary
shift-and-rotate augmentation of the classifier recipe (`shift_rotate`).

`diff_augment(images, rng, policy)` applies the same *kind* of augmentation
to real and fake batches but with independent random parameters per example.
Every op is differentiable w.r.t. the images (affine colour maps, slicing,
mask multiplication) and jit-compatible; `policy` must be a static Python
string (close over it, or use `jax.jit(..., static_argnames="policy")`).

Adaptation of the reference constants (written for [0, 1] images) to [-1, 1]:

* saturation (deviation from the per-pixel channel mean scaled by U(0, 2)) and
  contrast (deviation from the per-image mean scaled by U(0.5, 1.5)) are
  invariant to the affine map [0, 1] -> [-1, 1], so they are used unchanged.
  Saturation is an exact no-op for 1-channel images (it is skipped).
* brightness adds U(-0.5, 0.5) per example, i.e. +-0.25 of the full [-1, 1]
  range. This keeps the reference value literally, as the reference code is
  also used unchanged on [-1, 1] GAN images; the exact [0, 1]-equivalent
  would be U(-1, 1) (set `BRIGHTNESS_MAX = 1.0` for that). No clipping, as
  in the reference.
* translation pads with 0 and cutout multiplies by a 0 mask, exactly as the
  reference does; 0 is mid-grey in [-1, 1]. We keep 0 (rather than -1, black)
  so translated-in borders and cut-out squares carry the same value and
  cutout stays a pure mask multiplication.

Random ranges follow the reference: translation shifts each example by an
integer in [-s, s] pixels per axis with `s = int(size / 8 + 0.5)` (exactly
size / 8 for sizes divisible by 8); cutout zeroes a square of side
`int(size / 2 + 0.5)` whose centre is uniform over the image, clipped at
the border (so it may be partly outside; at least about half of each side
stays inside).
"""

from __future__ import annotations

from collections.abc import Callable
import functools

import jax
from jax import lax
import jax.numpy as jnp
import jax.scipy.ndimage

Array = jax.Array

__all__ = [
  'diff_augment',
  'shift_rotate',
  'rand_brightness',
  'rand_saturation',
  'rand_contrast',
  'rand_color',
  'rand_translation',
  'rand_cutout',
  'VALID_POLICIES',
  'BRIGHTNESS_MAX',
  'TRANSLATION_RATIO',
  'CUTOUT_RATIO',
]

BRIGHTNESS_MAX = 0.5  # brightness offset ~ U(-BRIGHTNESS_MAX, BRIGHTNESS_MAX)
TRANSLATION_RATIO = 0.125
CUTOUT_RATIO = 0.5


def _per_example_uniform(rng: Array, x: Array, minval: float, maxval: float) -> Array:
  return jax.random.uniform(rng, (x.shape[0], 1, 1, 1), x.dtype, minval, maxval)


def rand_brightness(x: Array, rng: Array) -> Array:
  """Add one U(-BRIGHTNESS_MAX, BRIGHTNESS_MAX) offset per example."""
  return x + _per_example_uniform(rng, x, -BRIGHTNESS_MAX, BRIGHTNESS_MAX)


def rand_saturation(x: Array, rng: Array) -> Array:
  """Scale each pixel's deviation from its channel mean by U(0, 2) per example.

  No-op for 1-channel images.
  """
  if x.shape[-1] == 1:
    return x
  mean = jnp.mean(x, axis=-1, keepdims=True)
  return (x - mean) * _per_example_uniform(rng, x, 0.0, 2.0) + mean


def rand_contrast(x: Array, rng: Array) -> Array:
  """Scale the deviation from the per-image mean (over H, W, C) by U(0.5, 1.5)."""
  mean = jnp.mean(x, axis=(1, 2, 3), keepdims=True)
  return (x - mean) * _per_example_uniform(rng, x, 0.5, 1.5) + mean


def rand_color(x: Array, rng: Array) -> Array:
  """Brightness, then saturation, then contrast (the reference 'color' op)."""
  k_b, k_s, k_c = jax.random.split(rng, 3)
  return rand_contrast(rand_saturation(rand_brightness(x, k_b), k_s), k_c)


def _max_shift(size: int, ratio: float) -> int:
  return int(size * ratio + 0.5)


def rand_translation(x: Array, rng: Array, ratio: float = TRANSLATION_RATIO) -> Array:
  """Shift each example by integers (dy, dx), |dy| <= s_h, |dx| <= s_w, zero-filled.

  `s = int(size * ratio + 0.5)`; content at (y, x) moves to (y + dy, x + dx).
  Implemented as a zero-padded `lax.dynamic_slice` vmapped over the batch.
  """
  b, h, w, c = x.shape
  sh, sw = _max_shift(h, ratio), _max_shift(w, ratio)
  if sh == 0 and sw == 0:
    return x
  k_y, k_x = jax.random.split(rng)
  dy = jax.random.randint(k_y, (b,), -sh, sh + 1)
  dx = jax.random.randint(k_x, (b,), -sw, sw + 1)
  padded = jnp.pad(x, ((0, 0), (sh, sh), (sw, sw), (0, 0)))

  def shift_one(img, dy1, dx1):
    # out[y, x] = padded[y + sh - dy1, x + sw - dx1] = img[y - dy1, x - dx1]
    zero = jnp.zeros((), dy1.dtype)
    return lax.dynamic_slice(img, (sh - dy1, sw - dx1, zero), (h, w, c))

  return jax.vmap(shift_one)(padded, dy, dx)


def rand_cutout(x: Array, rng: Array, ratio: float = CUTOUT_RATIO) -> Array:
  """Multiply a per-example random square (side `int(size * ratio + 0.5)`) by 0.

  The square's centre is uniform over the image and it is clipped at the
  border, as in the reference. The mask is shared across channels.
  """
  b, h, w, _ = x.shape
  ch, cw = int(h * ratio + 0.5), int(w * ratio + 0.5)
  k_y, k_x = jax.random.split(rng)
  # Reference: centre ~ randint(0, size + (1 - cut % 2)); top-left = centre - cut // 2.
  top = jax.random.randint(k_y, (b, 1, 1, 1), 0, h + (1 - ch % 2)) - ch // 2
  left = jax.random.randint(k_x, (b, 1, 1, 1), 0, w + (1 - cw % 2)) - cw // 2
  rows = jnp.arange(h).reshape(1, h, 1, 1)
  cols = jnp.arange(w).reshape(1, 1, w, 1)
  inside = (rows >= top) & (rows < top + ch) & (cols >= left) & (cols < left + cw)
  return x * jnp.where(inside, 0.0, 1.0).astype(x.dtype)


_AUGMENT_FNS: dict[str, Callable[[Array, Array], Array]] = {
  'color': rand_color,
  'translation': rand_translation,
  'cutout': rand_cutout,
}
VALID_POLICIES: tuple[str, ...] = tuple(_AUGMENT_FNS)


@functools.cache
def parse_policy(policy: str) -> tuple[str, ...]:
  names = tuple(p.strip() for p in policy.split(',') if p.strip())
  for name in names:
    if name not in _AUGMENT_FNS:
      raise ValueError(
        f'unknown DiffAugment policy {name!r}: choose from '
        f'{", ".join(VALID_POLICIES)} (comma-separated)'
      )
  return names


def diff_augment(images: Array, rng: Array, policy: str = 'color,translation,cutout') -> Array:
  """Apply the comma-separated DiffAugment `policy` to NHWC `images`.

  Ops run in the order given, each with its own key split from `rng` and
  independent random parameters per example. An empty policy is the
  identity. Raises ValueError for an unknown op name. Shape and dtype are
  preserved; values may leave [-1, 1] (no clipping, as in the reference).
  """
  if not isinstance(policy, str):
    raise TypeError(f'policy must be a static str, got {type(policy).__name__}')
  names = parse_policy(policy)
  if images.ndim != 4:
    raise ValueError(f'images must be NHWC (4-D), got shape {images.shape}')
  if not names:
    return images
  keys = jax.random.split(rng, len(names))
  x = images
  for name, key in zip(names, keys):
    x = _AUGMENT_FNS[name](x, key)
  return x


def shift_rotate(images, rng, max_shift: float, max_degrees: float):
  """Ordinary classifier augmentation: each image of float (B, H, W, C) `images` in [-1, 1]
  rotated by up to `max_degrees` either way about its centre and shifted by up to `max_shift`
  pixels on each axis (uniform, continuous), sampled bilinearly; what comes in from outside is
  background (-1)."""
  b, h, w, c = images.shape
  angle_rng, shift_rng = jax.random.split(rng)
  angle = jnp.deg2rad(max_degrees) * jax.random.uniform(angle_rng, (b,), minval=-1, maxval=1)
  shift = max_shift * jax.random.uniform(shift_rng, (b, 2), minval=-1, maxval=1)
  rows, cols = jnp.meshgrid(
    jnp.arange(h, dtype=jnp.float32), jnp.arange(w, dtype=jnp.float32), indexing='ij'
  )
  cy, cx = (h - 1) / 2.0, (w - 1) / 2.0

  def warp(image, theta, offset):
    cos, sin = jnp.cos(theta), jnp.sin(theta)
    y, x = rows - cy - offset[0], cols - cx - offset[1]  # Output pixel -> source pixel.
    src_y = cos * y - sin * x + cy
    src_x = sin * y + cos * x + cx
    sample = lambda channel: jax.scipy.ndimage.map_coordinates(
      channel, [src_y, src_x], order=1, mode='constant', cval=-1.0
    )
    return jax.vmap(sample, in_axes=-1, out_axes=-1)(image)

  return jax.vmap(warp)(images, angle, shift).astype(images.dtype)
