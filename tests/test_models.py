"""Every registered model: output shapes and value ranges, conditional or not."""

import jax
import jax.numpy as jnp
import pytest

from gan_jax import models
from gan_jax.errors import UserError


@pytest.mark.parametrize('name', sorted(models.GENERATORS))
@pytest.mark.parametrize('image_shape', [(28, 28, 1), (32, 32, 3)])
@pytest.mark.parametrize('num_classes', [0, 10])
def test_generator_and_discriminator_shapes(name, image_shape, num_classes):
  if name == 'mlp' and image_shape[0] == 32 and num_classes:
    pytest.skip('one 32 px case of the article model is enough')
  g = models.generator(name, image_shape=image_shape, width=8, num_classes=num_classes)
  d = models.discriminator(name, width=8, num_classes=num_classes)
  z = jax.random.normal(jax.random.key(0), (3, 100))
  labels = jnp.array([0, 1, 2]) if num_classes else None
  g_vars = g.init(jax.random.key(1), z, labels, train=False)
  images, _ = g.apply(g_vars, z, labels, train=True, mutable=['batch_stats'])
  assert images.shape == (3, *image_shape)
  if name != 'r3gan':  # R3GAN's generator ends in a 1x1 conv, no tanh, as in the paper.
    assert jnp.all(jnp.abs(images) <= 1.0)
  d_vars = d.init(jax.random.key(2), images, labels, train=False)
  logits = d.apply(d_vars, images, labels, train=True)
  assert logits.shape == (3,)
  assert jnp.all(jnp.isfinite(logits))


def test_conditional_generator_depends_on_label():
  g = models.generator('dcgan', image_shape=(28, 28, 1), width=8, num_classes=10)
  z = jnp.ones((2, 100))
  labels = jnp.array([3, 7])
  variables = g.init(jax.random.key(0), z, labels, train=False)
  images = g.apply(variables, z, labels, train=False)
  assert not jnp.allclose(images[0], images[1])


def test_unknown_model_name_is_a_user_error():
  with pytest.raises(UserError, match="unknown generator 'nope'"):
    models.generator('nope', image_shape=(28, 28, 1))
