"""A new kind of condition is a plug-in: this file registers a toy kind, "ink" (how much of
the image is stroke, standardised), touching no library module, trains a smoke run with it
beside the label and samples from it. Also: the plug-in interface's own contract."""

import dataclasses
import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gan_jax import conditioning
from gan_jax import gan_builder
from gan_jax import main
from gan_jax.errors import UserError
from tests.conftest import load_config


@dataclasses.dataclass(frozen=True)
class Ink(conditioning.Kind):
  """One column: the image's mean brightness, standardised over the training set. D judges
  it by projection like any vector column; its term is ProGAN's drift penalty on real logits."""

  name = 'ink'
  parts = ('ink',)

  @classmethod
  def rows(cls, config, images, labels):
    del config, labels
    ink = images.reshape(len(images), -1).astype(np.float64).mean(axis=1)
    return ((ink - ink.mean()) / ink.std())[:, None].astype(np.float32)

  def d_terms(self, view):
    return {'d_ink_drift': (1e-3, jnp.mean(jnp.square(view.logits['real'])))}


@pytest.fixture
def ink():
  conditioning.register(Ink)
  yield Ink
  del conditioning.REGISTRY[Ink.name]


def _config():
  config = load_config('mnist_cgan')
  config.model.condition = ('label', 'ink')
  return config


def test_an_unregistered_kind_is_a_one_line_error():
  with pytest.raises(UserError, match="unknown part 'ink'"):
    gan_builder.build(_config(), (28, 28, 1), 10)


def test_a_part_belongs_to_one_kind(ink):
  @dataclasses.dataclass(frozen=True)
  class Other(conditioning.Kind):
    name = 'other'
    parts = ('ink',)

  with pytest.raises(ValueError, match="already belongs to kind 'ink'"):
    conditioning.register(Other)


def test_the_kind_reaches_both_networks(ink):
  gan = gan_builder.build(_config(), (28, 28, 1), 10, sizes={'ink': 1})
  assert [k.name for k in gan.condition.kinds] == ['label', 'ink']
  assert gan.condition.columns == 1 and not gan.condition.drawable
  state = gan.init(jax.random.key(0))
  assert 'vector_embed' in state.d_params  # D projects the column.
  z = jnp.zeros((2, gan.latent_dim))
  cond = {'label': jnp.array([4, 4]), 'ink': jnp.array([[-2.0], [2.0]])}
  images, _ = gan.apply_generator(state.g_params, state.g_stats, z, cond, train=False)
  assert float(jnp.abs(images[0] - images[1]).max()) > 0


def test_a_smoke_run_trains_and_samples_with_the_kind(ink, tmp_path):
  workdir = str(tmp_path / 'run')
  config = _config()
  main.run(config, workdir)
  with open(os.path.join(workdir, 'metrics.jsonl')) as f:
    rows = [json.loads(line) for line in f]
  logged = [r for r in rows if 'd_ink_drift' in r]
  assert logged and all(np.isfinite(r['d_ink_drift']) for r in logged)
  out_dir = main.run(config, workdir, 'sample', num_samples=10)
  with np.load(os.path.join(out_dir, 'samples.npz')) as samples:
    assert samples['images'].shape == (10, 28, 28, 1)
    assert list(samples['labels']) == list(range(10))
