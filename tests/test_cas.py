"""--mode=cas (gan_jax/cas.py) end to end on a smoke class-conditional GAN, its bad inputs, and
the npz data source it trains the classifier from."""

import json
import os
import shutil

import numpy as np
import pytest

from gan_jax import cas
from gan_jax import data
from gan_jax import main
from gan_jax.errors import UserError
from tests.conftest import load_config
from tests.test_launch import launch

RECIPE = 'configs/mnist_classifier.py:smoke'


def cas_config(name='mnist_cgan'):
  config = load_config(name)
  config.eval.cas_classifier_config = RECIPE
  config.eval.cas_num_samples = 100
  return config


@pytest.fixture(scope='module')
def cgan_run(tmp_path_factory):
  workdir = str(tmp_path_factory.mktemp('cgan'))
  main.run(load_config('mnist_cgan'), workdir)
  return workdir


def test_cas_on_a_smoke_cgan_is_in_range_written_and_deterministic(cgan_run):
  result = main.run(cas_config(), cgan_run, 'cas')
  samples = os.path.join(cgan_run, 'cas', 'step6_seed0_n100')
  folder = os.path.join(samples, cas.recipe_folder(RECIPE, cas.load_recipe(RECIPE)))
  assert os.path.basename(folder).startswith('mnist_classifier-smoke_')
  with open(os.path.join(folder, 'cas.json')) as f:
    assert json.load(f) == result
  for key in ('cas', 'real_accuracy', 'gan_test'):
    assert 0.0 <= result[key] <= 1.0
  assert result['cas_over_real'] == pytest.approx(result['cas'] / result['real_accuracy'])
  assert result['num_samples'] == 100 and result['step'] == 6
  with np.load(os.path.join(samples, 'generated.npz')) as f:
    assert f['images'].shape == (100, 28, 28, 1) and f['images'].dtype == np.uint8
    assert np.bincount(f['labels']).tolist() == [10] * 10  # Class-balanced.
  # The real-trained arm of the same recipe is reused from a workdir trained with it.
  real = result['real_classifier_workdir']
  assert real == os.path.join(folder, 'real')
  # Everything again from nothing: the same numbers.
  os.rename(os.path.join(cgan_run, 'cas'), os.path.join(cgan_run, 'cas_first'))
  config = cas_config()
  first = folder.replace(os.sep + 'cas' + os.sep, os.sep + 'cas_first' + os.sep)
  config.eval.classifier_workdir = os.path.join(first, 'real')
  again = main.run(config, cgan_run, 'cas')
  assert again['real_classifier_workdir'] == config.eval.classifier_workdir
  assert not os.path.exists(os.path.join(folder, 'real'))
  for key in ('cas', 'real_accuracy', 'gan_test'):
    assert again[key] == result[key]


def test_another_recipe_trains_in_a_folder_of_its_own(cgan_run):
  """A second recipe on the same generated digits never resumes the first recipe's runs."""
  plain = main.run(cas_config(), cgan_run, 'cas')
  config = cas_config()
  config.eval.cas_classifier_config = 'configs/mnist_classifier_aug.py:smoke'
  augmented = main.run(config, cgan_run, 'cas')
  assert os.path.dirname(augmented['real_classifier_workdir']) != os.path.dirname(
    plain['real_classifier_workdir']
  )
  with open(os.path.join(augmented['real_classifier_workdir'], 'config.json')) as f:
    assert json.load(f)['augment'] == {'max_degrees': 10.0, 'max_shift': 2.0}
  samples = os.path.join(cgan_run, 'cas', 'step6_seed0_n100')
  assert sum(os.path.isfile(os.path.join(samples, d, 'cas.json')) for d in os.listdir(samples)) == 2


@pytest.mark.parametrize(
  'name, change, message',
  [
    ('mnist_dcgan', None, 'needs a class-conditional GAN'),
    ('mnist_cgan', 'configs/missing_classifier.py', 'no config file'),
    ('mnist_cgan', 'configs/mnist_cgan.py', "is a 'gan' config, not a classifier"),
  ],
)
def test_bad_cas_requests_write_nothing(cgan_run, tmp_path, name, change, message):
  config = cas_config(name)
  if change:
    config.eval.cas_classifier_config = change
  before = sorted(os.listdir(cgan_run))
  with pytest.raises(UserError, match=message):
    main.run(config, cgan_run, 'cas')
  assert sorted(os.listdir(cgan_run)) == before


