"""--mode=project (gan_jax/projection.py) and editing projected images (gan_jax/edits.py): the
generator's own images are recovered, projection is deterministic per seed, edits change what
they name and keep the rest, and every bad input is one line that writes nothing."""

import dataclasses
import json
import os
import typing

import jax
import jax.numpy as jnp
import numpy as np
from PIL import Image
import pytest

from gan_jax import data
from gan_jax import main
from gan_jax import projection
from gan_jax.errors import UserError
from tests.conftest import generated
from tests.conftest import load_config
from tests.test_launch import launch


@pytest.fixture(scope='module')
def run(tmp_path_factory):
  """A smoke classifier; a smoke mnist_attributes GAN projecting with it; 8 of its samples."""
  classifier = str(tmp_path_factory.mktemp('classifier'))
  main.run(load_config('mnist_classifier'), classifier)
  workdir = str(tmp_path_factory.mktemp('attributes'))
  config = load_config('mnist_attributes')
  config.evals.control.every = -1  # Not judged while training: not what is tested here.
  main.run(config, workdir)
  config.project.update(classifier_workdir=classifier, steps=10, candidates=8, restarts=2)
  config.project.batch_size = 8
  samples = main.run(config, workdir, 'sample', num_samples=8)
  return config, workdir, os.path.join(samples, 'samples.npz')


def projected(out_dir: str) -> dict:
  with np.load(os.path.join(out_dir, projection.FILE)) as f:
    return dict(f)


class State(typing.NamedTuple):
  ema_params: jax.Array
  g_stats: dict


@dataclasses.dataclass(frozen=True)
class LinearGenerator:
  """A generator whose images depend on every direction of z: tanh(z W), 8x8x1."""

  latent_dim: int = 16
  image_shape: tuple = (8, 8, 1)

  def apply_generator(self, params, stats, z, condition, train):
    del stats, condition, train
    return jnp.tanh(z @ params).reshape(-1, *self.image_shape), {}


def test_projection_recovers_the_noise_of_a_generators_own_images():
  gan = LinearGenerator()
  weights = jax.random.normal(jax.random.key(0), (16, 64)) / 4.0
  state = State(ema_params=weights, g_stats={})
  truth = jax.random.normal(jax.random.key(1), (6, 16))
  images = gan.apply_generator(weights, {}, truth, None, False)[0]
  settings = projection.Settings(steps=300, restarts=2, candidates=16, prior_weight=1e-4)
  keys = jax.vmap(lambda i: jax.random.fold_in(jax.random.key(0), i))(jnp.arange(6))
  z, loss = projection.project_batch(gan, None, settings, state, None, keys, None, images)
  np.testing.assert_allclose(z, truth, atol=0.1)
  assert float(jnp.max(loss)) < 1e-4


def test_projection_writes_its_record_and_beats_random_noise(run):
  config, workdir, samples = run
  folder = main.run(config, workdir, 'project', images=samples)
  out = projected(folder)
  with np.load(samples) as f:
    np.testing.assert_array_equal(out['images'], f['images'])
    np.testing.assert_array_equal(out['labels'], f['labels'])  # Given labels are kept.
  assert out['z'].shape == (8, 100) and out['loss'].shape == (8,)
  assert int(out['step']) == 6 and list(out['image_shape']) == [28, 28, 1]
  assert str(out['loss_terms']) == 'pixels, perceptual, prior'
  assert {'thickness', 'slant', 'reconstruction', 'source', 'source_index'} <= set(out)
  assert os.path.isfile(os.path.join(folder, 'grid.png'))
  # The best of two random draws under the same (measured) condition does worse.
  config.project.update(steps=1, candidates=2, restarts=1, learning_rate=1e-9)
  blind = projected(main.run(config, workdir, 'project', images=samples))
  config.project.update(steps=10, candidates=8, restarts=2, learning_rate=0.05)
  assert np.all(out['loss'] < blind['loss'])


