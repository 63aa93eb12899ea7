"""--mode=sample --seeds: image k a function of seed k alone, bit for bit whatever else is asked,
on the committed label-only checkpoint (configs/mnist_cgan.py:smoke, latent 8, widths 4)."""

import os
import shutil
import types

import numpy as np
import pytest

from gan_jax import conditions
from gan_jax import data
from gan_jax import gan_experiment
from gan_jax import main
from gan_jax import sample
from gan_jax.errors import UserError
from tests.conftest import generated
from tests.conftest import load_config
from tests.test_conditions import LABEL_ONLY_RUN
from tests.test_launch import launch


@pytest.mark.parametrize(
  'text, want',
  [
    ('5', [5]),
    ('0-3', [0, 1, 2, 3]),
    ('0-2,42, 7', [0, 1, 2, 42, 7]),
    ('4294967295', [2**32 - 1]),
  ],
)
def test_seeds_parse_ranges_and_lists(text, want):
  assert sample.parse_seeds(text) == want


@pytest.mark.parametrize(
  'text, message',
  [
    ('-1', 'non-negative'),
    ('3--1', 'not a seed'),
    ('a', "'a' is not a seed"),
    ('1.5', 'not a seed'),
    ('3-', 'not a seed'),
    ('1,,2', "'' is not a seed"),
    ('9-2', 'runs backwards'),
    ('1,0-3', 'seed 1 is given twice'),
    ('4294967296', 'over the largest seed'),
    ('0-999999999', 'more than 1,000,000 seeds'),
  ],
)
def test_bad_seeds_are_one_line_errors(text, message):
  with pytest.raises(UserError, match=message) as e:
    sample.parse_seeds(text)
  assert '\n' not in str(e.value)


def test_seeds_name_collapses_runs_and_hashes_long_lists():
  assert sample.seeds_name([0, 1, 2, 3, 9, 42, 43]) == '0-3,9,42-43'
  assert sample.seeds_name([7]) == '7'
  long = sample.seeds_name(list(range(0, 60, 2)))
  assert len(long) == 8 and long == sample.seeds_name(list(range(0, 60, 2)))


@pytest.fixture(scope='module')
def run(tmp_path_factory):
  workdir = tmp_path_factory.mktemp('seeds') / 'run'
  shutil.copytree(os.path.join(LABEL_ONLY_RUN, 'checkpoints'), workdir / 'checkpoints')
  config = load_config('mnist_cgan')
  config.model.latent_dim, config.model.g_width, config.model.d_width = 8, 4, 4
  return config, str(workdir)


def _samples(out_dir):
  with np.load(os.path.join(out_dir, 'samples.npz'), allow_pickle=False) as f:
    return {k: f[k] for k in f.files}


def test_one_seed_reproduces_its_image_of_a_range_bit_for_bit(run):
  config, workdir = run
  many = _samples(main.run(config, workdir, 'sample', seeds='0-99'))  # Two batches of 64.
  assert many['images'].shape == (100, 28, 28, 1)
  np.testing.assert_array_equal(many['seeds'], np.arange(100))
  np.testing.assert_array_equal(many['labels'], np.arange(100) % 10)  # The class from the seed.
  for seeds, at in (('5', [5]), ('70', [70]), ('99,3,64', [99, 3, 64])):
    out_dir = main.run(config, workdir, 'sample', seeds=seeds)
    one = _samples(out_dir)
    np.testing.assert_array_equal(one['images'], many['images'][at])
    np.testing.assert_array_equal(one['labels'], many['labels'][at])
    assert sorted(
      f for f in os.listdir(os.path.join(out_dir, 'images')) if f.startswith('seed')
    ) == sorted(f'seed{s:04d}.png' for s in at)
  assert os.path.basename(out_dir).endswith('_seeds_99,3,64')
  # Different seeds draw different digits.
  assert len({many['images'][i].tobytes() for i in range(100)}) == 100


def test_seeds_with_a_request_fix_the_class_and_keep_the_noise(run):
  config, workdir = run
  both = _samples(main.run(config, workdir, 'sample', seeds='3-4', request=('digit=7', '', '')))
  assert list(both['labels']) == [7, 7] and list(both['seeds']) == [3, 4]
  again = _samples(main.run(config, workdir, 'sample', seeds='4', request=('digit=7', '', '')))
  np.testing.assert_array_equal(again['images'], both['images'][1:])
  # Seed 7's own class is 7: the request changes nothing then.
  own = _samples(main.run(config, workdir, 'sample', seeds='7'))
  asked = _samples(main.run(config, workdir, 'sample', seeds='7', request=('digit=7', '', '')))
  np.testing.assert_array_equal(own['images'], asked['images'])


def test_truncated_seeds_are_reproducible_too(run):
  config, workdir = run
  many = _samples(main.run(config, workdir, 'sample', seeds='10-19', truncation=0.5))
  one = _samples(main.run(config, workdir, 'sample', seeds='12', truncation=0.5))
  np.testing.assert_array_equal(one['images'], many['images'][2:3])


def test_a_seed_draws_its_training_row_alone():
  """Models with attributes: a sample's row depends on its own seed, not on the others."""
  source = data.embedded_mnist('train')
  table = conditions.build_table(
    ('label', 'thickness', 'slant'), source.images[::10], source.labels[::10], 10
  )
  requests = [{'label': 3}, {'slant': 0.2}]
  both = table.requests_condition(requests, 0, 0, seeds=[8, 9])
  one = table.requests_condition(requests, 0, 0, seeds=[9])
  assert both['attributes'].shape == (4, 2)
  np.testing.assert_array_equal(one['attributes'], both['attributes'][[1, 3]])
  experiment = types.SimpleNamespace(conditions=table)
  rows = gan_experiment.Experiment.conditions_for(experiment, 3, [1, 2, 1], 0, seeds=[5, 6, 7])
  alone = gan_experiment.Experiment.conditions_for(experiment, 1, [1], 1, seeds=[7])
  np.testing.assert_array_equal(alone['attributes'], rows['attributes'][2:])
  assert list(rows['label']) == [1, 2, 1]


def test_bad_seeds_write_nothing_and_are_refused_outside_sampling(run, tmp_path):
  config, workdir = run
  before = generated(workdir)
  with pytest.raises(UserError, match='not a seed'):
    main.run(config, workdir, 'sample', seeds='1-x')
  with pytest.raises(UserError, match='--seeds: for --mode=sample only'):
    main.run(config, str(tmp_path), 'eval', seeds='1')
  assert generated(workdir) == before and not os.listdir(tmp_path)


def test_launch_py_seeds_conflicts_and_bad_seeds_are_one_line_exit_2(run):
  _, workdir = run
  before = generated(workdir)
  common = [
    '--config=configs/mnist_cgan.py:smoke',
    '--config.model.latent_dim=8',
    '--config.model.g_width=4',
    '--config.model.d_width=4',
    f'--workdir={workdir}',
    '--mode=sample',
  ]
  result = launch(*common, '--seeds=0-3', '--num_samples=4')
  assert result.returncode == 2
  assert result.stderr.strip() == 'error: give --seeds or --num_samples, not both'
  result = launch(*common, '--seeds=-2')
  assert result.returncode == 2
  assert result.stderr.strip() == (
    "error: --seeds: '-2' is not a seed or a range like '0-63' (seeds are non-negative)"
  )
  assert generated(workdir) == before
  result = launch(*common, '--seeds=2-3')
  assert result.returncode == 0, result.stderr
  assert 'wrote 2 samples' in result.stdout