def test_cas_without_a_checkpoint_is_one_line_and_writes_nothing(tmp_path):
  result = launch(
    '--config=configs/mnist_cgan.py:smoke',
    f'--workdir={tmp_path}',
    '--mode=cas',
    f'--config.eval.cas_classifier_config={RECIPE}',
  )
  assert result.returncode == 2
  assert result.stderr.strip().startswith('error: no checkpoints in')
  assert len(result.stderr.strip().splitlines()) == 1
  assert not os.listdir(tmp_path)


def test_recipe_loads_with_its_variant():
  recipe = cas.load_recipe(RECIPE)
  assert recipe.experiment == 'classifier' and recipe.train.num_steps == 6


def test_npz_source_reads_samples_and_refuses_bad_files(tmp_path):
  images = np.zeros((5, 28, 28, 1), np.uint8)
  path = str(tmp_path / 'set.npz')
  np.savez(path, images=images, labels=np.array([0, 1, 2, 3, 9]))
  source = data.load(f'npz:{path}', 'test')
  assert len(source) == 5 and source.num_classes == 10 and source.image_shape == (28, 28, 1)
  np.savez(path, images=images.astype(np.float32), labels=np.arange(5))
  with pytest.raises(UserError, match='must be uint8'):
    data.load(f'npz:{path}', 'train')
  np.savez(path, pictures=images)
  with pytest.raises(UserError, match='needs arrays `images` and `labels`'):
    data.load(f'npz:{path}', 'train')
  (tmp_path / 'broken.npz').write_bytes(b'not a zip')
  with pytest.raises(UserError, match='not a readable .npz'):
    data.load(f'npz:{tmp_path / "broken.npz"}', 'train')
  with pytest.raises(UserError, match='does not exist'):
    data.load(f'npz:{tmp_path / "missing.npz"}', 'train')


def test_low_data_study_smoke(tmp_path, capsys):
  from bench import low_data

  out = str(tmp_path / 'low_data.json')
  low_data.main(['--smoke', f'--workroot={tmp_path / "runs"}', f'--out={out}'])
  with open(out) as f:
    rows = json.load(f)['rows']
  assert [r['arm'] for r in rows] == list(low_data.ARMS)
  assert all(0.0 <= r['accuracy'] <= 1.0 and r['per_class'] == 5 for r in rows)
  (mixed,) = (tmp_path / 'runs' / 'n5_seed0').glob('gan_*/real_aug_gen_10_share0.25.npz')
  with np.load(str(mixed)) as f:
    # 50 real digits repeated six times beside 100 generated ones: a quarter generated.
    assert f['images'].shape[0] == 400 and np.bincount(f['labels']).tolist() == [40] * 10
    real = np.load(str(tmp_path / 'runs' / 'n5_seed0' / 'real.npz'))['images']
    np.testing.assert_array_equal(f['images'][:300], np.tile(real, (6, 1, 1, 1)))
  assert rows[-1]['generated_share'] == 0.25
  assert '| 5 |' in capsys.readouterr().out and not (tmp_path / 'low_data.md').exists()
  assert (tmp_path / 'low_data.png').stat().st_size > 0

  # --gan_from: the GAN trained above, its config saying it trained on data.per_class=5 of
  # seed 0 (the same 50 digits the npz held), reused instead of trained.
  gan = next((tmp_path / 'runs' / 'n5_seed0').glob('gan_*/gan'))
  reuse = tmp_path / 'reuse' / 'n5_seed0_ada'
  shutil.copytree(gan, reuse)
  config = json.loads((reuse / 'config.json').read_text())
  config['data'].update(source='embedded:mnist', per_class=5, per_class_seed=0)
  config['augment'].update(ada_target=0.6, policy='')
  (reuse / 'config.json').write_text(json.dumps(config))
  pattern = str(tmp_path / 'reuse' / 'n{per_class}_seed{seed}_ada')
  out = str(tmp_path / 'reused.json')
  args = ['--smoke', f'--workroot={tmp_path / "runs"}', f'--out={out}', f'--gan_from={pattern}']
  low_data.main(args)
  with open(out) as f:
    row = json.load(f)['rows'][-1]
  assert row['gan'] == str(reuse) and row['gan_augment'] == 'ada target 0.6'
  assert list((tmp_path / 'runs' / 'n5_seed0').glob('from_*/generated_10.npz'))
  # A run trained on other digits is refused before any work.
  config['data']['per_class_seed'] = 1
  (reuse / 'config.json').write_text(json.dumps(config))
  os.remove(out)
  with pytest.raises(SystemExit, match='data.per_class=5, data.per_class_seed=0'):
    low_data.main(args)
  assert not os.path.exists(out)
  with pytest.raises(SystemExit, match='no GAN run in'):
    low_data.main([*args[:-1], f'--gan_from={tmp_path}/missing_n{{per_class}}'])


