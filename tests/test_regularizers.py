"""Tests for gan_jax.regularizers."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gan_jax.regularizers import LeCamState
from gan_jax.regularizers import gradient_penalty
from gan_jax.regularizers import lecam_penalty
from gan_jax.regularizers import lecam_update
from gan_jax.regularizers import r1_penalty
from gan_jax.regularizers import r2_penalty

SHAPE = (5, 4, 4, 2)  # B, H, W, C


def _images(seed, shape=SHAPE):
  return jax.random.uniform(jax.random.key(seed), shape, jnp.float32, -1.0, 1.0)


def _linear_d(w, keepdim=False):
  def d(x):
    out = jnp.sum(x * w, axis=(1, 2, 3))
    return out[:, None] if keepdim else out

  return d


# A quadratic discriminator written so it runs on numpy (float64) and jax arrays.
_rs = np.random.RandomState(0)
_W = _rs.randn(*SHAPE[1:])
_V = _rs.randn(*SHAPE[1:])
_U = _rs.randn(*SHAPE[1:])


def _quad_single(x):
  """D(x) for one example x of shape (H, W, C)."""
  return (x * _W).sum() + 0.5 * (_V * x**2).sum() + ((_U * x).sum()) ** 2


def _quad_d(x):
  w, v, u = (jnp.asarray(a, jnp.float32) for a in (_W, _V, _U))
  return (
    jnp.sum(x * w, axis=(1, 2, 3))
    + 0.5 * jnp.sum(v * x**2, axis=(1, 2, 3))
    + jnp.sum(u * x, axis=(1, 2, 3)) ** 2
  )


def _nonlinear_d(x):
  w = jnp.asarray(_W, jnp.float32)
  h = jnp.tanh(x * w + 0.3)
  return jnp.sum(h**3, axis=(1, 2, 3)) + jnp.sum(jnp.sin(x), axis=(1, 2, 3)) ** 2


def _loop_grads(d, images):
  """Per-example gradients via jax.grad of D on each example separately."""
  g1 = jax.grad(lambda xi: d(xi[None])[0].reshape(()))
  return [g1(images[i]) for i in range(images.shape[0])]


# ---------------------------------------------------------------- R1


@pytest.mark.parametrize('keepdim', [False, True])
def test_r1_linear_equals_w_squared_norm(keepdim):
  w = jax.random.normal(jax.random.key(1), SHAPE[1:])
  r1 = r1_penalty(_linear_d(w, keepdim), _images(0))
  assert r1.shape == ()
  np.testing.assert_allclose(r1, jnp.sum(w**2), rtol=1e-6)


def test_r1_quadratic_matches_per_example_loop():
  x = _images(2)
  expected = np.mean([float(jnp.sum(g**2)) for g in _loop_grads(_quad_d, x)])
  np.testing.assert_allclose(r1_penalty(_quad_d, x), expected, rtol=1e-5)


def test_r1_quadratic_matches_central_finite_differences():
  x = np.asarray(_images(3), np.float64)
  eps = 1e-3
  sq_norms = []
  for i in range(x.shape[0]):
    grad = np.zeros(x.shape[1:])
    for idx in np.ndindex(*x.shape[1:]):
      e = np.zeros(x.shape[1:])
      e[idx] = eps
      grad[idx] = (_quad_single(x[i] + e) - _quad_single(x[i] - e)) / (2 * eps)
    sq_norms.append(np.sum(grad**2))
  r1 = r1_penalty(_quad_d, jnp.asarray(x, jnp.float32))
  np.testing.assert_allclose(r1, np.mean(sq_norms), rtol=1e-4)


def test_r1_differentiable_wrt_d_params():
  # R1 of a linear D is ||w||^2, so d R1 / d w = 2 w (needs double backprop).
  w = jax.random.normal(jax.random.key(4), SHAPE[1:])
  x = _images(5)
  g = jax.grad(lambda w: r1_penalty(_linear_d(w), x))(w)
  np.testing.assert_allclose(g, 2 * w, rtol=1e-5, atol=1e-6)


def test_r1_jit_and_bad_logit_shape():
  x = _images(6)
  w = jax.random.normal(jax.random.key(7), SHAPE[1:])
  r1 = jax.jit(lambda x: r1_penalty(_linear_d(w), x))(x)
  np.testing.assert_allclose(r1, jnp.sum(w**2), rtol=1e-6)
  with pytest.raises(ValueError):
    r1_penalty(lambda x: jnp.zeros((x.shape[0], 3)), x)


# ---------------------------------------------------------------- GP


def test_gp_linear_norm_two_is_exactly_one():
  w = jax.random.normal(jax.random.key(8), SHAPE[1:])
  w = 2.0 * w / jnp.linalg.norm(w)
  gp = gradient_penalty(_linear_d(w), _images(9), _images(10), jax.random.key(11))
  assert gp.shape == ()
  np.testing.assert_allclose(gp, 1.0, rtol=1e-5)


def test_gp_nonlinear_matches_per_example_loop_with_documented_alpha():
  real, fake, rng = _images(12), _images(13), jax.random.key(14)
  alpha = jax.random.uniform(rng, (real.shape[0], 1, 1, 1), real.dtype)
  x_hat = alpha * real + (1 - alpha) * fake
  norms = [jnp.linalg.norm(g) for g in _loop_grads(_nonlinear_d, x_hat)]
  expected = np.mean([(float(n) - 1.0) ** 2 for n in norms])
  gp = gradient_penalty(_nonlinear_d, real, fake, rng)
  np.testing.assert_allclose(gp, expected, rtol=1e-5)


def test_gp_nonlinear_real_equals_fake_is_alpha_independent():
  # With real == fake the interpolate is the image itself for any alpha.
  x = _images(15)
  norms = [jnp.linalg.norm(g) for g in _loop_grads(_nonlinear_d, x)]
  expected = np.mean([(float(n) - 1.0) ** 2 for n in norms])
  for seed in (0, 1):
    gp = gradient_penalty(_nonlinear_d, x, x, jax.random.key(seed))
    np.testing.assert_allclose(gp, expected, rtol=1e-5)


def test_gp_interpolation_is_per_example():
  # D(x) = sum(x^2)/2 -> grad = x_hat; with real = 1, fake = 0 the per-example
  # norm is alpha_i * sqrt(HWC), so GP = mean((alpha_i * sqrt(n) - 1)^2).
  real, fake = jnp.ones(SHAPE), jnp.zeros(SHAPE)
  d = lambda x: 0.5 * jnp.sum(x**2, axis=(1, 2, 3))
  rng = jax.random.key(16)
  alpha = jax.random.uniform(rng, (SHAPE[0],))
  assert np.unique(np.asarray(alpha)).size == SHAPE[0]
  n = np.prod(SHAPE[1:])
  expected = np.mean((np.asarray(alpha) * np.sqrt(n) - 1.0) ** 2)
  np.testing.assert_allclose(gradient_penalty(d, real, fake, rng), expected, rtol=1e-5)


def test_gp_finite_gradient_at_zero_input_gradient():
  x = _images(17)
  const_d = lambda w: lambda x: jnp.sum(x * w, axis=(1, 2, 3))
  w0 = jnp.zeros(SHAPE[1:])
  gp, g = jax.value_and_grad(lambda w: gradient_penalty(const_d(w), x, x, jax.random.key(0)))(w0)
  np.testing.assert_allclose(gp, 1.0, rtol=1e-5)  # (sqrt(eps) - 1)^2
  assert bool(jnp.all(jnp.isfinite(g)))


def test_gp_differentiable_wrt_d_params():
  # GP(w) = (||w|| - 1)^2 for linear D -> grad = 2 (||w|| - 1) w / ||w||.
  w = jax.random.normal(jax.random.key(18), SHAPE[1:])
  g = jax.grad(
    lambda w: gradient_penalty(_linear_d(w), _images(19), _images(20), jax.random.key(21))
  )(w)
  nw = jnp.linalg.norm(w)
  np.testing.assert_allclose(g, 2 * (nw - 1) * w / nw, rtol=1e-4, atol=1e-6)


# ---------------------------------------------------------------- LeCam


def test_lecam_state_init_and_pytree():
  s = LeCamState()
  assert float(s.ema_real) == 0.0 and float(s.ema_fake) == 0.0
  assert len(jax.tree_util.tree_leaves(s)) == 2


def test_lecam_update_moves_emas_by_decay():
  s = LeCamState(ema_real=jnp.float32(1.0), ema_fake=jnp.float32(-2.0))
  real = jnp.array([1.0, 2.0, 3.0, 6.0])  # mean 3
  fake = jnp.array([[-1.0], [1.0]])  # mean 0
  s2 = lecam_update(s, real, fake, decay=0.9)
  np.testing.assert_allclose(s2.ema_real, 0.9 * 1.0 + 0.1 * 3.0, rtol=1e-6)
  np.testing.assert_allclose(s2.ema_fake, 0.9 * -2.0 + 0.1 * 0.0, rtol=1e-6)
  # default decay 0.99, from zero init, under jit
  s3 = jax.jit(lecam_update)(LeCamState(), real, fake)
  np.testing.assert_allclose(s3.ema_real, 0.03, rtol=1e-5)
  np.testing.assert_allclose(s3.ema_fake, 0.0, atol=1e-7)
  # repeated updates converge to the batch means
  s4 = LeCamState()
  for _ in range(200):
    s4 = lecam_update(s4, real, fake, decay=0.9)
  np.testing.assert_allclose(s4.ema_real, 3.0, rtol=1e-4)


def test_lecam_penalty_hand_computed():
  s = LeCamState(ema_real=jnp.float32(0.5), ema_fake=jnp.float32(-0.5))
  real = jnp.array([1.0, -1.0, 0.5])  # relu(real + 0.5) = [1.5, 0, 1.0]
  fake = jnp.array([0.0, 1.0])  # relu(0.5 - fake) = [0.5, 0]
  expected = (1.5**2 + 0 + 1.0**2) / 3 + (0.5**2 + 0) / 2
  np.testing.assert_allclose(lecam_penalty(s, real, fake), expected, rtol=1e-6)


def test_lecam_penalty_zero_when_separated():
  s = LeCamState(ema_real=jnp.float32(-1.0), ema_fake=jnp.float32(1.0))
  real = jnp.array([0.9, -3.0, 1.0])  # all <= ema_fake
  fake = jnp.array([-1.0, 0.0, 5.0])  # all >= ema_real
  assert float(lecam_penalty(s, real, fake)) == 0.0


def test_lecam_penalty_emas_are_stop_gradient():
  s = LeCamState(ema_real=jnp.float32(0.5), ema_fake=jnp.float32(-0.5))
  real, fake = jnp.array([1.0, 2.0]), jnp.array([0.0, -1.0])
  gs = jax.grad(lambda s: lecam_penalty(s, real, fake))(s)
  assert float(gs.ema_real) == 0.0 and float(gs.ema_fake) == 0.0
  g_real, g_fake = jax.grad(lambda r, f: lecam_penalty(s, r, f), argnums=(0, 1))(real, fake)
  # d/dr mean(relu(r + 0.5)^2) = 2 (r + 0.5) / n ; d/df mean(relu(0.5 - f)^2) = -2 (0.5 - f) / n
  np.testing.assert_allclose(g_real, 2 * (real + 0.5) / 2, rtol=1e-6)
  np.testing.assert_allclose(g_fake, -2 * (0.5 - fake) / 2, rtol=1e-6)


def test_r2_is_the_zero_centred_penalty_on_its_input():
  """R2 on generated images is R1's formula: matches the per-example loop and finite
  differences, and the penalty is differentiable w.r.t. D's parameters."""
  x = _images(3)
  expected = np.mean([float(jnp.sum(g**2)) for g in _loop_grads(_nonlinear_d, x)])
  np.testing.assert_allclose(r2_penalty(_nonlinear_d, x), expected, rtol=1e-5)
  w = jnp.asarray(_W, jnp.float32)
  np.testing.assert_allclose(r2_penalty(_linear_d(w), x), jnp.sum(w**2), rtol=1e-6)
  # d/dw of ||w||^2 is 2w, whatever the (generated) images.
  grad = jax.grad(lambda w: r2_penalty(_linear_d(w), x))(w)
  np.testing.assert_allclose(grad, 2 * w, rtol=1e-6)
