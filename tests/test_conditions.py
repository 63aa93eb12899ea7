"""The general condition vector (gan_jax/conditions.py): config rules, the table of training
rows, requests and their bad forms, the networks' shapes, label-only models unchanged, and
--mode=sample to order end to end on the smoke config of configs/mnist_attributes.py."""

import functools
import os
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gan_jax import condition_requests
from gan_jax import conditions
from gan_jax import config_checks
from gan_jax import data
from gan_jax import gan as gan_lib
from gan_jax import gan_builder
from gan_jax import main
from gan_jax.errors import UserError
from tests.conftest import ROOT
from tests.conftest import generated
from tests.conftest import load_config
from tests.test_launch import launch

LABEL_ONLY_RUN = os.path.join(ROOT, 'tests', 'data', 'label_only_run')


def test_condition_names_follow_conditional():
  config = load_config('mnist_cgan')
  assert conditions.names(config.model) == ('label',)
  config.model.conditional = False
  assert conditions.names(config.model) == ()
  config = load_config('mnist_attributes')
  assert conditions.names(config.model) == ('label', 'thickness', 'slant')
  assert conditions.vector_names(conditions.names(config.model)) == ('thickness', 'slant')


@pytest.mark.parametrize(
  'overrides, message',
  [
    (dict(conditional=True, condition=('thickness',)), 'contradicts'),
    (dict(conditional=False, condition=('label', 'slant')), 'contradicts'),
    (dict(condition=('label', 'colour')), "unknown part 'colour'"),
    (dict(condition=('label', 'slant', 'slant')), 'twice'),
    (dict(condition=('label', 'features')), 'features is empty'),
    (dict(features='runs/x'), "has no 'features'"),
    (dict(vector_conditioning='both'), 'vector_conditioning'),
    (dict(pack=2), 'PacGAN'),
  ],
)
def test_inconsistent_conditions_are_one_line_errors(overrides, message):
  config = load_config('mnist_attributes')
  for key, value in overrides.items():
    config.model[key] = value
  with pytest.raises(UserError, match=message) as e:
    config_checks.check(config)
  assert '\n' not in str(e.value)


def test_regression_weight_must_be_positive():
  config = load_config('mnist_attributes')
  config.loss.regression_weight = 0.0
  with pytest.raises(UserError, match='regression_weight must be'):
    config_checks.check(config)


@pytest.fixture(scope='module')
def table():
  source = data.embedded_mnist('train')
  images, labels = source.images[::10], source.labels[::10]  # The split is sorted by class.
  return conditions.build_table(('label', 'thickness', 'slant'), images, labels, 10)


def test_table_standardises_and_draws_whole_rows(table):
  vector = table.vector()
  assert vector.shape == (400, 2) and vector.dtype == np.float32
  np.testing.assert_allclose(vector.mean(0), 0, atol=1e-5)
  np.testing.assert_allclose(vector.std(0), 1, atol=1e-4)
  # A request fixes what it names; the rest comes from training rows near it.
  cond = table.requests_condition([{'label': 7, 'thickness': 3.5}, {'slant': -0.3}], 50, seed=0)
  assert cond['label'].shape == (100,) and cond['attributes'].shape == (100, 2)
  raw = cond['attributes'] * table.std + table.mean
  np.testing.assert_allclose(raw[:50, 0], 3.5, rtol=1e-5)
  assert np.all(cond['label'][:50] == 7)
  sevens = table.attributes['slant'][table.labels == 7]
  assert np.all(np.isin(np.round(raw[:50, 1], 4), np.round(sevens, 4)))
  np.testing.assert_allclose(raw[50:, 1], -0.3, rtol=1e-5)
  # Rows near slant -0.3 lean left more than the training set does on average.
  assert np.mean(table.attributes['slant']) > -0.3
  rows = table.draw_rows({'slant': -0.3}, 200, np.random.default_rng(0))
  assert np.mean(np.abs(table.attributes['slant'][rows] + 0.3)) < 0.1
  # Label and attributes of a drawn row travel together.
  rows = table.draw_rows({'label': 3}, 20, np.random.default_rng(1))
  assert np.all(table.labels[rows] == 3)


@pytest.mark.parametrize(
  'text, message',
  [
    ('colour=3', "unknown key 'colour'"),
    ('area=100', "not conditioned on 'area'"),
    ('thickness=thick', 'is not a number'),
    ('slant=nan', 'not a finite number'),
    ('thickness=inf', 'not a finite number'),
    ('thickness=40', 'training deviations'),
    ('slant=-9', 'training deviations'),
    ('digit=12', 'not a class'),
    ('digit=2.5', 'not a class'),
    ('digit', 'is not KEY=VALUE'),
    ('digit=1,label=2', 'given twice'),
    ('features=1', "unknown key 'features'"),
  ],
)
def test_bad_requests_are_one_line_errors(table, text, message):
  with pytest.raises(UserError, match=message) as e:
    condition_requests.parse(table, text)
  assert '\n' not in str(e.value)


