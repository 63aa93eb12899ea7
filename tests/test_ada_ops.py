"""Tests for gan_jax.augmentations.ada_ops (ADA's augmentation pipeline)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.ndimage

from gan_jax.augmentations.ada_ops import DEFAULT_OPS
from gan_jax.augmentations.ada_ops import GROUPS
from gan_jax.augmentations.ada_ops import OPS
from gan_jax.augmentations.ada_ops import _color_matrix
from gan_jax.augmentations.ada_ops import _geometric_matrix
from gan_jax.augmentations.ada_ops import ada_augment
from gan_jax.augmentations.ada_ops import parse_ops

# One jitted function for the whole file: eager op-by-op dispatch is slow on CPU.
AUG = jax.jit(ada_augment, static_argnames='ops')
GEOMETRIC_MATRIX = jax.jit(_geometric_matrix, static_argnums=(2, 3, 4, 5))
COLOR_MATRIX = jax.jit(_color_matrix, static_argnums=(2, 3))
KEY = jax.random.key(7)
GEOMETRIC = GROUPS['blit'] + GROUPS['geom']


def _images(seed, shape):
  return np.random.default_rng(seed).uniform(-1.0, 1.0, shape).astype(np.float32)


def _augment(x, ops, p=1.0, key=KEY):
  return np.asarray(AUG(x, key, jnp.float32(p), ops=ops))


def _geometric(ops, x, p=1.0):
  b, h, w, _ = x.shape
  return np.asarray(GEOMETRIC_MATRIX(KEY, p, ops, b, h, w), np.float64)


def _color(ops, b, p=1.0):
  return np.asarray(COLOR_MATRIX(KEY, p, ops, b), np.float64)


def test_parse_ops():
  assert parse_ops(DEFAULT_OPS) == ('xint',) + GROUPS['geom'] + GROUPS['color']
  assert parse_ops('blit,geom,color') == OPS
  assert parse_ops('saturation, xflip,color,hue') == ('xflip',) + GROUPS['color']
  assert parse_ops('') == parse_ops(' , ') == ()
  with pytest.raises(ValueError) as error:
    parse_ops('xint,zoom')
  message = str(error.value)
  assert "'zoom'" in message and 'xflip' in message and 'blit' in message
  assert '\n' not in message
  assert parse_ops.cache_info().hits > 0 or parse_ops('xint') is parse_ops('xint')


@pytest.mark.parametrize('shape', [(2, 8, 8, 1), (2, 8, 8, 3), (2, 28, 28, 1)])
@pytest.mark.parametrize('spec', [DEFAULT_OPS, ','.join(OPS)])
def test_p0_is_identity_bit_for_bit_and_p1_changes(shape, spec):
  x = _images(0, shape)
  ops = parse_ops(spec)
  assert np.array_equal(_augment(x, ops, p=0.0), x)
  changed = _augment(x, ops, p=1.0) != x
  assert changed.reshape(len(x), -1).any(axis=1).all()


@pytest.mark.parametrize('dtype', [jnp.float32, jnp.bfloat16])
def test_shape_and_dtype_are_kept(dtype):
  x = jnp.asarray(_images(1, (2, 8, 8, 3)), dtype)
  y = AUG(x, KEY, jnp.float32(0.7), ops=OPS)
  assert y.shape == x.shape and y.dtype == dtype
  assert np.array_equal(np.asarray(AUG(x, KEY, 0.0, ops=OPS)), np.asarray(x))  # Python float p.


def test_bad_inputs_raise():
  with pytest.raises(ValueError, match='NHWC'):
    ada_augment(jnp.zeros((8, 8, 1)), KEY, 0.5, ('xint',))
  with pytest.raises(ValueError, match='1 or 3 channels'):
    ada_augment(jnp.zeros((1, 8, 8, 2)), KEY, 0.5, ('brightness',))
  with pytest.raises(ValueError, match='rotate45'):
    ada_augment(jnp.zeros((1, 8, 8, 1)), KEY, 0.5, ('rotate45',))


def test_xflip_flips_the_width_where_drawn():
  x = _images(2, (16, 8, 8, 3))
  flipped = _geometric(('xflip',), x)[:, 0, 0] == -1
  assert 0 < flipped.sum() < len(x)
  expected = np.where(flipped[:, None, None, None], x[:, :, ::-1], x)
  assert np.array_equal(_augment(x, ('xflip',)), expected)


def test_rotate90_is_rot90_by_the_drawn_k():
  x = _images(3, (16, 8, 8, 1))
  g = _geometric(('rotate90',), x)
  quarter_turns = {(1, 0): 0, (0, 1): 1, (-1, 0): 2, (0, -1): 3}
  ks = [quarter_turns[(int(cos), int(sin))] for cos, sin in zip(g[:, 0, 0], g[:, 1, 0])]
  assert len(set(ks)) == 4
  expected = np.stack([np.rot90(image, k, axes=(0, 1)) for image, k in zip(x, ks)])
  assert np.array_equal(_augment(x, ('rotate90',)), expected)


def test_xint_is_a_mirror_padded_integer_shift():
  x = _images(4, (16, 28, 28, 1))
  g = _geometric(('xint',), x)
  shifts = -g[:, :2, 2].astype(int)  # Content moves by (dx, dy) pixels.
  assert np.abs(shifts).max() <= 4 and len({tuple(s) for s in shifts}) > 4
  pad = 27  # numpy's 'reflect' pad mirrors about the edge pixel: d c b | a b c d | c b a.
  expected = []
  for image, (dx, dy) in zip(x, shifts):
    padded = np.pad(image, ((pad, pad), (pad, pad), (0, 0)), mode='reflect')
    expected.append(padded[pad - dy : pad - dy + 28, pad - dx : pad - dx + 28])
  assert np.array_equal(_augment(x, ('xint',)), np.stack(expected))


def _scipy_warp(image, g):
  """`image` (H, W, C) resampled through the inverse transform `g` (centred x, y coordinates)
  by scipy in (row, col) index coordinates. scipy's mode 'mirror' (d c b | a b c d | c b a,
  about the edge pixel centres) is torch's pad mode 'reflect', NVlabs' padding; scipy's own
  'reflect' repeats the edge pixel (c b a | a b c d | d c b) and would not match."""
  h, w = image.shape[:2]
  centre = np.array([(h - 1) / 2, (w - 1) / 2])
  linear = np.array([[g[1, 1], g[1, 0]], [g[0, 1], g[0, 0]]])
  offset = np.array([g[1, 2], g[0, 2]]) + centre - linear @ centre
  channels = [
    scipy.ndimage.affine_transform(
      image[..., c].astype(np.float64), linear, offset, order=1, mode='mirror'
    )
    for c in range(image.shape[-1])
  ]
  return np.stack(channels, axis=-1)


@pytest.mark.parametrize('ops', [('scale',), ('rotate',), ('aniso',), ('xfrac',), GEOMETRIC])
@pytest.mark.parametrize('shape', [(8, 8, 8, 3), (8, 28, 28, 1)])
def test_geometric_ops_match_scipy_affine_transform(ops, shape):
  x = _images(5, shape)
  g = _geometric(ops, x)
  assert not np.allclose(g, np.eye(3), atol=1e-3)
  expected = np.stack([_scipy_warp(image, m) for image, m in zip(x, g)])
  np.testing.assert_allclose(_augment(x, ops), expected, rtol=0, atol=2e-5)


@pytest.mark.parametrize('channels', [1, 3])
def test_brightness_and_contrast_match_numpy(channels):
  x = _images(6, (8, 8, 8, channels))
  shift = _color(('brightness',), 8)[:, 0, 3][:, None, None, None]
  gain = _color(('contrast',), 8)[:, 0, 0][:, None, None, None]
  assert np.all(shift != 0) and np.all(gain != 1)
  tol = dict(rtol=0, atol=1e-6)
  np.testing.assert_allclose(_augment(x, ('brightness',)), x + shift, **tol)
  np.testing.assert_allclose(_augment(x, ('contrast',)), x * gain, **tol)
  np.testing.assert_allclose(_augment(x, ('brightness', 'contrast')), (x + shift) * gain, **tol)


def _luma_and_chroma(x):
  luma = x.mean(axis=-1, keepdims=True)
  return luma, x - luma


def test_rgb_hue_lumaflip_and_saturation():
  x = _images(7, (8, 8, 8, 3))
  luma, chroma = _luma_and_chroma(x)
  tol = dict(rtol=0, atol=1e-5)
  hue_luma, hue_chroma = _luma_and_chroma(_augment(x, ('hue',)))
  np.testing.assert_allclose(hue_luma, luma, **tol)
  np.testing.assert_allclose(
    np.linalg.norm(hue_chroma, axis=-1), np.linalg.norm(chroma, axis=-1), **tol
  )
  assert np.abs(hue_chroma - chroma).max() > 0.1
  flipped = _color(('lumaflip',), 8)[:, 0, 0] != 1
  assert 0 < flipped.sum() < 8
  sign = np.where(flipped, -1.0, 1.0)[:, None, None, None]
  np.testing.assert_allclose(_augment(x, ('lumaflip',)), sign * luma + chroma, **tol)
  c = _color(('saturation',), 8)
  gain = (c[:, 0, 0] - c[:, 0, 1])[:, None, None, None]  # On (1, -1, 0), orthogonal to luma.
  np.testing.assert_allclose(_augment(x, ('saturation',)), luma + gain * chroma, **tol)


def test_grey_images_skip_lumaflip_hue_and_saturation():
  x = _images(8, (4, 8, 8, 1))
  assert np.array_equal(_augment(x, ('lumaflip', 'hue', 'saturation')), x)


def test_drawn_parameters_follow_the_reference_distributions():
  b, h, w = 4096, 16, 16
  x = np.zeros((b, h, w, 1), np.float32)
  assert np.std(np.log2(_geometric(('scale',), x)[:, 0, 0])) == pytest.approx(0.2, rel=0.05)
  assert np.std(np.log2(_geometric(('aniso',), x)[:, 1, 1])) == pytest.approx(0.2, rel=0.05)
  assert np.std(_geometric(('xfrac',), x)[:, :2, 2] / w) == pytest.approx(0.125, rel=0.05)
  xint = _geometric(('xint',), x)[:, :2, 2]
  assert set(np.unique(xint)) == {-2.0, -1.0, 0.0, 1.0, 2.0}  # round(U(-2, 2)).
  assert np.std(_color(('brightness',), b)[:, 0, 3]) == pytest.approx(0.2, rel=0.05)
  assert np.std(np.log2(_color(('contrast',), b)[:, 0, 0])) == pytest.approx(0.5, rel=0.05)
  sat = _color(('saturation',), b)
  assert np.std(np.log2(sat[:, 0, 0] - sat[:, 0, 1])) == pytest.approx(1.0, rel=0.05)
  hue = _color(('hue',), b)[:, :3, :3]
  cos = (np.trace(hue, axis1=1, axis2=2) - 1) / 2  # Uniform angle on (-pi, pi): E[cos] = 0.
  assert abs(cos.mean()) < 0.05 and cos.min() < -0.99 and cos.max() > 0.99


# P(an image changes | its coin is on): xflip and lumaflip draw "no flip" half the time,
# rotate90 draws k = 0 a quarter of the time, xint on 8x8 draws round(U(-1, 1)) = 0 on both
# axes a quarter of the time; 'rotate' is two coins of 1 - sqrt(1 - p) each, p in all.
CHANGE_GIVEN_ON = {'xflip': 0.5, 'rotate90': 0.75, 'xint': 0.75, 'lumaflip': 0.5}


@pytest.mark.parametrize('op', OPS)
def test_each_image_is_transformed_independently_with_probability_p(op):
  channels = 3 if op in ('lumaflip', 'hue', 'saturation') else 1
  x = np.broadcast_to(_images(9, (1, 8, 8, channels)), (512, 8, 8, channels))
  changed = (_augment(x, (op,), p=0.5) != x).reshape(512, -1).any(axis=1)
  expected = 0.5 * CHANGE_GIVEN_ON.get(op, 1.0)
  sigma = np.sqrt(expected * (1 - expected) / 512)
  assert abs(changed.mean() - expected) < 4.5 * sigma, (op, changed.mean(), expected)


@pytest.mark.parametrize('channels', [1, 3])
def test_gradient_wrt_images(channels):
  loss = lambda x, p: jnp.sum(ada_augment(x, KEY, p, OPS) ** 2)
  value_and_grad = jax.jit(jax.value_and_grad(loss))  # p traced, as in a training step.
  x = _images(10, (2, 8, 8, channels))
  _, grad = value_and_grad(x, jnp.float32(1.0))
  grad = np.asarray(grad)
  assert np.all(np.isfinite(grad)) and np.abs(grad).max() > 0
  # The loss is quadratic in x, so a central difference is exact up to rounding.
  d = _images(11, x.shape)
  eps = 1e-2
  plus, _ = value_and_grad(x + eps * d, jnp.float32(1.0))
  minus, _ = value_and_grad(x - eps * d, jnp.float32(1.0))
  diff = (plus - minus) / (2 * eps)
  assert float(diff) == pytest.approx(float(np.sum(grad * d)), rel=1e-3, abs=1e-3)


def test_one_compilation_serves_every_p():
  traces = []

  def augment(x, rng, p):
    traces.append(1)
    return ada_augment(x, rng, p, parse_ops(DEFAULT_OPS))

  augment = jax.jit(augment)
  x = _images(12, (4, 8, 8, 1))
  outputs = [np.asarray(augment(x, KEY, jnp.float32(p))) for p in (0.0, 0.3, 0.6, 1.0)]
  assert len(traces) == 1
  assert np.array_equal(outputs[0], x) and not np.array_equal(outputs[-1], x)
