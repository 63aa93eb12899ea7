"""Mixed precision (config.model.dtype = 'bfloat16'): every model computes in bfloat16 while
parameters, optimizer state, EMA, batch-norm statistics, losses and penalties stay float32, and
a bfloat16 step agrees with the float32 one to bfloat16's precision."""

import functools

import jax
import jax.extend
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from gan_jax import classifier
from gan_jax import data
from gan_jax import gan as gan_lib
from gan_jax import gan_builder
from gan_jax import regularizers
from gan_jax.errors import UserError
from gan_jax.models import layers
from tests.conftest import load_config

SOURCE = data.load('embedded:mnist', 'train')
BATCH = {'image': SOURCE.images[:8], 'label': SOURCE.labels[:8]}
# Every model, with the pieces of state that could leak a dtype: batch norm (dcgan, mlp, resnet),
# spectral-norm vectors (resnet), conditioning, R1 + R2 and lazy penalties (r3gan).
MODELS = {
  'dcgan': ('mnist_dcgan', {}),
  'mlp': ('mnist_mlp_gan', {}),
  'resnet': ('mnist_sngan', {}),
  'r3gan_cond': ('mnist_r3gan', {'model.conditional': True}),
}


def build(name, dtype, overrides=None):
  config = load_config(name)
  for key, value in {**(overrides or {}), 'model.dtype': dtype}.items():
    section, field = key.split('.')
    config[section][field] = value
  return gan_builder.build(config, SOURCE.image_shape, SOURCE.num_classes)


def dtypes_of(tree):
  return {str(jnp.asarray(x).dtype) for x in jax.tree.leaves(tree)}


def conv_and_dot_dtypes(fn, *args):
  """The operand dtypes of every convolution and matmul in `fn`'s jaxpr (nested included)."""
  found = set()

  def walk(jaxpr):
    for eqn in jaxpr.eqns:
      if eqn.primitive.name in ('conv_general_dilated', 'dot_general'):
        found.add(str(eqn.invars[0].aval.dtype))
      for sub in jax.extend.core.jaxprs_in_params(eqn.params):
        walk(sub)

  walk(jax.make_jaxpr(fn)(*args).jaxpr)
  return found


@pytest.mark.parametrize('model', sorted(MODELS))
def test_bfloat16_computes_in_bfloat16_and_keeps_float32_state(model):
  name, overrides = MODELS[model]
  gan = build(name, 'bfloat16', overrides)
  state = gan.init(jax.random.key(0))
  step = jax.jit(functools.partial(gan_lib.train_step, gan, penalize=True))
  new, metrics = step(state, BATCH, jax.random.key(1))
  assert dtypes_of(new) <= {'float32', 'int32'}, dtypes_of(new)  # Params, Adam, EMA, stats.
  assert all(jnp.asarray(v).dtype == jnp.float32 for v in metrics.values())
  assert all(np.isfinite(float(v)) for v in metrics.values())
  z, labels = gan.sample_noise(jax.random.key(2), 4)
  images, _ = gan.apply_generator(new.g_params, new.g_stats, z, labels, train=False)
  assert images.dtype == jnp.float32
  # The heavy ops run in bfloat16 (not promoted back to float32 by a float32 statistic).
  g_ops = conv_and_dot_dtypes(
    lambda p: gan.apply_generator(p, new.g_stats, z, labels, train=True)[0], new.g_params
  )
  assert 'bfloat16' in g_ops, g_ops
  d_ops = conv_and_dot_dtypes(
    lambda p: gan.discriminate(p, new.d_stats, images, labels, train=False)[0], new.d_params
  )
  assert 'bfloat16' in d_ops, d_ops
  if model != 'resnet':  # SN's power iteration (float32 vectors) is the only float32 matmul.
    assert 'float32' not in g_ops | d_ops, (g_ops, d_ops)


@pytest.mark.parametrize('model', ['dcgan', 'r3gan_cond'])
def test_bfloat16_step_matches_float32(model):
  """Same parameters, same batch: the D logits, losses and penalties of a bfloat16 step agree
  with float32's to bfloat16's ~3 significant digits, accumulated over the network."""
  name, overrides = MODELS[model]
  f32, bf16 = build(name, 'float32', overrides), build(name, 'bfloat16', overrides)
  state = f32.init(jax.random.key(0))
  images = data.to_float(BATCH['image'])
  labels = BATCH['label'] if f32.num_classes else None
  logits = [
    g.discriminate(state.d_params, state.d_stats, images, labels, False)[0] for g in (f32, bf16)
  ]
  scale = float(jnp.max(jnp.abs(logits[0]))) + 1e-3
  np.testing.assert_allclose(logits[1], logits[0], atol=0.05 * scale)
  metrics = [
    jax.jit(functools.partial(gan_lib.train_step, g, penalize=True))(
      state, BATCH, jax.random.key(1)
    )[1]
    for g in (f32, bf16)
  ]
  for key in ('d_loss', 'g_loss') + (('r1', 'r2') if model == 'r3gan_cond' else ()):
    np.testing.assert_allclose(metrics[1][key], metrics[0][key], rtol=0.1, atol=0.02)


def test_r1_penalty_of_a_bfloat16_discriminator_is_float32_and_close():
  f32, bf16 = build('mnist_dcgan', 'float32'), build('mnist_dcgan', 'bfloat16')
  state = f32.init(jax.random.key(0))
  real = data.to_float(BATCH['image'])
  values = []
  for g in (f32, bf16):
    d_of = lambda x, g=g: g.discriminate(state.d_params, state.d_stats, x, None, False)[0]
    values.append(regularizers.r1_penalty(d_of, real))
  assert values[1].dtype == jnp.float32
  np.testing.assert_allclose(values[1], values[0], rtol=0.05)


def test_classifier_trains_in_bfloat16_with_float32_parameters():
  config = load_config('mnist_classifier')
  model = classifier.build_model(config, SOURCE.num_classes)
  params = model.init(jax.random.key(0), jnp.zeros((1, *SOURCE.image_shape)), train=False)
  tx = optax.adam(1e-3)
  state = classifier.ClassifierState(
    step=jnp.zeros((), jnp.int32), params=params['params'], opt_state=tx.init(params['params'])
  )
  step = jax.jit(functools.partial(classifier.train_step, model, tx, compute_dtype=jnp.bfloat16))
  new, metrics = step(state, BATCH, jax.random.key(0))
  assert dtypes_of(new) <= {'float32', 'int32'}
  assert metrics['loss'].dtype == jnp.float32 and np.isfinite(float(metrics['loss']))


def test_unknown_dtype_is_a_user_error():
  with pytest.raises(UserError, match="config.model.dtype 'float16' is not one of"):
    build('mnist_dcgan', 'float16')
  assert layers.cast_floating({'w': jnp.ones(2), 'n': jnp.arange(2)}, jnp.bfloat16)['n'].dtype == (
    jnp.int32
  )