def test_requests_parse_aliases_and_units(table):
  assert condition_requests.parse(table, ' digit=7 , thickness=3.5,slant=0.3 ') == {
    'label': 7,
    'thickness': 3.5,
    'slant': 0.3,
  }


def _tiny_gan(vector_conditioning: str, loss: str):
  config = load_config('mnist_attributes')
  config.model.latent_dim, config.model.g_width, config.model.d_width = 8, 4, 4
  config.model.vector_conditioning = vector_conditioning
  config.loss.name = loss
  return gan_builder.build(config, (28, 28, 1), 10, sizes={'attributes': 2})


@pytest.mark.parametrize('judge, loss', [('regression', 'non_saturating'), ('projection', 'rpgan')])
def test_vector_reaches_both_networks_and_the_step(judge, loss):
  gan = _tiny_gan(judge, loss)
  state = gan.init(jax.random.key(0))
  # G's input is z with the 2 vector columns, then a label embedding as wide as that.
  assert state.g_params['Dense_0']['kernel'].shape[0] == 2 * (8 + 2)
  head = 'vector_head' if judge == 'regression' else 'vector_embed'
  assert head in state.d_params
  batch = {
    'image': np.zeros((8, 28, 28, 1), np.uint8),
    'label': np.arange(8, dtype=np.int32),
    'attributes': np.random.default_rng(0).normal(size=(8, 2)).astype(np.float32),
  }
  step = jax.jit(functools.partial(gan_lib.train_step, gan, penalize=True))
  new, metrics = step(state, batch, jax.random.key(1))
  assert all(np.isfinite(float(v)) for v in metrics.values()), metrics
  assert ('d_regression' in metrics) == (judge == 'regression')
  # The generator's output depends on the vector.
  z = jnp.zeros((2, 8))
  vec = jnp.array([[-2.0, 0.0], [2.0, 0.0]])
  cond = {'label': jnp.array([1, 1]), 'attributes': vec}
  images, _ = gan.apply_generator(new.g_params, new.g_stats, z, cond, train=False)
  assert float(jnp.abs(images[0] - images[1]).max()) > 0


def test_label_only_checkpoint_samples_the_same_images(tmp_path):
  """A checkpoint written before the condition vector existed (configs/mnist_cgan.py:smoke,
  latent 8, widths 4) samples the images it sampled then: bit for bit on the CPU model that
  made them (AMD EPYC Zen 4), within one grey level on another."""
  workdir = tmp_path / 'run'
  shutil.copytree(os.path.join(LABEL_ONLY_RUN, 'checkpoints'), workdir / 'checkpoints')
  config = load_config('mnist_cgan')
  config.model.latent_dim, config.model.g_width, config.model.d_width = 8, 4, 4
  out_dir = main.run(config, str(workdir), 'sample', num_samples=20)
  with np.load(os.path.join(LABEL_ONLY_RUN, 'expected_samples.npz')) as want:
    with np.load(os.path.join(out_dir, 'samples.npz')) as got:
      np.testing.assert_array_equal(got['labels'], want['labels'])
      diff = np.abs(got['images'].astype(int) - want['images'].astype(int))
      assert diff.max() <= 1, diff.max()


@pytest.fixture(scope='module')
def attributes_run(tmp_path_factory):
  workdir = str(tmp_path_factory.mktemp('attributes'))
  config = load_config('mnist_attributes')
  main.run(config, workdir)
  return config, workdir


def test_smoke_attributes_run_judges_control_and_sweeps(attributes_run):
  config, workdir = attributes_run
  assert os.path.exists(os.path.join(workdir, 'sweep', 'step_000006.png'))
  import json

  with open(os.path.join(workdir, 'metrics.jsonl')) as f:
    rows = [json.loads(line) for line in f]
  judged = [r for r in rows if 'control_r_thickness' in r]
  assert [r['step'] for r in judged] == [3, 6]
  for key in ('control_r_slant', 'control_mae_sd_thickness', 'control_leak_thickness_slant'):
    assert np.isfinite(judged[-1][key]), key
  assert any('d_regression' in r for r in rows)
  del config


def test_sample_to_order_records_the_request(attributes_run):
  config, workdir = attributes_run
  request = ('digit=7,thickness=3.5,slant=0.3', '', '')
  out_dir = main.run(config, workdir, 'sample', num_samples=6, request=request)
  with np.load(os.path.join(out_dir, 'samples.npz'), allow_pickle=False) as f:
    assert f['images'].shape == (6, 28, 28, 1)
    assert list(f['labels']) == [7] * 6
    np.testing.assert_allclose(f['thickness'], 3.5, rtol=1e-5)
    np.testing.assert_allclose(f['slant'], 0.3, rtol=1e-4)
  other = main.run(
    config, workdir, 'sample', num_samples=6, request=('digit=7,thickness=2', '', '')
  )
  assert os.path.basename(out_dir) != os.path.basename(other)
  assert '_condition_' in os.path.basename(out_dir)


