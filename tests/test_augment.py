"""Tests for gan_jax.augment (DiffAugment)."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gan_jax.augment import VALID_POLICIES
from gan_jax.augment import diff_augment
from gan_jax.augment import rand_color
from gan_jax.augment import rand_cutout
from gan_jax.augment import rand_translation

FULL = 'color,translation,cutout'
POLICIES = ['color', 'translation', 'cutout', FULL]
B, H, W = 8, 16, 16

# Jitted once per (shape, policy) and shared by the tests: op-by-op eager
# dispatch is much slower on CPU. Eager mode: test_eager_matches_jit_and_policy_parsing.
AUG = jax.jit(diff_augment, static_argnames='policy')
translate = jax.jit(rand_translation)
cutout = jax.jit(rand_cutout)
color = jax.jit(rand_color)


@functools.partial(jax.jit, static_argnames='policy')
def _weighted_grad(x, wts, rng, policy):
  return jax.grad(lambda x: jnp.sum(wts * diff_augment(x, rng, policy)))(x)


def _images(seed, shape):
  # numpy, not jax.random: every new shape would cost an eager XLA compile.
  return np.random.default_rng(seed).uniform(-1.0, 1.0, shape).astype(np.float32)


@pytest.mark.parametrize('channels', [1, 3])
def test_shape_dtype_and_determinism(channels):
  x = _images(0, (B, H, W, channels))
  y = AUG(x, jax.random.key(1), policy=FULL)
  assert y.shape == x.shape and y.dtype == x.dtype
  assert np.all(np.isfinite(y))
  assert not np.allclose(y, x)
  np.testing.assert_array_equal(y, AUG(x, jax.random.key(1), policy=FULL))
  assert not np.allclose(y, AUG(x, jax.random.key(2), policy=FULL))


@pytest.mark.parametrize('policy', POLICIES)
def test_per_example_randomness(policy):
  # The same image repeated: examples must be augmented differently.
  x = np.tile(_images(4, (1, H, W, 3)), (B, 1, 1, 1))
  y = AUG(x, jax.random.key(5), policy=policy)
  assert y.shape == x.shape and y.dtype == x.dtype
  flat = np.asarray(y).reshape(B, -1)
  distinct = len({row.tobytes() for row in flat})
  if policy in ('translation', 'cutout'):  # finitely many shifts/positions: allow a collision
    assert distinct >= B - 2
  else:
    assert distinct == B


@pytest.mark.parametrize(
  'policy,channels', [(FULL, 1), (FULL, 3), ('color', 1), ('translation', 3)]
)
def test_gradient_finite_and_nonzero(policy, channels):
  x = _images(6, (B, H, W, channels))
  g = _weighted_grad(x, _images(7, x.shape), jax.random.key(8), policy=policy)
  assert g.shape == x.shape
  g = np.asarray(g)
  assert np.all(np.isfinite(g))
  for i in range(B):  # every example gets gradient
    assert np.max(np.abs(g[i])) > 0


def test_eager_matches_jit_and_policy_parsing():
  x = _images(9, (B, H, W, 3))
  rng = jax.random.key(10)
  eager = diff_augment(x, rng, FULL)
  np.testing.assert_allclose(AUG(x, rng, policy=FULL), eager, atol=1e-5)
  # raw uint32 keys (jax.random.PRNGKey) give the same stream as typed keys
  np.testing.assert_array_equal(
    AUG(x, jax.random.PRNGKey(10), policy='cutout'), AUG(x, rng, policy='cutout')
  )
  # default policy, whitespace tolerance and empty policy (eager: reuses cached ops)
  np.testing.assert_array_equal(diff_augment(x, rng), eager)
  np.testing.assert_array_equal(diff_augment(x, rng, ' color , translation,cutout '), eager)
  np.testing.assert_array_equal(diff_augment(x, rng, ''), x)


def test_unknown_policy_raises():
  x = np.zeros((2, 8, 8, 3), np.float32)
  with pytest.raises(ValueError) as exc:
    diff_augment(x, jax.random.key(0), 'color,flip')
  msg = str(exc.value)
  assert 'flip' in msg
  for name in ('color', 'translation', 'cutout'):
    assert name in msg
  assert set(VALID_POLICIES) == {'color', 'translation', 'cutout'}
  with pytest.raises(ValueError):
    AUG(x, jax.random.key(0), policy='cutout,Translation')


def test_translation_moves_bright_pixel_within_one_eighth():
  # channel 0: single bright pixel at the centre; channel 1: all ones.
  size = 32
  b, s = 64, size // 8
  cy = cx = size // 2
  x = np.zeros((b, size, size, 2), np.float32)
  x[:, cy, cx, 0] = 1.0
  x[..., 1] = 1.0
  y = np.asarray(translate(x, jax.random.key(11)))
  shifts = []
  for i in range(b):
    ys, xs = np.nonzero(y[i, ..., 0])
    assert len(ys) == 1 and y[i, ys[0], xs[0], 0] == 1.0
    dy, dx = ys[0] - cy, xs[0] - cx
    assert abs(dy) <= s and abs(dx) <= s
    shifts.append((dy, dx))
    # the all-ones channel moved by the same shift, zero-filled, no wrap-around
    expected = np.zeros((size, size), np.float32)
    expected[max(dy, 0) : size + min(dy, 0), max(dx, 0) : size + min(dx, 0)] = 1.0
    np.testing.assert_array_equal(y[i, ..., 1], expected)
  shifts = np.array(shifts)
  assert len({tuple(t) for t in shifts}) > 10  # per-example shifts
  # the full range [-s, s] is sampled on both axes
  assert set(shifts[:, 0]) == set(range(-s, s + 1))
  assert set(shifts[:, 1]) == set(range(-s, s + 1))


@pytest.mark.parametrize('size', [16, 15])
def test_cutout_zeroes_square_of_expected_area(size):
  b, c = 64, 3
  side = int(size * 0.5 + 0.5)
  y = np.asarray(cutout(np.ones((b, size, size, c), np.float32), jax.random.key(13)))
  assert set(np.unique(y)) <= {0.0, 1.0}
  full = 0
  positions = set()
  for i in range(b):
    zero = y[i] == 0.0
    # same mask on every channel
    for ch in range(1, c):
      np.testing.assert_array_equal(zero[..., ch], zero[..., 0])
    rows, cols = np.nonzero(zero[..., 0])
    assert len(rows) > 0
    r0, r1, c0, c1 = rows.min(), rows.max() + 1, cols.min(), cols.max() + 1
    # the zeroed region is exactly an axis-aligned rectangle
    assert zero[..., 0].sum() == (r1 - r0) * (c1 - c0)
    assert zero[r0:r1, c0:c1, 0].all()
    # a side shorter than `side` only where the square is clipped at a border
    for lo, hi in ((r0, r1), (c0, c1)):
      assert hi - lo <= side
      assert hi - lo == side or lo == 0 or hi == size
      assert hi - lo >= side // 2  # at least about half of the side is inside
    if (r1 - r0, c1 - c0) == (side, side):
      full += 1  # unclipped: area side**2
    positions.add((r0, c0))
  assert full >= b // 10  # ~1/4 of squares lie fully inside
  assert len(positions) > 10  # per-example positions


def test_cutout_is_mask_multiplication_gradient():
  x = _images(14, (64, 16, 16, 3))
  rng = jax.random.key(15)
  g = jax.jit(jax.grad(lambda x, r: jnp.sum(rand_cutout(x, r))))(x, rng)
  mask = np.asarray(cutout(np.ones_like(x), rng))
  assert 0 < np.mean(mask) < 1
  np.testing.assert_array_equal(g, mask)
  np.testing.assert_allclose(cutout(x, rng), x * mask)


def test_color_one_channel_is_per_example_affine():
  # 1 channel: brightness + contrast => y = a * x + b per example, a in [0.5, 1.5].
  x = np.asarray(_images(16, (B, H, W, 1)), np.float64)
  y = np.asarray(color(x.astype(np.float32), jax.random.key(17)), np.float64)
  scales = []
  for i in range(B):
    A = np.stack([x[i].ravel(), np.ones(x[i].size)], axis=1)
    (a, b), *_ = np.linalg.lstsq(A, y[i].ravel(), rcond=None)
    np.testing.assert_allclose(A @ np.array([a, b]), y[i].ravel(), atol=1e-5)
    assert 0.5 - 1e-5 <= a <= 1.5 + 1e-5
    scales.append(a)
  assert np.std(scales) > 0.01  # per-example contrast


def test_color_three_channel_statistics():
  # Per example: deviation from the channel mean is scaled by sat * contrast in
  # [0, 3]; the per-image mean is shifted by the brightness offset in [-0.5, 0.5].
  x = np.asarray(_images(18, (B, H, W, 3)), np.float64)
  y = np.asarray(color(x.astype(np.float32), jax.random.key(19)), np.float64)
  dev_x = x - x.mean(-1, keepdims=True)
  dev_y = y - y.mean(-1, keepdims=True)
  offsets = []
  for i in range(B):
    k = np.sum(dev_x[i] * dev_y[i]) / np.sum(dev_x[i] ** 2)
    np.testing.assert_allclose(dev_y[i], k * dev_x[i], atol=1e-5)
    assert -1e-5 <= k <= 3 + 1e-5
    offset = y[i].mean() - x[i].mean()
    assert -0.5 - 1e-5 <= offset <= 0.5 + 1e-5
    offsets.append(offset)
  assert np.std(offsets) > 0.05