@pytest.mark.parametrize('share', ['0', '1', '-0.5', '1.5'])
def test_low_data_study_refuses_a_share_outside_0_1(tmp_path, share, capsys):
  from bench import low_data

  with pytest.raises(SystemExit) as e:
    low_data.main(['--smoke', f'--workroot={tmp_path}', f'--generated_share={share}'])
  assert e.value.code == 2 and 'generated_share' in capsys.readouterr().err
  assert not any(tmp_path.iterdir())


def test_shift_rotate_keeps_shape_and_is_identity_at_zero():
  import jax
  import jax.numpy as jnp

  from gan_jax import augment

  x = (-jnp.ones((3, 28, 28, 1))).at[:, 10:18, 12:16].set(1.0)
  np.testing.assert_array_equal(augment.shift_rotate(x, jax.random.key(0), 0.0, 0.0), x)
  y = augment.shift_rotate(x, jax.random.key(1), 2.0, 10.0)
  assert y.shape == x.shape and float(y.min()) >= -1.0 and float(y.max()) <= 1.0
  assert not np.array_equal(np.asarray(y), np.asarray(x))
  # The stroke keeps about its area (bilinear resampling blurs its edge a little).
  assert abs(float(jnp.sum(y > 0)) - float(jnp.sum(x > 0))) < 0.2 * float(jnp.sum(x > 0))


def test_classifier_trains_on_a_set_smaller_than_its_batch(tmp_path):
  images = np.random.default_rng(0).integers(0, 256, (20, 28, 28, 1), dtype=np.uint8)
  path = str(tmp_path / 'tiny.npz')
  np.savez(path, images=images, labels=np.arange(20) % 10)
  recipe = cas.load_recipe(RECIPE)
  recipe.data.source, recipe.data.eval_source = f'npz:{path}', 'embedded:mnist'
  recipe.augment.max_shift, recipe.augment.max_degrees = 2.0, 10.0
  main.run(recipe, str(tmp_path / 'run'))  # batch 32 from 20 digits.
  accuracy, _, _ = cas.held_out_accuracy(str(tmp_path / 'run'), data.load('embedded:mnist', 'test'))
  assert 0.0 <= accuracy <= 1.0


def test_cas_bench_tabulates_draw_seeds_and_reads_finished_passes(cgan_run, tmp_path):
  from bench import cas as cas_bench

  runs = tmp_path / 'runs'
  runs.mkdir()
  (runs / 'mnist_cgan').symlink_to(cgan_run)
  out = str(tmp_path / 'cas.json')
  flags = [
    '--smoke',
    '--configs=mnist_cgan',
    '--recipes=configs/mnist_classifier.py',
    '--counts=100',
    '--seeds=0,1',
    f'--runs={runs}',
    f'--out={out}',
  ]
  cas_bench.main(flags)
  with open(out) as f:
    rows = json.load(f)['rows']
  assert [(r['seed'], r['count'], r['step']) for r in rows] == [(0, 100, 6), (1, 100, 6)]
  assert rows[0]['cas'] != rows[1]['cas'] or rows[0]['gan_test'] != rows[1]['gan_test']
  table = (tmp_path / 'cas.md').read_text()
  assert '| mnist_cgan (6) | mnist_classifier.py | 100 | ' in table and ' ± ' in table
  written = [os.path.join(os.path.dirname(r['real_classifier_workdir']), 'cas.json') for r in rows]
  stamps = {p: os.path.getmtime(p) for p in written}
  cas_bench.main(flags)  # Every pass has run: read from its cas.json, nothing retrained.
  with open(out) as f:
    again = json.load(f)['rows']
  for row in rows + again:  # The load and the date are the machine's, not the pass's.
    del row['load_1min'], row['date']
  assert again == rows
  assert {p: os.path.getmtime(p) for p in stamps} == stamps


def test_cas_bench_refuses_an_untrained_config(tmp_path):
  from bench import cas as cas_bench

  with pytest.raises(SystemExit, match='no trained GAN in .*train it first'):
    cas_bench.main(['--smoke', '--configs=mnist_r3gan', f'--runs={tmp_path}'])
  assert not os.listdir(tmp_path)


def test_benches_never_overwrite_a_page_that_is_not_their_table(tmp_path):
  from bench import cas as cas_bench

  page = tmp_path / 'cas.md'
  page.write_text('# Generated digits as training data\n')
  with pytest.raises(SystemExit, match='is not a benchmark table'):
    cas_bench.main(['--smoke', f'--runs={tmp_path}', f'--out={tmp_path / "cas.json"}'])
  assert page.read_text() == '# Generated digits as training data\n'
  assert sorted(os.listdir(tmp_path)) == ['cas.md']