def test_conditions_file_gives_one_grid_row_per_request(attributes_run, tmp_path):
  config, workdir = attributes_run
  path = tmp_path / 'requests.txt'
  path.write_text(
    '# thickness sweep\ndigit=1,thickness=1.5\n\ndigit=1,thickness=4  # thick\nslant=-0.4\n'
  )
  out_dir = main.run(config, workdir, 'sample', num_samples=5, request=('', str(path), ''))
  with np.load(os.path.join(out_dir, 'samples.npz')) as f:
    assert list(f['request_index']) == [0] * 5 + [1] * 5 + [2] * 5
    assert list(f['labels'][:10]) == [1] * 10
    np.testing.assert_allclose(f['thickness'][:10], [1.5] * 5 + [4.0] * 5, rtol=1e-5)
    np.testing.assert_allclose(f['slant'][10:], -0.4, rtol=1e-4)
  from PIL import Image

  grid = Image.open(os.path.join(out_dir, 'grid.png'))
  assert grid.size[0] > grid.size[1]  # 3 rows of 5.


@pytest.mark.parametrize(
  'request_, message',
  [
    (('digit=7,colour=1', '', ''), "unknown key 'colour'"),
    (('area=100', '', ''), "not conditioned on 'area'"),
    (('thickness=x', '', ''), 'not a number'),
    (('thickness=nan', '', ''), 'not a finite number'),
    (('thickness=99', '', ''), 'training deviations'),
    (('', 'LINE2', ''), 'line 2'),
    (('', 'missing.txt', ''), 'no file'),
    (('', '', 'IMAGE'), "needs a model conditioned on 'features'"),
    (('digit=1', 'LINE2', ''), 'give one of'),
    (('', 'BINARY', ''), 'is not a UTF-8 text file'),
    (('digit=1,' + 'x' * 42_000 + '=1', '', ''), r"unknown key 'xxx.*\(42,000 characters\)"),
  ],
)
def test_bad_sample_requests_write_nothing(attributes_run, tmp_path, request_, message):
  config, workdir = attributes_run
  bad_file = tmp_path / 'bad.txt'
  bad_file.write_text('digit=1\ndigit=1,thickness=\n')
  binary = tmp_path / 'binary.npz'
  binary.write_bytes(bytes(range(256)) * 4)
  request_ = tuple(str(bad_file) if r == 'LINE2' else r for r in request_)
  request_ = tuple(str(binary) if r == 'BINARY' else r for r in request_)
  image = tmp_path / 'digit.png'
  from PIL import Image

  Image.fromarray(np.zeros((28, 28), np.uint8)).save(image)
  request_ = tuple(str(image) if r == 'IMAGE' else r for r in request_)
  before = generated(workdir)
  with pytest.raises(UserError, match=message) as e:
    main.run(config, workdir, 'sample', num_samples=2, request=request_)
  assert '\n' not in str(e.value) and len(str(e.value)) < 300
  assert generated(workdir) == before


def test_condition_on_an_unconditional_config_is_refused_before_anything(tmp_path):
  config = load_config('mnist_dcgan')
  with pytest.raises(UserError, match='unconditional'):
    main.run(config, str(tmp_path), 'sample', num_samples=2, request=('digit=1', '', ''))
  assert not os.listdir(tmp_path)
  with pytest.raises(UserError, match='for --mode=sample'):
    main.run(config, str(tmp_path), 'eval', request=('digit=1', '', ''))


def test_launch_py_bad_condition_is_one_line_and_exit_2(attributes_run):
  _, workdir = attributes_run
  before = generated(workdir)
  result = launch(
    '--config=configs/mnist_attributes.py:smoke',
    f'--workdir={workdir}',
    '--mode=sample',
    '--condition=digit=7,thickness=abc',
  )
  assert result.returncode == 2
  assert result.stderr.strip() == "error: --condition: thickness='abc' is not a number"
  assert generated(workdir) == before


@pytest.fixture(scope='module')
def instance_run(tmp_path_factory):
  """A smoke classifier, and a smoke GAN conditioned on its features (ranked by it too)."""
  classifier = str(tmp_path_factory.mktemp('encoder'))
  main.run(load_config('mnist_classifier'), classifier)
  workdir = str(tmp_path_factory.mktemp('instance'))
  config = load_config('mnist_instance')
  config.model.features = classifier
  config.eval.classifier_workdir = config.eval.rank_classifier_workdir = classifier
  main.run(config, workdir)
  return config, workdir


