"""UpConv2x must be exactly torch's ConvTranspose2d(k=4, s=2, p=1) for every method."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gan_jax import hardware
from gan_jax.models.layers import METHODS
from gan_jax.models.layers import UpConv2x
from gan_jax.models.layers import upconv2x
from gan_jax.models.layers import upconv2x_flops

# Non-square so that swapping H and W (or phase rows and columns) is caught.
BATCH, HEIGHT, WIDTH, CIN, COUT = 2, 3, 4, 2, 3


def torch_conv_transpose_reference(x, torch_weight):
  """Literal numpy ConvTranspose2d(k=4, s=2, p=1) for NHWC x, weight (cin, cout, 4, 4).

  Every input pixel (i, j) scatters x[i, j] @ w[:, :, kh, kw] to output
  (2i + kh, 2j + kw) of the uncropped output; padding=1 then crops one pixel per
  side. Returns the output and the number of multiply-adds performed.
  """
  batch, height, width, _ = x.shape
  cout = torch_weight.shape[1]
  out = np.zeros((batch, 2 * height + 2, 2 * width + 2, cout))
  macs = 0
  for i in range(height):
    for j in range(width):
      for kh in range(4):
        for kw in range(4):
          out[:, 2 * i + kh, 2 * j + kw] += x[:, i, j] @ torch_weight[:, :, kh, kw]
          macs += batch * torch_weight.shape[0] * cout
  return out[:, 1:-1, 1:-1], macs


@pytest.fixture(scope='module')
def data():
  rng = np.random.default_rng(0)
  x = rng.standard_normal((BATCH, HEIGHT, WIDTH, CIN))
  torch_weight = rng.standard_normal((CIN, COUT, 4, 4))
  expected, macs = torch_conv_transpose_reference(x, torch_weight)
  kernel = torch_weight.transpose(2, 3, 0, 1)  # the documented torch -> HWIO layout
  return dict(
    x=jnp.asarray(x, jnp.float32),
    kernel=jnp.asarray(kernel, jnp.float32),
    expected=expected,
    macs=macs,
  )


@pytest.mark.parametrize('method', METHODS)
def test_matches_torch_definition(data, method):
  out = upconv2x(data['x'], data['kernel'], method)
  assert out.shape == (BATCH, 2 * HEIGHT, 2 * WIDTH, COUT)
  np.testing.assert_allclose(out, data['expected'], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize('method', METHODS)
def test_matches_lax_conv_transpose(data, method):
  # lax's own transposed conv; padding 'SAME' at stride 2, kernel 4 is (2, 2)
  # on the dilated input, i.e. torch padding=1.
  expected = jax.lax.conv_transpose(
    data['x'],
    data['kernel'][::-1, ::-1],
    (2, 2),
    'SAME',
    dimension_numbers=('NHWC', 'HWIO', 'NHWC'),
  )
  np.testing.assert_allclose(
    upconv2x(data['x'], data['kernel'], method), expected, rtol=1e-5, atol=1e-5
  )


def test_reference_rejects_near_misses(data):
  """The comparison is sharp enough to catch plausible implementation bugs."""
  good = np.asarray(upconv2x(data['x'], data['kernel'], 'phase'))
  near_misses = {
    'row phases swapped': good.reshape(BATCH, HEIGHT, 2, 2 * WIDTH, COUT)[:, :, ::-1].reshape(
      good.shape
    ),
    'column phases swapped': good.reshape(BATCH, 2 * HEIGHT, WIDTH, 2, COUT)[:, :, :, ::-1].reshape(
      good.shape
    ),
    'kernel not flipped': upconv2x(data['x'], data['kernel'][::-1, ::-1], 'phase'),
    'kernel H/W swapped': upconv2x(data['x'], data['kernel'].transpose(1, 0, 2, 3), 'phase'),
  }
  for name, wrong in near_misses.items():
    assert not np.allclose(wrong, data['expected'], atol=1e-2), name


def test_gradients_agree_across_methods(data):
  cotangent = jax.random.normal(jax.random.key(1), (BATCH, 2 * HEIGHT, 2 * WIDTH, COUT))

  def grads(method):
    loss = lambda x, kernel: jnp.sum(upconv2x(x, kernel, method) * cotangent)
    return jax.grad(loss, argnums=(0, 1))(data['x'], data['kernel'])

  ref_dx, ref_dkernel = grads('transpose')
  for method in METHODS:
    dx, dkernel = grads(method)
    np.testing.assert_allclose(dx, ref_dx, rtol=1e-4, atol=1e-4, err_msg=method)
    np.testing.assert_allclose(dkernel, ref_dkernel, rtol=1e-4, atol=1e-4, err_msg=method)


@pytest.mark.parametrize('method', METHODS)
def test_module_params_and_bias(data, method):
  model = UpConv2x(COUT, method=method)
  params = model.init(jax.random.key(0), data['x'])['params']
  assert params['kernel'].shape == (4, 4, CIN, COUT)
  assert params['bias'].shape == (COUT,)
  bias = jnp.arange(COUT, dtype=jnp.float32)
  out = model.apply({'params': {'kernel': data['kernel'], 'bias': bias}}, data['x'])
  np.testing.assert_allclose(out, data['expected'] + np.asarray(bias), rtol=1e-5, atol=1e-5)


def test_module_without_bias(data):
  model = UpConv2x(COUT, use_bias=False)
  params = model.init(jax.random.key(0), data['x'])['params']
  assert set(params) == {'kernel'}


def test_unknown_method_raises(data):
  with pytest.raises(ValueError, match='unknown method'):
    upconv2x(data['x'], data['kernel'], 'nearest')


def test_flops_count_the_definition(data):
  assert upconv2x_flops(BATCH, HEIGHT, WIDTH, CIN, COUT) == 2 * data['macs']


@pytest.mark.parametrize('batch,chunks', [(8, 2), (8, 4), (6, 4), (3, 1)])
def test_sliced_matches_the_whole_batch(batch, chunks):
  """Slices are interleaved (rows j, j + chunks, ...) and put back in place; a batch that
  `chunks` does not divide (6 by 4) is computed whole."""
  x = jax.random.normal(jax.random.key(0), (batch, HEIGHT, WIDTH, CIN))
  kernel = jax.random.normal(jax.random.key(1), (4, 4, CIN, COUT))
  calls = []

  def conv(x, kernel):
    calls.append(x.shape[0])
    return upconv2x(x, kernel)

  cotangent = jax.random.normal(jax.random.key(2), (batch, 2 * HEIGHT, 2 * WIDTH, COUT))
  loss = lambda f: lambda x, k: jnp.sum(f(x, k) * cotangent)
  whole = jax.value_and_grad(loss(upconv2x), argnums=(0, 1))(x, kernel)
  with hardware.conv_batch_slices(chunks):
    split = jax.value_and_grad(loss(hardware.sliced(conv)), argnums=(0, 1))(x, kernel)
    sliced = hardware.sliced(upconv2x)(x, kernel)
  assert calls == ([batch // chunks] * chunks if batch % chunks == 0 else [batch])
  np.testing.assert_array_equal(sliced, upconv2x(x, kernel))
  for got, want in zip(jax.tree.leaves(split), jax.tree.leaves(whole)):
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize('name', ['dcgan', 'mlp', 'resnet', 'r3gan'])
def test_conv_batch_slices_leave_every_model_unchanged(name):
  """The hardware layer's slicing changes no model's outputs or gradients (beyond float
  summation order), and no model takes a slicing field."""
  from gan_jax import models  # pylint: disable=g-import-not-at-top

  key = jax.random.key(0)
  z, y = jax.random.normal(key, (8, 100)), jnp.arange(8) % 10
  images = jax.random.normal(key, (8, 28, 28, 1))
  outputs = []
  g = models.generator(name, image_shape=(28, 28, 1), width=4, num_classes=10)
  d = models.discriminator(name, width=4, num_classes=10)
  g_vars, d_vars = g.init(key, z, y, train=False), d.init(key, images, y, train=False)
  d_loss = lambda p: jnp.sum(d.apply({**d_vars, 'params': p}, images, y, train=False) ** 2)
  for chunks in (1, 4):
    with hardware.conv_batch_slices(chunks):
      outputs.append(
        (
          g.apply(g_vars, z, y, train=False),
          d.apply(d_vars, images, y, train=False),
          jax.grad(d_loss)(d_vars['params']),
        )
      )
  (g1, d1, grads1), (g4, d4, grads4) = outputs
  np.testing.assert_allclose(g4, g1, rtol=1e-6, atol=1e-6)
  np.testing.assert_allclose(d4, d1, rtol=1e-5, atol=1e-5)
  for got, want in zip(jax.tree.leaves(grads4), jax.tree.leaves(grads1)):
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
