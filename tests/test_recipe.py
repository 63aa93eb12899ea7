"""R3GAN's recipe inside the train step: the paired loss, R2, lazy penalties and the cosine
ramps of lr, beta2 and gamma."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from gan_jax import data
from gan_jax import gan as gan_lib
from gan_jax import gan_builder
from gan_jax import losses
from gan_jax import regularizers
from tests.conftest import load_config

SOURCE = data.load('embedded:mnist', 'train')
BATCH = {'image': SOURCE.images[:8], 'label': SOURCE.labels[:8]}


def recipe_config(**overrides):
  config = load_config('mnist_rpgan')
  for key, value in overrides.items():
    *sections, name = key.split('__')
    node = config
    for section in sections:
      node = node[section]
    node[name] = value
  return config


def build(config):
  return gan_builder.build(config, SOURCE.image_shape, SOURCE.num_classes)


def test_cosine_ramp_matches_r3gan_formula():
  """R3GAN's cosine_decay_with_warmup without warm-up: final + (start - final) * (1 + cos(pi
  t / T)) / 2, then final; rising ramps (beta2) work the same way."""
  for start, final in ((2e-4, 5e-5), (0.9, 0.99)):
    ramp = gan_lib.cosine_ramp(start, final, 100)
    for t in (0, 25, 50, 99, 100, 150):
      want = final + (start - final) * 0.5 * (1 + np.cos(np.pi * min(t, 100) / 100))
      assert float(ramp(t)) == pytest.approx(want, rel=1e-5)
  assert float(gan_lib.cosine_ramp(3.0, 1.0, 0)(1000)) == 3.0  # steps = 0: constant.


def test_optimizer_follows_the_schedule():
  config = recipe_config(schedule__steps=10)
  gan = build(config)
  state = gan.init(jax.random.key(0))
  step = jax.jit(functools.partial(gan_lib.train_step, gan))
  for _ in range(11):  # The 11th update runs at count 10, the end of the ramp.
    state, _ = step(state, BATCH, jax.random.key(1))
  hyper = state.g_opt.hyperparams
  assert float(hyper['learning_rate']) == pytest.approx(2e-4 * 0.25, rel=1e-4)
  assert float(hyper['b2']) == pytest.approx(0.99, rel=1e-5)
  assert float(hyper['b1']) == 0.0
  # No schedule: plain Adam, as every other config's checkpoints hold.
  plain = gan_builder.make_optimizer(config.optim.g, recipe_config(schedule__steps=0).schedule)
  assert not isinstance(plain.init({'w': jnp.zeros(2)}), optax.InjectHyperparamsState)


def test_lazy_penalties_run_every_kth_step_with_k_times_the_weight():
  gan = build(recipe_config(loss__penalty_every=3, schedule__steps=0))
  state = gan.init(jax.random.key(0))
  step = jax.jit(functools.partial(gan_lib.train_step, gan))
  seen = []
  for _ in range(4):
    state, metrics = step(state, BATCH, jax.random.key(1))
    seen.append((float(metrics['r1']), float(metrics['r2'])))
  assert all(v > 0 for v in seen[0]) and all(v > 0 for v in seen[3])  # Steps 0 and 3.
  assert seen[1] == (0.0, 0.0) and seen[2] == (0.0, 0.0)
  assert [gan.penalty_due(i) for i in range(7)] == [True, False, False, True, False, False, True]


def test_static_lazy_steps_equal_the_on_device_choice():
  """The loop's two compiled steps (penalize=True/False by the host's step number) compute
  exactly what the single lax.cond step computes, on the steps that take penalties and the
  steps that do not."""
  gan = build(recipe_config(loss__penalty_every=2, schedule__steps=0))
  init = gan.init(jax.random.key(0))
  on_device = jax.jit(functools.partial(gan_lib.train_step, gan))
  static = {
    p: jax.jit(functools.partial(gan_lib.train_step, gan, penalize=p)) for p in (True, False)
  }
  a = b = init
  for i in range(3):
    a, metrics_a = on_device(a, BATCH, jax.random.key(1))
    b, metrics_b = static[gan.penalty_due(i)](b, BATCH, jax.random.key(1))
    for key in ('d_loss', 'g_loss', 'r1', 'r2'):
      np.testing.assert_allclose(metrics_a[key], metrics_b[key], rtol=1e-5, atol=1e-7)
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
    np.testing.assert_allclose(x, y, rtol=1e-4, atol=1e-6)


def test_d_loss_is_rpgan_plus_gamma_halves_of_r1_and_r2():
  """The D update's total loss: the paired loss plus gamma/2 (R1 + R2), the gradient
  penalties taken on the real batch and on the fakes of the same step."""
  config = recipe_config(loss__penalty_every=1, schedule__steps=0)
  gan = build(config)
  state = gan.init(jax.random.key(0))
  _, metrics = jax.jit(functools.partial(gan_lib.train_step, gan))(state, BATCH, jax.random.key(1))
  rngs = jax.random.split(jax.random.fold_in(jax.random.key(1), 0), 5)
  real = data.to_float(BATCH['image'])
  z, _ = gan.sample_noise(rngs[0], 8)
  fake, _ = gan.apply_generator(state.g_params, state.g_stats, z, None, train=True)
  d_of = lambda x: gan.discriminate(state.d_params, state.d_stats, x, None, train=False)[0]
  np.testing.assert_allclose(metrics['r1'], regularizers.r1_penalty(d_of, real), rtol=1e-4)
  np.testing.assert_allclose(metrics['r2'], regularizers.r2_penalty(d_of, fake), rtol=1e-4)
  want = losses.get('rpgan').d(d_of(real), d_of(fake))
  np.testing.assert_allclose(metrics['d_loss'], want, rtol=1e-4)


def test_gamma_decays_with_the_schedule():
  gan = build(recipe_config(schedule__steps=4, loss__penalty_every=1))
  assert float(gan.gamma_scale_at(0)) == 1.0
  assert float(gan.gamma_scale_at(4)) == pytest.approx(0.1)
  state = gan.init(jax.random.key(0))
  step = jax.jit(functools.partial(gan_lib.train_step, gan))
  scales = []
  for _ in range(5):
    state, metrics = step(state, BATCH, jax.random.key(1))
    scales.append(float(metrics['gamma_scale']))
  assert scales == sorted(scales, reverse=True) and scales[-1] == pytest.approx(0.1)


def test_paired_conditional_fakes_take_the_real_labels():
  """RpGAN pairs each fake with a real example; conditional fakes get that example's label,
  so the pairs differ only in realness (R3GAN generates with the real batch's labels)."""
  gan = build(recipe_config(model__conditional=True))
  state = gan.init(jax.random.key(0))
  calls = []
  original = gan.discriminate

  def spy(params, stats, images, labels, train):
    calls.append(labels.get('label') if isinstance(labels, dict) else labels)
    return original(params, stats, images, labels, train)

  object.__setattr__(gan, 'discriminate', spy)
  gan_lib.train_step(gan, state, BATCH, jax.random.key(1))  # Eagerly: the spy sees values.
  both = [l for l in calls if l is not None and len(l) == 16]
  assert both, 'no joint real+fake D call seen'
  np.testing.assert_array_equal(both[0][:8], both[0][8:])
