"""PacGAN's packing (config.model.pack): D judges packs of consecutive examples."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gan_jax import data
from gan_jax import gan as gan_lib
from gan_jax import gan_builder
from gan_jax.errors import UserError
from tests.conftest import load_config


def build(name, **model):
  config = load_config(name)
  config.model.update(model)
  source = data.load(config.data.source, 'train', config.data)
  return config, source, gan_builder.build(config, source.image_shape, source.num_classes)


def test_pack_images_lays_consecutive_examples_side_by_side():
  images = jnp.arange(8 * 2 * 2 * 3, dtype=jnp.float32).reshape(8, 2, 2, 3)
  _, _, gan = build('stacked_mnist_dcgan', pack=4)
  packed = gan.pack_images(images)
  assert packed.shape == (2, 2, 2, 12)
  for p in range(2):
    for k in range(4):
      np.testing.assert_array_equal(packed[p, ..., 3 * k : 3 * k + 3], images[4 * p + k])
  _, _, plain = build('stacked_mnist_dcgan')
  assert plain.pack_images(images) is images
  with pytest.raises(ValueError, match='packs of 4'):
    gan.pack_images(images[:5])


@pytest.mark.parametrize('name', ['stacked_mnist_dcgan', 'stacked_mnist_r3gan'])
def test_packed_step_trains_d_on_packs(name):
  config, source, gan = build(name, pack=2)
  state = gan.init(jax.random.key(0))
  # D's first layer reads two images' channels; no layer reads one image's.
  inputs = {
    x.shape[-2]
    for path, x in jax.tree_util.tree_leaves_with_path(state.d_params)
    if 'kernel' in jax.tree_util.keystr(path)
  }
  channels = source.image_shape[-1]
  assert 2 * channels in inputs and channels not in inputs, inputs
  batch = {'image': np.stack([source[i]['image'] for i in range(8)]), 'label': np.zeros(8)}
  logits = gan.discriminate(
    state.d_params, state.d_stats, gan.pack_images(data.to_float(batch['image'])), None, False
  )[0]
  assert logits.shape == (4,)
  step = jax.jit(functools.partial(gan_lib.train_step, gan, penalize=True))
  new, metrics = step(state, batch, jax.random.key(1))
  assert all(np.isfinite(float(v)) for v in metrics.values()), metrics
  for term in ('r1', 'r2'):
    if term in metrics:
      assert float(metrics[term]) > 0, term
  changed = lambda a, b: any(bool(jnp.any(x != y)) for x, y in zip(*map(jax.tree.leaves, (a, b))))
  assert changed(new.d_params, state.d_params) and changed(new.g_params, state.g_params)


@pytest.mark.parametrize(
  'name, fields, message',
  [
    ('stacked_mnist_dcgan', dict(pack=0), 'integer >= 1'),
    ('stacked_mnist_dcgan', dict(pack=5), 'does not split into packs of 5'),
    ('mnist_r3gan', dict(pack=2), 'unconditional models only'),
  ],
)
def test_bad_pack_is_a_clear_error(name, fields, message):
  with pytest.raises(UserError, match=message):
    build(name, **fields)