def test_projection_is_deterministic_per_seed(run, tmp_path):
  config, workdir, samples = run
  first = main.run(config, workdir, 'project', images=samples)
  again = main.run(config, workdir, 'project', images=samples)  # Found, not redone.
  assert again == first
  moved = first + '.moved'
  os.rename(first, moved)
  try:
    redone = projected(main.run(config, workdir, 'project', images=samples))
    np.testing.assert_array_equal(redone['z'], projected(moved)['z'])
  finally:
    os.replace(first, first + '.redone')
    os.rename(moved, first)
  config.project.seed = 1
  other = projected(main.run(config, workdir, 'project', images=samples))
  config.project.seed = 0
  assert not np.array_equal(other['z'], projected(first)['z'])


def test_edits_change_what_they_name_and_keep_the_rest(run, tmp_path):
  config, workdir, samples = run
  source = main.run(config, workdir, 'project', images=samples)
  edits = tmp_path / 'edits.txt'
  edits.write_text('thickness=+1sd\nslant=-0.25\n# a class swap\ndigit=3\n')
  folder = main.run(
    config,
    workdir,
    'sample',
    request=('',) * 5 + (os.path.join(source, 'projected.npz'), '', str(edits)),
  )
  assert os.path.basename(folder).startswith('step_000006_projected_')
  with np.load(os.path.join(folder, 'samples.npz')) as f:
    out = dict(f)
  before = projected(source)
  assert out['images'].shape == (8 * 4, 28, 28, 1)
  assert list(out['edit'][:4]) == ['none', 'thickness=+1sd', 'slant=-0.25', 'digit=3']
  np.testing.assert_array_equal(out['images'][::4], before['reconstruction'])  # Null edit.
  np.testing.assert_array_equal(out['source_index'], np.repeat(np.arange(8), 4))
  thicker = out['thickness'][1::4] - before['thickness']
  assert np.all(thicker > 0) and np.ptp(thicker) < 1e-4  # The same step of one SD for all.
  np.testing.assert_allclose(out['slant'][2::4], -0.25, rtol=1e-5)
  np.testing.assert_array_equal(out['labels'][3::4], 3)
  np.testing.assert_array_equal(out['thickness'][3::4], before['thickness'])  # Style kept.
  np.testing.assert_array_equal(out['original_labels'][::4], before['labels'])
  grid = np.asarray(Image.open(os.path.join(folder, 'grid.png')))
  # 8 rows of 5 tiles (28 pixels and a 2-pixel border): real, reconstruction, 3 edits.
  assert grid.shape[0] * (5 * 30 + 2) == grid.shape[1] * (8 * 30 + 2)


def _refused(config, workdir, match, mode='sample', **kwargs):
  before = generated(workdir), set(os.listdir(workdir))
  with pytest.raises(UserError, match=match):
    main.run(config, workdir, mode, **kwargs)
  assert (generated(workdir), set(os.listdir(workdir))) == before


def test_bad_edits_and_projections_are_refused_and_write_nothing(run, tmp_path):
  config, workdir, samples = run
  source = os.path.join(main.run(config, workdir, 'project', images=samples), 'projected.npz')
  edit = lambda text: dict(request=('',) * 5 + (source, text, ''))
  _refused(config, workdir, 'not conditioned on .width.', **edit('width=2'))
  _refused(config, workdir, 'training deviations', **edit('thickness=+40sd'))
  _refused(config, workdir, 'not a class of this data', **edit('digit=10'))
  _refused(config, workdir, 'not a finite number', **edit('thickness=inf'))
  _refused(config, workdir, 'neither a number', **edit('slant=left'))
  _refused(config, workdir, 'give --projected too', request=('',) * 6 + ('thickness=+1sd',))
  with np.load(source) as f:
    arrays = dict(f)
  for change, match in (
    (dict(step=np.int64(5)), 'checkpoint of step 5'),
    (dict(config_digest=np.str_('00000000')), 'another model'),
    (dict(image_shape=np.array([32, 32, 3])), 'shape'),
  ):
    bad = str(tmp_path / 'bad.npz')
    np.savez(bad, **{**arrays, **change})
    _refused(config, workdir, match, request=('',) * 5 + (bad, '', ''))
  _refused(config, workdir, 'no file', request=('',) * 5 + (str(tmp_path / 'none.npz'), '', ''))


