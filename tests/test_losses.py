"""Each GAN loss against values computed by hand on small inputs."""

import math

import jax.numpy as jnp
import pytest

from gan_jax import losses
from gan_jax.errors import UserError

REAL = jnp.array([2.0, -1.0])
FAKE = jnp.array([0.5, -3.0])


def softplus(x):
  return math.log1p(math.exp(x))


def test_non_saturating():
  d, g, *_ = losses.get('non_saturating')
  # -log sigmoid(r) = softplus(-r); -log(1 - sigmoid(f)) = softplus(f).
  want_d = (softplus(-2.0) + softplus(1.0)) / 2 + (softplus(0.5) + softplus(-3.0)) / 2
  assert float(d(REAL, FAKE)) == pytest.approx(want_d, rel=1e-6)
  assert float(g(REAL, FAKE)) == pytest.approx((softplus(-0.5) + softplus(3.0)) / 2, rel=1e-6)


def test_hinge():
  d, g, *_ = losses.get('hinge')
  # relu(1 - r): [0, 2] -> 1; relu(1 + f): [1.5, 0] -> 0.75.
  assert float(d(REAL, FAKE)) == pytest.approx(1.0 + 0.75)
  assert float(g(REAL, FAKE)) == pytest.approx(1.25)


def test_wasserstein():
  d, g, *_ = losses.get('wasserstein')
  assert float(d(REAL, FAKE)) == pytest.approx(-1.25 - 0.5)
  assert float(g(REAL, FAKE)) == pytest.approx(1.25)


def test_least_squares():
  d, g, *_ = losses.get('least_squares')
  # 0.5 * (mean((r-1)^2) + mean(f^2)) = 0.5 * ((1 + 4)/2 + (0.25 + 9)/2).
  assert float(d(REAL, FAKE)) == pytest.approx(0.5 * (2.5 + 4.625))
  assert float(g(REAL, FAKE)) == pytest.approx(0.5 * (0.25 + 16.0) / 2)


def test_non_saturating_is_stable_for_large_logits():
  d, g, *_ = losses.get('non_saturating')
  big = jnp.array([1e4, -1e4])
  assert jnp.isfinite(d(big, -big)) and jnp.isfinite(g(-big, big))


def test_rpgan_against_hand_values():
  d, g, paired, *_ = losses.get('rpgan')
  assert paired
  # D: mean softplus(-(r - f)) over the pairs (2 - 0.5, -1 + 3) = (1.5, 2).
  assert float(d(REAL, FAKE)) == pytest.approx((softplus(-1.5) + softplus(-2.0)) / 2, rel=1e-6)
  # G: mean softplus(-(f - r)).
  assert float(g(REAL, FAKE)) == pytest.approx((softplus(1.5) + softplus(2.0)) / 2, rel=1e-6)


def test_rpgan_depends_only_on_the_paired_differences():
  d, g, *_ = losses.get('rpgan')
  shift = 7.0  # Adding one constant to every logit changes nothing: the loss is relative.
  assert float(d(REAL + shift, FAKE + shift)) == pytest.approx(float(d(REAL, FAKE)), rel=1e-6)
  assert float(g(REAL + shift, FAKE + shift)) == pytest.approx(float(g(REAL, FAKE)), rel=1e-6)
  # Pairing matters: swapping which fake meets which real changes the value.
  assert float(d(REAL, FAKE[::-1])) != pytest.approx(float(d(REAL, FAKE)), rel=1e-3)
  big = jnp.array([1e4, -1e4])
  assert jnp.isfinite(d(big, -big)) and jnp.isfinite(g(big, -big))


def test_only_relativistic_losses_are_paired():
  assert [name for name, loss in losses.LOSSES.items() if loss.paired] == ['rpgan']
  for name, loss in losses.LOSSES.items():
    if not loss.paired:  # G's loss must not need D(real): the step passes None for it.
      assert jnp.isfinite(loss.g(None, FAKE)), name


def test_unknown_loss_is_a_user_error():
  with pytest.raises(UserError, match="unknown loss 'nope'"):
    losses.get('nope')


def test_each_loss_says_where_it_separates_real_from_fake():
  """ADA reads sign(D(real) - boundary); a loss without a fixed one has None."""
  assert losses.get('non_saturating').boundary == 0.0 and losses.get('hinge').boundary == 0.0
  assert losses.get('least_squares').boundary == 0.5  # Targets 0 (fake) and 1 (real).
  assert losses.get('wasserstein').boundary is None and losses.get('rpgan').boundary is None