def test_instance_run_is_ranked_by_retrieval(instance_run):
  _, workdir = instance_run
  import json

  with open(os.path.join(workdir, 'metrics.jsonl')) as f:
    judged = [r for r in map(json.loads, f) if 'instance_rank_median' in r]
  assert [r['step'] for r in judged] == [3, 6]
  assert 1 <= judged[-1]['instance_rank_median'] <= 1000
  assert judged[-1]['instance_num_images'] == 1000


def test_like_images_and_feature_vectors(instance_run, tmp_path):
  config, workdir = instance_run
  from PIL import Image

  test = data.embedded_mnist('test')
  folder = tmp_path / 'likes'
  folder.mkdir()
  for i in (0, 500):
    Image.fromarray(test.images[i][..., 0]).save(folder / f'{i}.png')
  out_dir = main.run(config, workdir, 'sample', num_samples=3, request=('', '', str(folder)))
  with np.load(os.path.join(out_dir, 'samples.npz')) as f:
    assert list(f['like_index']) == [0, 0, 0, 1, 1, 1]
    assert f['images'].shape == (6, 28, 28, 1)
  grid = Image.open(os.path.join(out_dir, 'grid.png'))
  assert grid.size[0] > grid.size[1]  # 2 rows: the real digit, then its 3 samples.
  vectors = tmp_path / 'vectors.npy'
  np.save(vectors, np.ones((2, 128), np.float32))
  out_dir = main.run(config, workdir, 'sample', num_samples=2, request=('', '', str(vectors)))
  assert '_like_' in os.path.basename(out_dir)


@pytest.mark.parametrize(
  'content, message',
  [
    ('not an image', 'not a readable image'),
    ('NPY_WIDE', r'must be \(n, 128\)'),
    ('NPY_NAN', 'finite numbers'),
    ('MISSING', 'does not exist'),
  ],
)
def test_bad_like_inputs_write_nothing(instance_run, tmp_path, content, message):
  config, workdir = instance_run
  path = tmp_path / 'x.png'
  if content == 'not an image':
    path.write_text(content)
  elif content == 'MISSING':
    path = tmp_path / 'nothing_here'
  else:
    path = tmp_path / 'x.npy'
    np.save(
      path, np.full((1, 7 if content == 'NPY_WIDE' else 128), np.nan if 'NAN' in content else 1.0)
    )
  before = generated(workdir)
  with pytest.raises(UserError, match=message):
    main.run(config, workdir, 'sample', num_samples=2, request=('', '', str(path)))
  assert generated(workdir) == before


def test_features_from_an_npy_aligned_with_the_training_split(tmp_path):
  from gan_jax import experiment

  config = load_config('mnist_instance')
  source = data.embedded_mnist('train')
  path = tmp_path / 'f.npy'
  np.save(path, np.random.default_rng(0).normal(size=(len(source), 16)).astype(np.float32))
  config.model.features = str(path)
  table = experiment.condition_table(config, source, log=None)
  assert table.vector_size == 16 and table.vector().shape == (len(source), 16)
  np.save(path, np.zeros((10, 16), np.float32))
  with pytest.raises(UserError, match='one row per training example'):
    experiment.condition_table(config, source, log=None)


def test_film_modulation_starts_as_the_identity_and_reaches_every_batch_norm():
  config = load_config('mnist_attributes')
  config.model.latent_dim, config.model.g_width, config.model.d_width = 8, 4, 4
  plain = gan_builder.build(config, (28, 28, 1), 10, sizes={'attributes': 2})
  config.model.vector_modulation = True
  film = gan_builder.build(config, (28, 28, 1), 10, sizes={'attributes': 2})
  a, b = plain.init(jax.random.key(0)), film.init(jax.random.key(0))
  extra = sorted(set(b.g_params) - set(a.g_params))
  assert len(extra) == 3  # One FiLM map per batch norm of the 28 px generator.
  cond = {'label': jnp.array([3, 3]), 'attributes': jnp.array([[-2.0, 1.0], [2.0, -1.0]])}
  z = jnp.ones((2, 8))
  images = lambda g, s: g.apply_generator(s.g_params, s.g_stats, z, cond, train=False)[0]
  # Zero-initialised maps: the modulated generator starts as the plain one.
  np.testing.assert_allclose(images(film, b), images(plain, a), atol=1e-5)
  moved = b.replace(
    g_params={**b.g_params, extra[-1]: jax.tree.map(jnp.ones_like, b.g_params[extra[-1]])}
  )
  assert float(jnp.abs(images(film, moved) - images(film, b)).max()) > 1e-3
  config.model.generator = 'resnet'
  with pytest.raises(UserError, match='vector_modulation is for the dcgan generator'):
    config_checks.check(config)
