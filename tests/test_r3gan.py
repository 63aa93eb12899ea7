"""R3GAN's ResNet: shapes, the fix-up initialisation, resampling, grouped convs, conditioning."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import mnist_r3gan
from gan_jax import gan_builder
from gan_jax.errors import UserError
from gan_jax.models import r3gan

WIDTH = 8  # Tiny: 16 expanded channels; these tests check wiring and initialisation.
LATENT = 16


@pytest.mark.parametrize('image_shape', [(28, 28, 1), (32, 32, 3), (64, 64, 3)])
@pytest.mark.parametrize('num_classes', [0, 10])
def test_shapes(image_shape, num_classes):
  """Shapes only, by abstract evaluation (no compilation), at 28, 32 and 64 px."""
  g = r3gan.Generator(image_shape, width=WIDTH, num_classes=num_classes, group_size=4)
  d = r3gan.Discriminator(width=WIDTH, num_classes=num_classes, group_size=4)
  z = jnp.zeros((2, LATENT))
  labels = jnp.array([0, 7]) if num_classes else None
  g_vars = jax.eval_shape(lambda: g.init(jax.random.key(0), z, labels))
  images = jax.eval_shape(lambda v: g.apply(v, z, labels), g_vars)
  assert images.shape == (2, *image_shape)
  d_vars = jax.eval_shape(lambda x: d.init(jax.random.key(1), x, labels), images)
  assert jax.eval_shape(lambda v, x: d.apply(v, x, labels), d_vars, images).shape == (2,)
  # No normalisation layers anywhere: no batch statistics, parameters only.
  assert set(g_vars) == {'params'} and set(d_vars) == {'params'}


def test_every_residual_branch_starts_as_zero():
  """The block's last conv starts at zero, so each block is exactly the identity at init, and
  the other two convs have R3GAN's scaled He variance."""
  blocks = 6
  block = r3gan.ResidualBlock(expansion=2, group_size=4, num_blocks=blocks)
  x = jax.random.normal(jax.random.key(0), (4, 7, 7, 32))
  variables = block.init(jax.random.key(1), x)
  np.testing.assert_array_equal(block.apply(variables, x), x)
  params = variables['params']
  assert not np.any(params['project']['kernel'])
  gain = r3gan.ACTIVATION_GAIN * blocks**-0.25
  for name, fan_in in (('expand', 32), ('grouped', 9 * 4)):  # 3x3 over 4 channels per group.
    kernel = np.asarray(params[name]['kernel'])
    assert kernel.std() == pytest.approx(gain / math.sqrt(fan_in), rel=0.1), name
  assert params['grouped']['kernel'].shape == (3, 3, 4, 64)  # 64 expanded channels, 16 groups.
  # Once the last conv is non-zero, the branch does contribute.
  params = jax.tree.map(lambda a: a + 0.01, params)
  assert not np.allclose(block.apply({'params': params}, x), x)


def test_initial_generator_is_the_basis_through_identity_blocks():
  """With identity blocks, G at init is 1x1(resample(basis * linear(z))): check the output
  variance is of order one (the fix-up init keeps signals from exploding with depth)."""
  g = r3gan.Generator((28, 28, 1), width=16, blocks_per_stage=3)
  z = jax.random.normal(jax.random.key(0), (64, LATENT))
  variables = g.init(jax.random.key(1), z)
  out = g.apply(variables, z)
  assert 0.05 < float(jnp.std(out)) < 5.0
  d = r3gan.Discriminator(width=16, blocks_per_stage=3)
  logits = d.apply(d.init(jax.random.key(2), out), out)
  assert np.all(np.isfinite(logits)) and 0.01 < float(jnp.std(logits)) < 10.0


def test_resampling_is_the_1331_filter():
  """Bilinear x2 / 2 resampling equals R3GAN's [1, 2, 1] interpolative filter ([1, 3, 3, 1]
  / 8) away from the border."""
  x = jax.random.normal(jax.random.key(0), (1, 8, 8, 1))
  down = r3gan.resample(x, 0.5)
  k = np.array([1, 3, 3, 1]) / 8
  want = sum(k[a] * k[b] * x[0, 2 + a - 1, 2 + b - 1, 0] for a in range(4) for b in range(4))
  np.testing.assert_allclose(down[0, 1, 1, 0], want, rtol=1e-5)
  up = r3gan.resample(x, 2.0)
  assert up.shape == (1, 16, 16, 1)
  # Output pixel 2m+1 (interior) is 3/4 of input m and 1/4 of input m+1 in each axis.
  m = 3
  want_up = sum(
    wa * wb * x[0, m + da, m + db, 0]
    for da, wa in ((0, 0.75), (1, 0.25))
    for db, wb in ((0, 0.75), (1, 0.25))
  )
  np.testing.assert_allclose(up[0, 2 * m + 1, 2 * m + 1, 0], want_up, rtol=1e-5)


def test_conditional_discriminator_depends_on_the_label():
  d = r3gan.Discriminator(width=WIDTH, num_classes=10, group_size=4)
  x = jax.random.normal(jax.random.key(0), (2, 28, 28, 1))
  variables = d.init(jax.random.key(1), x, jnp.array([0, 0]))
  a = d.apply(variables, x, jnp.array([0, 0]))
  b = d.apply(variables, x, jnp.array([3, 3]))
  assert not np.allclose(a, b)
  g = r3gan.Generator((28, 28, 1), width=WIDTH, num_classes=10, group_size=4)
  z = jnp.zeros((2, LATENT))
  gv = g.init(jax.random.key(2), z, jnp.array([0, 1]))
  gv = jax.tree.map(lambda p: p + 0.05, gv)  # Leave the zero-initialised branch ends.
  images = g.apply(gv, z, jnp.array([0, 1]))
  assert not np.allclose(images[0], images[1])  # Same noise, different class.


