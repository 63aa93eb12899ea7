"""Checkpoints written before condition kinds became plug-ins restore and sample the images
they sampled then: smoke-sized mnist_attributes, mnist_instance (features from an .npy) and
mnist_text runs (latent 8, or 16 for text; widths 4), each with the samples the old code drew
(tests/data/*_run/expected_samples.npz), made on an Intel Xeon (family 6 model 207). Their
parameter paths did not move, so no conversion is needed; another CPU model may differ by
one grey level."""

import os
import shutil

import ml_collections
import numpy as np
import pytest

from gan_jax import main
from tests.conftest import ROOT
from tests.conftest import load_config

DATA = os.path.join(ROOT, 'tests', 'data')
RUNS = {'mnist_attributes': 8, 'mnist_instance': 8, 'mnist_text': 16}


@pytest.mark.parametrize('name', sorted(RUNS))
def test_a_checkpoint_from_before_the_plugins_samples_the_same_images(name, tmp_path):
  run = os.path.join(DATA, f'{name}_run')
  config = load_config(name)
  config.model.latent_dim, config.model.g_width, config.model.d_width = RUNS[name], 4, 4
  with config.unlocked():
    config.evals = ml_collections.ConfigDict()
  if name == 'mnist_instance':
    config.model.features = os.path.join(DATA, 'instance_features.npy')
  workdir = tmp_path / 'run'
  shutil.copytree(run, workdir, ignore=shutil.ignore_patterns('expected_samples.npz'))
  out_dir = main.run(config, str(workdir), 'sample', num_samples=20)
  with np.load(os.path.join(run, 'expected_samples.npz')) as want:
    with np.load(os.path.join(out_dir, 'samples.npz')) as got:
      assert sorted(got.files) == sorted(want.files)
      for key in want.files:
        if key != 'images':
          np.testing.assert_array_equal(got[key], want[key], err_msg=key)
      diff = np.abs(got['images'].astype(int) - want['images'].astype(int))
      assert diff.max() <= 1, diff.max()
