"""ADA's augmentation pipeline (Karras et al. 2020, "Training Generative Adversarial Networks
with Limited Data") for NHWC images in [-1, 1], in pure JAX.

`ada_augment(images, rng, p, ops)` applies each transform named in the static tuple `ops` to
each image independently with probability `p` (a traced scalar, so one compiled function
serves every `p` the ADA heuristic picks). As in NVlabs' `training/augment.py`
(stylegan2-ada-pytorch), every transform draws its parameter for every image and then replaces
it by its identity value where that image's coin (uniform < p) says no; the exception is
'rotate', which is two rotations (before and after anisotropic scaling), each with probability
`1 - sqrt(1 - p)`, so that an image is rotated at all with probability p.

Geometric transforms ('xflip', 'rotate90', 'xint', 'scale', 'rotate', 'aniso', 'xfrac') are
composed, in that order, into one 3x3 homogeneous matrix per image that maps an output pixel
to the input point it samples, in pixel units with the origin at the image centre (x along
the width, y along the height, pixel (i, j) at (j - (W-1)/2, i - (H-1)/2)). The image is then
resampled once, bilinearly, outside the image continuing as its mirror image about the edge
pixel centres ('d c b | a b c d | c b a': torch's pad mode 'reflect', scipy.ndimage's mode
'mirror'). Differences from NVlabs, acceptable for 28x28 digits:

* NVlabs upsamples 2x with a sym6 wavelet filter, samples bilinearly and downsamples with the
  same filter (anti-aliasing); here the sampling is plain bilinear at the image's resolution,
  so strong shrinking may alias.
* NVlabs reflect-pads by at most (size - 1) pixels per side and reads zeros beyond; here the
  mirror extension is unbounded (periodic), so no zeros ever enter.

At integer positions bilinear sampling reads pixels exactly, so 'xflip', 'rotate90' (square
images) and 'xint', alone or together, are exact pixel permutations (with the edge mirrored in
for 'xint'), and with every coin off (p = 0) the output equals the input bit for bit.

Colour transforms ('brightness', 'contrast', 'lumaflip', 'hue', 'saturation') are composed
into one 4x4 homogeneous colour matrix per image, applied to RGB values as they are (NVlabs'
constants are written for [-1, 1] images, so they apply unchanged: contrast, lumaflip, hue and
saturation act about 0, mid-grey). 1-channel images get only `GRAY_COLOR_OPS` (brightness and
contrast); their matrix acts on the grey value as on an (x, x, x) colour averaged back to one
channel, as NVlabs does. Hue and saturation leave grey unchanged anyway; lumaflip would negate
the image (NVlabs applies it to 1-channel images), which is left out for digits; add
'lumaflip' to `GRAY_COLOR_OPS` to restore NVlabs' behaviour. Other channel counts raise
ValueError when a colour op applies.

Computation is in float32 (shape and dtype are preserved on return), without clipping, and
differentiable with respect to the images. Image-space filtering, noise and cutout of NVlabs'
pipeline are not included.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np

Array = jax.Array

__all__ = [
  'OPS',
  'GROUPS',
  'DEFAULT_OPS',
  'GRAY_COLOR_OPS',
  'parse_ops',
  'ada_augment',
  'XINT_MAX',
  'SCALE_STD',
  'ROTATE_MAX',
  'ANISO_STD',
  'XFRAC_STD',
  'BRIGHTNESS_STD',
  'CONTRAST_STD',
  'HUE_MAX',
  'SATURATION_STD',
]

OPS: tuple[str, ...] = (
  'xflip',
  'rotate90',
  'xint',
  'scale',
  'rotate',
  'aniso',
  'xfrac',
  'brightness',
  'contrast',
  'lumaflip',
  'hue',
  'saturation',
)
GROUPS: dict[str, tuple[str, ...]] = {
  'blit': ('xflip', 'rotate90', 'xint'),
  'geom': ('scale', 'rotate', 'aniso', 'xfrac'),
  'color': ('brightness', 'contrast', 'lumaflip', 'hue', 'saturation'),
}
DEFAULT_OPS = 'xint,geom,color'  # No x-flip or 90-degree rotation: digits are not symmetric.
GRAY_COLOR_OPS: tuple[str, ...] = ('brightness', 'contrast')

XINT_MAX = 0.125  # Integer translation ~ round(U(-XINT_MAX, XINT_MAX) * size) pixels per axis.
SCALE_STD = 0.2  # Isotropic scale ~ 2 ** N(0, SCALE_STD).
ROTATE_MAX = 1.0  # Each rotation ~ U(-pi, pi) * ROTATE_MAX.
ANISO_STD = 0.2  # Anisotropic scale (s, 1/s) with s ~ 2 ** N(0, ANISO_STD).
XFRAC_STD = 0.125  # Fractional translation ~ N(0, XFRAC_STD) * size pixels per axis.
BRIGHTNESS_STD = 0.2  # Brightness offset ~ N(0, BRIGHTNESS_STD), added to every channel.
CONTRAST_STD = 0.5  # Contrast gain ~ 2 ** N(0, CONTRAST_STD), about 0.
HUE_MAX = 1.0  # Hue rotation about the luma axis ~ U(-pi, pi) * HUE_MAX.
SATURATION_STD = 1.0  # Saturation gain ~ 2 ** N(0, SATURATION_STD), off the luma axis.

_GEOMETRIC = GROUPS['blit'] + GROUPS['geom']
# numpy, not jnp: importing this module must not start a JAX backend.
_LUMA = np.full((3,), 1.0 / math.sqrt(3.0), np.float32)  # Unit vector along grey.
_LUMA_OUTER = np.outer(_LUMA, _LUMA)


@functools.cache
def parse_ops(spec: str) -> tuple[str, ...]:
  """The transform names in the comma-separated `spec` (names or `GROUPS` aliases), expanded,
  deduplicated and in pipeline (`OPS`) order; () for an empty spec. Raises ValueError naming an
  unknown name and the choices."""
  names = set()
  for name in (part.strip() for part in spec.split(',')):
    if not name:
      continue
    if name not in OPS and name not in GROUPS:
      raise ValueError(
        f'unknown ADA augmentation {name!r}: choose from {", ".join(OPS + tuple(GROUPS))}'
      )
    names.update(GROUPS.get(name, (name,)))
  return tuple(op for op in OPS if op in names)


def _matmul(a: Array, b: Array) -> Array:
  """Batched product of small matrices, elementwise so that it is exact float32 on any device
  (a matmul may run at reduced precision on accelerators)."""
  return jnp.sum(a[..., :, :, None] * b[..., None, :, :], axis=-2)


def _affine2d(a, b, c, d, tx, ty) -> Array:
  """(B, 3, 3) matrices [[a, b, tx], [c, d, ty], [0, 0, 1]] from per-image (B,) entries."""
  entries = (jnp.asarray(v, jnp.float32) for v in (a, b, c, d, tx, ty))
  a, b, c, d, tx, ty = jnp.broadcast_arrays(*entries)
  zero, one = jnp.zeros_like(a), jnp.ones_like(a)
  return jnp.stack([a, b, tx, c, d, ty, zero, zero, one], axis=-1).reshape(a.shape + (3, 3))


def _rotation2d(theta: Array) -> Array:
  cos, sin = jnp.cos(theta), jnp.sin(theta)
  return _affine2d(cos, -sin, sin, cos, 0.0, 0.0)


def _xflip(u: Array, z: Array, on: Array, h: int, w: int) -> Array:
  flip = jnp.where(on, jnp.floor(u[:, 0] * 2), 0.0)
  return _affine2d(1 - 2 * flip, 0.0, 0.0, 1.0, 0.0, 0.0)


def _rotate90(u: Array, z: Array, on: Array, h: int, w: int) -> Array:
  """Rotation by k * 90 degrees, k uniform in {0, 1, 2, 3}, from exact cosine/sine tables."""
  k = jnp.where(on, jnp.floor(u[:, 0] * 4), 0.0).astype(jnp.int32)
  cos = jnp.array([1.0, 0.0, -1.0, 0.0])[k]
  sin = jnp.array([0.0, 1.0, 0.0, -1.0])[k]
  return _affine2d(cos, -sin, sin, cos, 0.0, 0.0)


def _xint(u: Array, z: Array, on: Array, h: int, w: int) -> Array:
  t = (u * 2 - 1) * XINT_MAX
  t = jnp.where(on[:, None], t, 0.0)
  return _affine2d(1.0, 0.0, 0.0, 1.0, -jnp.round(t[:, 0] * w), -jnp.round(t[:, 1] * h))


def _scale(u: Array, z: Array, on: Array, h: int, w: int) -> Array:
  s = jnp.where(on, jnp.exp2(z[:, 0] * SCALE_STD), 1.0)
  return _affine2d(1 / s, 0.0, 0.0, 1 / s, 0.0, 0.0)


def _rotate(u: Array, z: Array, on: Array, h: int, w: int) -> Array:
  theta = (u[:, 0] * 2 - 1) * math.pi * ROTATE_MAX
  return _rotation2d(jnp.where(on, theta, 0.0))


def _aniso(u: Array, z: Array, on: Array, h: int, w: int) -> Array:
  s = jnp.where(on, jnp.exp2(z[:, 0] * ANISO_STD), 1.0)
  return _affine2d(1 / s, 0.0, 0.0, s, 0.0, 0.0)


def _xfrac(u: Array, z: Array, on: Array, h: int, w: int) -> Array:
  t = jnp.where(on[:, None], z * XFRAC_STD, 0.0)
  return _affine2d(1.0, 0.0, 0.0, 1.0, -t[:, 0] * w, -t[:, 1] * h)


# Pipeline stages in order; each builds the inverse (output -> input) matrix of its transform
# from per-image uniforms `u` and standard normals `z` (both (B, 2)) and coins `on` (B,).
# 'rotate' is two stages, around 'aniso'.
_GEOMETRIC_STAGES = (
  ('xflip', _xflip),
  ('rotate90', _rotate90),
  ('xint', _xint),
  ('scale', _scale),
  ('rotate', _rotate),
  ('aniso', _aniso),
  ('rotate', _rotate),
  ('xfrac', _xfrac),
)


def _draws(rng: Array, stages: int, b: int) -> tuple[Array, Array, Array]:
  """Per stage and image: uniforms (S, B, 2), standard normals (S, B, 2), coin uniforms
  (S, B). Drawn for every stage whether enabled or not, so that a stage's parameters do not
  depend on which other transforms are on."""
  k_uniform, k_normal, k_coin = jax.random.split(rng, 3)
  uniform = jax.random.uniform(k_uniform, (stages, b, 2))
  normal = jax.random.normal(k_normal, (stages, b, 2))
  return uniform, normal, jax.random.uniform(k_coin, (stages, b))


def _geometric_matrix(rng: Array, p, ops: tuple[str, ...], b: int, h: int, w: int) -> Array:
  """(B, 3, 3) inverse transforms (output pixel -> input point, centred pixel coordinates) of
  the geometric `ops`, each applied to each image with probability `p`."""
  p = jnp.asarray(p, jnp.float32)
  p_rotate = 1 - jnp.sqrt(jnp.clip(1 - p, 0.0, 1.0))  # P(either rotation) = p.
  uniform, normal, coin = _draws(jax.random.fold_in(rng, 0), len(_GEOMETRIC_STAGES), b)
  matrix = jnp.broadcast_to(jnp.eye(3, dtype=jnp.float32), (b, 3, 3))
  for i, (name, build) in enumerate(_GEOMETRIC_STAGES):
    if name in ops:
      on = coin[i] < (p_rotate if name == 'rotate' else p)
      matrix = _matmul(matrix, build(uniform[i], normal[i], on, h, w))
  return matrix


def _mirror(index: Array, size: int) -> Array:
  """Indices folded into [0, size) by mirroring about the end pixels (d c b | a b c d | c b a)."""
  if size == 1:
    return jnp.zeros_like(index)
  period = 2 * (size - 1)
  index = jnp.mod(index, period)
  return jnp.where(index >= size, period - index, index)


def _bilinear(images: Array, src_y: Array, src_x: Array) -> Array:
  """Bilinear samples of (B, H, W, C) `images` at (B, H', W') pixel-index coordinates."""
  b, h, w, c = images.shape
  y0, x0 = jnp.floor(src_y), jnp.floor(src_x)
  fy, fx = (src_y - y0)[..., None], (src_x - x0)[..., None]
  y0, x0 = y0.astype(jnp.int32), x0.astype(jnp.int32)
  rows = (_mirror(y0, h), _mirror(y0 + 1, h))
  cols = (_mirror(x0, w), _mirror(x0 + 1, w))
  flat = images.reshape(b * h * w, c)
  base = (jnp.arange(b, dtype=jnp.int32) * (h * w))[:, None, None]
  at = lambda row, col: flat[base + row * w + col]
  top = at(rows[0], cols[0]) * (1 - fx) + at(rows[0], cols[1]) * fx
  bottom = at(rows[1], cols[0]) * (1 - fx) + at(rows[1], cols[1]) * fx
  return top * (1 - fy) + bottom * fy


def _warp(images: Array, matrix: Array) -> Array:
  """Resample float32 NHWC `images` once through the (B, 3, 3) inverse transforms `matrix`."""
  _, h, w, _ = images.shape
  cy, cx = (h - 1) / 2, (w - 1) / 2
  ys = jnp.arange(h, dtype=jnp.float32)[:, None] - cy
  xs = jnp.arange(w, dtype=jnp.float32)[None, :] - cx
  m = matrix[:, :, :, None, None]
  src_x = m[:, 0, 0] * xs + m[:, 0, 1] * ys + m[:, 0, 2] + cx
  src_y = m[:, 1, 0] * xs + m[:, 1, 1] * ys + m[:, 1, 2] + cy
  return _bilinear(images, src_y, src_x)


def _affine3d(linear: Array, offset: Array) -> Array:
  """(B, 4, 4) homogeneous colour matrices from (B, 3, 3) linear parts and (B, 3) offsets."""
  top = jnp.concatenate([linear, offset[:, :, None]], axis=2)
  bottom = jnp.broadcast_to(jnp.array([0.0, 0.0, 0.0, 1.0]), (linear.shape[0], 1, 4))
  return jnp.concatenate([top, bottom], axis=1)


def _eye3(on: Array) -> Array:
  return jnp.broadcast_to(jnp.eye(3, dtype=jnp.float32), on.shape + (3, 3))


def _brightness(u: Array, z: Array, on: Array) -> Array:
  shift = jnp.where(on, z[:, 0] * BRIGHTNESS_STD, 0.0)
  return _affine3d(_eye3(on), jnp.broadcast_to(shift[:, None], on.shape + (3,)))


def _contrast(u: Array, z: Array, on: Array) -> Array:
  gain = jnp.where(on, jnp.exp2(z[:, 0] * CONTRAST_STD), 1.0)
  return _affine3d(_eye3(on) * gain[:, None, None], jnp.zeros(on.shape + (3,)))


def _lumaflip(u: Array, z: Array, on: Array) -> Array:
  """Householder reflection through the plane orthogonal to the luma axis."""
  flip = jnp.where(on, jnp.floor(u[:, 0] * 2), 0.0)
  return _affine3d(_eye3(on) - 2 * _LUMA_OUTER * flip[:, None, None], jnp.zeros(on.shape + (3,)))


def _hue(u: Array, z: Array, on: Array) -> Array:
  """Rotation about the luma axis (Rodrigues' formula)."""
  theta = (u[:, 0] * 2 - 1) * math.pi * HUE_MAX
  theta = jnp.where(on, theta, 0.0)[:, None, None]
  vx, vy, vz = _LUMA
  cross = jnp.array([[0.0, -vz, vy], [vz, 0.0, -vx], [-vy, vx, 0.0]])
  linear = jnp.cos(theta) * _eye3(on) + jnp.sin(theta) * cross
  linear = linear + (1 - jnp.cos(theta)) * _LUMA_OUTER
  return _affine3d(linear, jnp.zeros(on.shape + (3,)))


def _saturation(u: Array, z: Array, on: Array) -> Array:
  """Scale of the colour's component orthogonal to the luma axis (luma kept)."""
  gain = jnp.where(on, jnp.exp2(z[:, 0] * SATURATION_STD), 1.0)
  gain = gain[:, None, None]
  return _affine3d(_eye3(on) * gain + _LUMA_OUTER * (1 - gain), jnp.zeros(on.shape + (3,)))


_COLOR_STAGES = (
  ('brightness', _brightness),
  ('contrast', _contrast),
  ('lumaflip', _lumaflip),
  ('hue', _hue),
  ('saturation', _saturation),
)


def _color_matrix(rng: Array, p, ops: tuple[str, ...], b: int) -> Array:
  """(B, 4, 4) homogeneous colour transforms of the colour `ops`, each applied to each image
  with probability `p`; later transforms multiply on the left."""
  p = jnp.asarray(p, jnp.float32)
  uniform, normal, coin = _draws(jax.random.fold_in(rng, 1), len(_COLOR_STAGES), b)
  matrix = jnp.broadcast_to(jnp.eye(4, dtype=jnp.float32), (b, 4, 4))
  for i, (name, build) in enumerate(_COLOR_STAGES):
    if name in ops:
      matrix = _matmul(build(uniform[i], normal[i], coin[i] < p), matrix)
  return matrix


def _apply_color(images: Array, matrix: Array) -> Array:
  """float32 NHWC RGB or grey `images` through the (B, 4, 4) colour `matrix`; a grey value x is
  taken as (x, x, x) and the three outputs averaged."""
  linear, offset = matrix[:, None, None, :3, :3], matrix[:, None, None, :3, 3]
  if images.shape[-1] == 3:
    return jnp.sum(linear * images[..., None, :], axis=-1) + offset
  gain = jnp.sum(linear, axis=(-2, -1))[..., None] / 3
  return images * gain + jnp.sum(offset, axis=-1, keepdims=True) / 3


def _names(ops) -> tuple[str, ...]:
  if isinstance(ops, str):
    return parse_ops(ops)
  return parse_ops(','.join(ops))


def ada_augment(images: Array, rng: Array, p, ops: tuple[str, ...]) -> Array:
  """ADA-augment NHWC `images` in [-1, 1]: each of the transforms `ops` (static; names or
  aliases, run in `OPS` order whatever the order given) is applied to each image independently
  with probability `p` (a scalar, may be traced). Shape and dtype are preserved; p = 0 returns
  the images unchanged. Raises ValueError for an unknown op, a non-4-D input, or a colour op
  on images with other than 1 or 3 channels."""
  names = _names(ops)
  if images.ndim != 4:
    raise ValueError(f'images must be NHWC (4-D), got shape {images.shape}')
  b, h, w, c = images.shape
  x = images.astype(jnp.float32)
  geometric = tuple(name for name in names if name in _GEOMETRIC)
  if geometric:
    x = _warp(x, _geometric_matrix(rng, p, geometric, b, h, w))
  color = tuple(
    name for name in names if name in GROUPS['color'] and (c == 3 or name in GRAY_COLOR_OPS)
  )
  if color:
    if c not in (1, 3):
      raise ValueError(f'ADA colour transforms need 1 or 3 channels, got {c}')
    x = _apply_color(x, _color_matrix(rng, p, color, b))
  return x.astype(images.dtype)