def test_bad_images_are_refused_and_write_nothing(run, tmp_path):
  config, workdir, _ = run
  Image.new('RGB', (28, 28), (200, 10, 10)).save(tmp_path / 'red.png')
  (tmp_path / 'empty').mkdir()
  (tmp_path / 'broken.png').write_bytes(b'not a png')
  np.savez(tmp_path / 'wide.npz', images=np.zeros((2, 32, 32, 1), np.uint8))
  np.savez(tmp_path / 'floats.npz', images=np.zeros((2, 28, 28, 1), np.float32))
  for path, match in (
    (tmp_path / 'red.png', '3 channel'),
    (tmp_path / 'empty', 'holds no images'),
    (tmp_path / 'broken.png', 'not a readable image'),
    (tmp_path / 'wide.npz', 'shape'),
    (tmp_path / 'floats.npz', 'uint8'),
    (tmp_path / 'missing', 'does not exist'),
  ):
    _refused(config, workdir, match, mode='project', images=str(path))
  _refused(config, workdir, '--images is for --mode=project', images=str(tmp_path / 'red.png'))


def test_text_models_refuse_projection_before_reading_anything(tmp_path):
  with pytest.raises(UserError, match='text-conditioned models cannot be projected'):
    main.run(load_config('mnist_text'), str(tmp_path), 'project', images='x.png')
  assert not os.listdir(tmp_path)


def test_launch_refuses_an_edit_in_one_line(run):
  config, workdir, _ = run
  result = launch(
    '--config=configs/mnist_attributes.py:smoke',
    f'--workdir={workdir}',
    '--mode=sample',
    '--edit=thickness=+1sd',
  )
  assert result.returncode == 2
  assert result.stderr.strip() == (
    'error: --edit and --edits_file edit projected images: give --projected too'
  )


def test_counterfactual_bench_measures_and_refuses(run, tmp_path, capsys):
  from bench import counterfactual as bench  # pylint: disable=g-import-not-at-top

  config, workdir, _ = run
  classifier = config.project.classifier_workdir
  out = tmp_path / 'counterfactual.json'
  spec = 'mnist_attributes:project.steps=3:project.candidates=4:project.restarts=1'
  args = [f'--config={spec}', '--smoke', f'--workdir={workdir}', f'--classifier={classifier}']
  args += [f'--ranker={classifier}', '--num_images=20', '--round_trips=4', f'--out={out}']
  bench.main(args)
  with open(out) as f:
    (row,) = json.load(f)['rows']
  for key in (
    'null_l1',
    'rank_median',
    'thickness_r',
    'slant_mae_sd',
    'thickness_class_kept',
    'swap_class_accuracy',
    'identity_rank_median_+1sd',
    'round_trip_l1_-1sd',
    'fid_edited',
    'baseline_rank_median',
    'project_seconds',
  ):
    assert np.isfinite(row[key]), key
  assert row['num_images'] == 20 and row['round_trips'] == 4 and 'cpu' in row
  assert '| null edit: rank of the source (median) |' in capsys.readouterr().out
  grid = np.asarray(Image.open(tmp_path / 'counterfactual.png'))
  labels = data.all_images(data.load(config.data.source, config.eval.floor_split, config.data))[1]
  rows = len(np.unique(labels[:20]))  # A row per class among the digits measured.
  assert grid.shape[0] * (7 * 30 + 2) == grid.shape[1] * (rows * 30 + 2)  # 7 columns.
  with pytest.raises(SystemExit, match='no classifier run in'):
    bench.main([*args[:-2], f'--ranker={tmp_path / "nothing"}', f'--out={tmp_path / "x.json"}'])
  assert not (tmp_path / 'x.json').exists()


def test_counterfactual_evaluator_runs_at_eval(run):
  config, workdir, _ = run
  config = config.copy_and_resolve_references()
  classifier = config.project.classifier_workdir
  config.eval.classifier_workdir = config.eval.rank_classifier_workdir = classifier
  config.evals = dict(counterfactual=dict(type='counterfactual', every=-1, num_samples=10))
  config.evals.counterfactual.round_trips = 2
  result = main.run(config, workdir, 'eval')
  assert result['counterfactual_num_images'] == 10 and result['counterfactual_round_trips'] == 2
  assert np.isfinite(result['counterfactual_baseline_thickness_r'])