def test_bad_options_are_user_errors_before_any_module_is_built():
  config = mnist_r3gan.get_config('smoke')
  config.model.r3gan.group_size = 5
  with pytest.raises(UserError, match='group_size=5 must divide'):
    gan_builder.build(config, (28, 28, 1), 10)
  config = mnist_r3gan.get_config('smoke')
  config.model.r3gan.stage_widths = (8, 8)
  with pytest.raises(UserError, match='stage_widths has 2 entries'):
    gan_builder.build(config, (28, 28, 1), 10)


def test_stage_widths_change_with_resolution():
  g = r3gan.Generator((28, 28, 1), stage_widths=(16, 8, 4), group_size=4)
  variables = g.init(jax.random.key(0), jnp.zeros((1, LATENT)))['params']
  assert variables['basis'].shape == (7, 7, 16)
  assert variables['stage1_width']['kernel'].shape == (1, 1, 16, 8)
  assert variables['stage2_block1']['expand']['kernel'].shape == (1, 1, 4, 8)
  d = r3gan.Discriminator(stage_widths=(16, 8, 4), group_size=4)
  dv = d.init(jax.random.key(0), jnp.zeros((1, 28, 28, 1)))['params']
  assert dv['from_image']['kernel'].shape == (1, 1, 1, 4)  # Largest resolution first.
  assert dv['basis']['kernel'].shape == (7, 7, 1, 16)  # Depthwise over the last 16 channels.


def test_config_sizes_the_discriminator_apart():
  """config.model.r3gan.d_stage_widths reaches D only; empty leaves D as G's stage_widths."""
  config = mnist_r3gan.get_config('smoke')  # G and D stages (16, 8, 8).
  config.model.r3gan.d_stage_widths = (16, 8, 12)
  built = gan_builder.build(config, (28, 28, 1), 10)
  assert tuple(built.generator.stage_widths) == (16, 8, 8)
  assert tuple(built.discriminator.stage_widths) == (16, 8, 12)
  config.model.r3gan.d_stage_widths = ()
  assert tuple(gan_builder.build(config, (28, 28, 1), 10).discriminator.stage_widths) == (16, 8, 8)


@pytest.mark.parametrize(
  'shape, factor',
  [
    ((2, 7, 7, 3), 2.0),
    ((2, 14, 14, 3), 2.0),
    ((2, 4, 4, 2), 2.0),
    ((2, 28, 28, 3), 0.5),
    ((2, 14, 14, 3), 0.5),
    ((1, 8, 8, 2), 0.5),
  ],
)
def test_resampling_equals_antialiased_bilinear_resize(shape, factor):
  """The slice form equals jax.image.resize's linear antialiased kernel everywhere, the border
  rows and columns (renormalised weights) and odd output sizes (14 -> 7) included."""
  x = jax.random.normal(jax.random.key(0), shape)
  out_shape = (shape[0], int(shape[1] * factor), int(shape[2] * factor), shape[3])
  want = jax.image.resize(x, out_shape, 'linear', antialias=True)
  np.testing.assert_allclose(r3gan.resample(x, factor), want, atol=1e-6)
  # bfloat16 stays bfloat16 (a float32 border weight would promote D's later convs).
  assert r3gan.resample(x.astype(jnp.bfloat16), factor).dtype == jnp.bfloat16


def test_resampling_refuses_other_factors_and_odd_maps():
  with pytest.raises(ValueError, match='factors 2 and 0.5'):
    r3gan.resample(jnp.zeros((1, 4, 4, 1)), 3.0)
  with pytest.raises(ValueError, match='even map sizes'):
    r3gan.resample(jnp.zeros((1, 7, 7, 1)), 0.5)


@pytest.mark.parametrize('num_classes', [0, 10])
def test_discriminator_head_hidden_layer(num_classes):
  """config.model.r3gan.d_head_width reaches D only: a dense layer of that width (bias + leaky
  ReLU) between the basis features and the output, which then reads the hidden units; the
  logit stops being linear in the basis features; a negative width is refused."""
  config = mnist_r3gan.get_config('smoke')  # D's last stage: 16 channels.
  config.model.r3gan.d_head_width = 24
  config.model.conditional = bool(num_classes)
  built = gan_builder.build(config, (28, 28, 1), num_classes)
  assert built.discriminator.head_width == 24
  assert not hasattr(built.generator, 'head_width')
  x = jax.random.normal(jax.random.key(0), (3, 28, 28, 1))
  labels = jnp.array([0, 3, 9]) if num_classes else None
  params = built.discriminator.init(jax.random.key(1), x, labels)['params']
  assert params['hidden']['kernel'].shape == (16, 24)
  assert params['hidden_act']['bias'].shape == (24,)
  out_layer = 'out' if num_classes else 'dense'
  assert params[out_layer]['kernel'].shape[0] == 24
  assert built.discriminator.apply({'params': params}, x, labels).shape == (3,)
  # Nonlinear in the images: D(a + b) - D(b) differs from D(a) - D(0) (a linear head on the
  # basis would leave that to the blocks alone; here the blocks start as the identity).
  d = lambda v: built.discriminator.apply({'params': params}, v, labels)
  zero = jnp.zeros_like(x)
  assert not np.allclose(d(x + x[::-1]) - d(x[::-1]), d(x) - d(zero), atol=1e-4)
  config.model.r3gan.d_head_width = 0
  assert gan_builder.build(config, (28, 28, 1), num_classes).discriminator.head_width == 0
  config.model.r3gan.d_head_width = -1
  with pytest.raises(UserError, match='d_head_width'):  # Refused before any module is built.
    gan_builder.build(config, (28, 28, 1), num_classes)
