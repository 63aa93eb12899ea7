"""The SNGAN ResNet models: shapes, conditioning, and the discriminator's spectral norm."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import cifar10_sngan
from gan_jax import config_checks
from gan_jax.errors import UserError
from gan_jax.models import resnet

WIDTH = 4  # Tiny: 16-channel G, 8-channel D; these tests check wiring, not quality.
LATENT = 16


def _sn_leaves(stats, name):
  """{key path: value} of the spectral-norm variables called `name` ('u' or 'sigma').

  Key paths look like ('block0', 'conv1_sn', 'conv1/kernel/u').
  """
  flat = jax.tree_util.tree_flatten_with_path(stats)[0]
  leaves = {tuple(k.key for k in path): value for path, value in flat}
  return {path: value for path, value in leaves.items() if path[-1].endswith('/' + name)}


def _weight(params, path):
  """The weight whose spectral-norm state is at `path` (a key of `_sn_leaves`)."""
  *modules, _, variable = path
  layer, weight, _ = variable.split('/')
  for key in (*modules, layer):
    params = params[key]
  return params[weight]


@pytest.fixture(scope='module')
def conditional_g():
  """A conditional 28 px generator and its initial variables, shared to save compile time."""
  g = resnet.Generator((28, 28, 1), width=WIDTH, num_classes=10)
  z = jnp.zeros((2, LATENT))
  return g, g.init(jax.random.key(1), z, jnp.array([0, 1]), train=False)


@pytest.fixture(scope='module')
def conditional_d():
  """A conditional (projection) discriminator of 28 px images and its initial variables."""
  d = resnet.Discriminator(width=WIDTH, num_classes=10)
  x = jnp.zeros((2, 28, 28, 1))
  return d, d.init(jax.random.key(2), x, jnp.array([0, 1]), train=False)


@pytest.mark.parametrize('image_shape', [(28, 28, 1), (28, 28, 3), (32, 32, 1), (32, 32, 3)])
@pytest.mark.parametrize('num_classes', [0, 10])
def test_shapes(image_shape, num_classes):
  """Shapes only, by abstract evaluation (no compilation)."""
  g = resnet.Generator(image_shape, width=WIDTH, num_classes=num_classes)
  d = resnet.Discriminator(width=WIDTH, num_classes=num_classes)
  z = jnp.zeros((2, LATENT))
  labels = jnp.array([0, 7]) if num_classes else None
  g_vars = jax.eval_shape(lambda: g.init(jax.random.key(0), z, labels, train=False))
  images, _ = jax.eval_shape(
    lambda v: g.apply(v, z, labels, train=True, mutable=['batch_stats']), g_vars
  )
  assert images.shape == (2, *image_shape)
  d_vars = jax.eval_shape(lambda x: d.init(jax.random.key(0), x, labels, train=False), images)
  logits, _ = jax.eval_shape(
    lambda v, x: d.apply(v, x, labels, train=True, mutable=['batch_stats']), d_vars, images
  )
  assert logits.shape == (2,)


def test_images_in_range_and_batch_stats_update(conditional_g):
  g, variables = conditional_g
  z = jnp.asarray(np.random.default_rng(0).normal(0, 3, (2, LATENT)), jnp.float32)
  images, stats = g.apply(variables, z, jnp.array([0, 7]), train=True, mutable=['batch_stats'])
  assert jnp.all(jnp.abs(images) <= 1.0)
  assert float(jnp.std(images)) > 0
  unchanged = jax.tree.map(jnp.array_equal, variables['batch_stats'], stats['batch_stats'])
  assert not any(jax.tree.leaves(unchanged)), 'every running mean and variance moves'


def test_other_layouts():
  """G's optional spectral norm; D with fewer downsamplings (SNGAN's CIFAR D: 32 -> 8 px)."""
  g = resnet.Generator((32, 32, 3), width=WIDTH, spectral_norm=True)
  z = jnp.zeros((2, LATENT))
  g_vars = jax.eval_shape(lambda: g.init(jax.random.key(0), z, train=False))
  assert {'dense_sn', 'conv_out_sn'} <= set(g_vars['batch_stats'])
  assert 'conv1_sn' in g_vars['batch_stats']['block0']
  images = jax.eval_shape(lambda v: g.apply(v, z, train=False), g_vars)
  for downs in (1, 2):
    d = resnet.Discriminator(width=WIDTH, down_blocks=downs, plain_blocks=1)
    d_vars = jax.eval_shape(lambda x: d.init(jax.random.key(0), x, train=False), images)
    logits = jax.eval_shape(lambda v, x: d.apply(v, x, train=False), d_vars, images)
    assert logits.shape == (2,)
  config = cifar10_sngan.get_config('smoke')  # 32 px: 1..3 downsampling blocks.
  with config.unlocked():  # Options only one model takes live in a section named after it.
    config.model.resnet = {'down_blocks': 4}
  with pytest.raises(UserError, match='down_blocks=4: 32 px images allow 1..3'):
    config_checks.check_data_fits(config, (32, 32, 3), 10)


def test_labels_required_when_conditional(conditional_g):
  g, variables = conditional_g
  with pytest.raises(ValueError, match='needs labels'):
    g.apply(variables, jnp.zeros((1, LATENT)), train=False)


def test_spectral_norm_state_updates_only_in_train(conditional_d):
  d, variables = conditional_d
  x = jnp.asarray(np.random.default_rng(0).uniform(-1, 1, (2, 28, 28, 1)), jnp.float32)
  labels = jnp.array([1, 2])
  assert set(variables) == {'params', 'batch_stats'}
  old = variables['batch_stats']
  # Every Conv/Dense/Embed of D has its power-iteration state outside the parameters.
  weights = [
    path
    for path, _ in jax.tree_util.tree_flatten_with_path(variables['params'])[0]
    if path[-1].key in ('kernel', 'embedding')
  ]
  assert len(_sn_leaves(old, 'u')) == len(weights) == 12  # 10 convs, the Dense, the Embed.

  logits, new = d.apply(variables, x, labels, train=True, mutable=['batch_stats'])
  moved = jax.tree.map(lambda a, b: not jnp.array_equal(a, b), old, new['batch_stats'])
  assert all(_sn_leaves(moved, 'u').values()), 'every u moves in a train step'
  assert any(_sn_leaves(moved, 'sigma').values())

  eval_logits, same = d.apply(variables, x, labels, train=False, mutable=['batch_stats'])
  assert jax.tree.all(jax.tree.map(jnp.array_equal, old, same['batch_stats']))
  # The stored state only matters from the next call on: this call's logits agree.
  np.testing.assert_allclose(eval_logits, logits, rtol=1e-6)
  # Train mode with an immutable collection (e.g. inside a penalty closure) does not fail.
  np.testing.assert_allclose(d.apply(variables, x, labels, train=True), logits, rtol=1e-6)


def test_spectral_norm_converges_to_largest_singular_value(conditional_d):
  """After many D train steps each stored sigma is the top singular value of its weight."""
  d, variables = conditional_d
  x, labels = jnp.zeros((2, 28, 28, 1)), jnp.array([0, 1])

  @jax.jit
  def power_iterate(stats):
    def step(_, stats):
      _, new = d.apply(
        {'params': variables['params'], 'batch_stats': stats},
        x,
        labels,
        train=True,
        mutable=['batch_stats'],
      )
      return new['batch_stats']

    return jax.lax.fori_loop(0, 300, step, stats)

  sigmas = _sn_leaves(power_iterate(variables['batch_stats']), 'sigma')
  assert len(sigmas) == 12  # 10 convs, the Dense, the Embed.
  for path, sigma in sigmas.items():
    weight = np.asarray(_weight(variables['params'], path))
    # Flax flattens every leading axis: (kh, kw, cin, cout) -> (kh * kw * cin, cout).
    expected = np.linalg.svd(weight.reshape(-1, weight.shape[-1]), compute_uv=False)[0]
    np.testing.assert_allclose(sigma, expected, rtol=1e-3, err_msg=str(path))


def test_spectral_norm_dense_is_normalised():
  """nn.SpectralNorm(Dense) maps the identity to W / sigma, whose top singular value is 1."""
  layer = nn.SpectralNorm(nn.Dense(5, use_bias=False))
  eye = jnp.eye(7)
  variables = layer.init(jax.random.key(0), eye, update_stats=True)
  apply = jax.jit(lambda v: layer.apply(v, eye, update_stats=True, mutable=['batch_stats']))
  for _ in range(100):
    normalised, stats = apply(variables)
    variables = {'params': variables['params'], **stats}
  kernel = np.asarray(variables['params']['layer_instance']['kernel'])
  top = np.linalg.svd(kernel, compute_uv=False)[0]
  sigma = variables['batch_stats']['layer_instance/kernel/sigma']
  np.testing.assert_allclose(sigma, top, rtol=1e-4)
  np.testing.assert_allclose(np.linalg.svd(normalised, compute_uv=False)[0], 1.0, rtol=1e-4)


def test_conditional_batch_norm():
  cbn = resnet.ConditionalBatchNorm(num_classes=3)
  rng = np.random.default_rng(0)
  x = jnp.asarray(rng.normal(1.0, 3.0, (4, 2, 2, 5)), jnp.float32)
  labels = jnp.array([0, 1, 2, 1])
  variables = cbn.init(jax.random.key(1), x, labels, train=False)
  assert set(variables['params']) == {'gain', 'bias'}  # The inner BatchNorm has no scale/bias.
  # Initially a plain batch norm: gain 1 and bias 0 for every class.
  out, _ = cbn.apply(variables, x, labels, train=True, mutable=['batch_stats'])
  mean, var = x.mean((0, 1, 2)), x.var((0, 1, 2))
  normalised = (x - mean) / jnp.sqrt(var + 1e-5)
  np.testing.assert_allclose(out, normalised, atol=1e-5)
  gain = jnp.asarray(rng.standard_normal((3, 5)), jnp.float32)
  bias = jnp.asarray(rng.standard_normal((3, 5)), jnp.float32)
  params = {'gain': {'embedding': gain}, 'bias': {'embedding': bias}}
  out, _ = cbn.apply(
    {**variables, 'params': params}, x, labels, train=True, mutable=['batch_stats']
  )
  expected = normalised * gain[labels][:, None, None] + bias[labels][:, None, None]
  np.testing.assert_allclose(out, expected, atol=1e-5)


def test_conditional_generator_depends_on_label(conditional_g):
  g, variables = conditional_g
  z = jnp.tile(
    jnp.asarray(np.random.default_rng(0).standard_normal((1, LATENT)), jnp.float32), (2, 1)
  )
  labels = jnp.array([3, 7])
  images = g.apply(variables, z, labels, train=False)
  # Gains start at 1 and biases at 0: at initialisation the label has no effect...
  np.testing.assert_allclose(images[0], images[1], atol=1e-6)
  # ...but once the class embeddings differ, so do the images of the same z.
  rng = np.random.default_rng(0)  # NumPy: no per-shape compilation of random ops.
  params = jax.tree.map(
    lambda p: p + 0.1 * rng.standard_normal(p.shape, np.float32), variables['params']
  )
  images = g.apply({**variables, 'params': params}, z, labels, train=False)
  assert not jnp.allclose(images[0], images[1], atol=1e-3)


def test_projection_discriminator_depends_on_label_and_has_finite_grads(conditional_d):
  d, variables = conditional_d
  x = jnp.tile(np.random.default_rng(0).uniform(-1, 1, (1, 28, 28, 1)), (2, 1, 1, 1))
  x = x.astype(jnp.float32)
  labels = jnp.array([3, 7])
  logits = d.apply(variables, x, labels, train=False)
  assert abs(float(logits[0] - logits[1])) > 1e-4

  def loss(params):  # As in D's own update: train mode, stats mutable.
    logits, new = d.apply(
      {**variables, 'params': params}, x, labels, train=True, mutable=['batch_stats']
    )
    return jnp.sum(logits), new

  # Compiled: op-by-op backward passes compile every primitive separately, which is slower.
  grads, _ = jax.jit(jax.grad(loss, has_aux=True))(variables['params'])
  leaves = jax.tree.leaves(grads)
  assert all(jnp.all(jnp.isfinite(g)) for g in leaves)
  assert all(jnp.any(g != 0) for g in leaves), 'every parameter reaches the logits'
