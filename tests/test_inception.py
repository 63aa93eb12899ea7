"""The Flax FID Inception against pytorch-fid's own outputs, and its torch-free weights reader.

tests/data/inception_fixtures.npz was written by pytorch-fid 0.3.0 (torch 2.14.1, torchvision
0.29.1) running `python tests/inception_reference.py fixtures`: per-block outputs, the resize,
and the whole network's pool features and logits on seeded weights that `seeded_state_dict`
rebuilds here from pytorch-fid's names and shapes.
"""

import os
import pickle
import subprocess
import sys

import numpy as np
import pytest

from gan_jax import fid
from gan_jax import torch_weights
from gan_jax.errors import UserError
from gan_jax.models import inception
from tests import inception_reference as ref

pytestmark = pytest.mark.skipif(
  not os.path.exists(ref.FIXTURES), reason='run tests/inception_reference.py fixtures first'
)
RTOL = 1e-4


@pytest.fixture(scope='module')
def fixtures():
  with np.load(ref.FIXTURES) as f:
    return dict(f)


@pytest.fixture(scope='module')
def variables(fixtures):
  shapes = [tuple(s[:r]) for s, r in zip(fixtures['shapes'], fixtures['ranks'])]
  state = ref.seeded_state_dict([str(n) for n in fixtures['names']], shapes)
  return inception.variables_from_state_dict(state)


def _close(ours, theirs):
  """Relative to the reference's scale: max |ours - theirs| / max |theirs|."""
  ours, theirs = np.asarray(ours, np.float64), np.asarray(theirs, np.float64)
  assert ours.shape == theirs.shape
  error = np.max(np.abs(ours - theirs)) / np.max(np.abs(theirs))
  assert error < RTOL, error
  return error


BLOCKS = {
  'Conv2d_1a_3x3': lambda: inception._conv(32, 3, stride=2),
  'Conv2d_2a_3x3': lambda: inception._conv(32, 3),
  'Conv2d_2b_3x3': lambda: inception._conv(64, 3, padding=1),
  'Conv2d_3b_1x1': lambda: inception._conv(80),
  'Conv2d_4a_3x3': lambda: inception._conv(192, 3),
  'Mixed_5b': lambda: inception.InceptionA(32),
  'Mixed_5c': lambda: inception.InceptionA(64),
  'Mixed_5d': lambda: inception.InceptionA(64),
  'Mixed_6a': lambda: inception.InceptionB(),
  'Mixed_6b': lambda: inception.InceptionC(128),
  'Mixed_6c': lambda: inception.InceptionC(160),
  'Mixed_6d': lambda: inception.InceptionC(160),
  'Mixed_6e': lambda: inception.InceptionC(192),
  'Mixed_7a': lambda: inception.InceptionD(),
  'Mixed_7b': lambda: inception.InceptionE(),
  'Mixed_7c': lambda: inception.InceptionE(max_pool=True),
}


@pytest.mark.parametrize('block', list(BLOCKS))
def test_each_block_matches_pytorch_fid(block, fixtures, variables):
  sub = {c: variables[c][block] for c in ('params', 'batch_stats') if block in variables[c]}
  out = BLOCKS[block]().apply(sub, fixtures[f'block_in_{block}'])
  _close(out, fixtures[f'block_out_{block}'])


@pytest.mark.parametrize('key', list(ref.RESIZE_SETS))
def test_resize_and_scaling_match_pytorch_fid(key, fixtures):
  images = ref.seeded_images(ref.RESIZE_SETS[key], 100 + list(ref.RESIZE_SETS).index(key))
  out = inception.preprocess(images.astype(np.float32) / 255.0)
  assert out.shape == (1, 299, 299, 3)
  step = ref.RESIZE_STRIDE
  np.testing.assert_allclose(out[:, ::step, ::step], fixtures[f'resize_out_{key}'], atol=2e-6)


def test_whole_network_matches_pytorch_fid_at_28_32_and_299_px(fixtures, variables):
  """Greyscale 28 px digits (repeated to RGB), 32 px and 299 px colour images."""
  for i, (key, shape) in enumerate(ref.IMAGE_SETS.items()):
    pool, logits = fid.features(variables, ref.seeded_images(shape, 200 + i))
    assert pool.shape == (shape[0], 2048) and logits.shape == (shape[0], 1008)
    _close(pool, fixtures[f'net_pool_{key}'])
    _close(logits, fixtures[f'net_logits_{key}'])


_SHARDED = """
import jax, jax.numpy as jnp, numpy as np
from gan_jax import fid, sharding
from gan_jax.models import inception
assert jax.device_count() == 2
variables = inception.FIDInception().init(jax.random.key(0), jnp.zeros((1, 32, 32, 3)))
images = np.random.default_rng(7).integers(0, 256, (3, 32, 32, 3), dtype=np.uint8)
mesh = sharding.make_mesh((('data', -1),))
sharded, _ = fid.features(variables, images, batch_size=2, mesh=mesh)  # 2 + 1 padded to 2
single, _ = fid.features(variables, images, batch_size=3)
np.testing.assert_allclose(sharded, single, rtol=1e-5, atol=1e-6)
print('same')
"""


def test_features_sharded_over_two_devices_equal_one_device():
  env = dict(os.environ, XLA_FLAGS='--xla_force_host_platform_device_count=2')
  result = subprocess.run(
    [sys.executable, '-c', _SHARDED], capture_output=True, text=True, env=env, timeout=300
  )
  assert result.returncode == 0 and result.stdout.strip() == 'same', result.stderr[-2000:]


def test_state_dict_checked_in_full(fixtures):
  shapes = [tuple(s[:r]) for s, r in zip(fixtures['shapes'], fixtures['ranks'])]
  state = ref.seeded_state_dict([str(n) for n in fixtures['names']], shapes)
  missing = dict(state)
  del missing['Mixed_6c.branch7x7_2.conv.weight']
  with pytest.raises(UserError, match='1 missing entries.*Mixed_6c.*branch7x7_2'):
    inception.variables_from_state_dict(missing)
  with pytest.raises(UserError, match='unexpected.*AuxLogits'):
    inception.variables_from_state_dict({**state, 'AuxLogits.conv0.conv.weight': np.zeros(1)})
  wrong = {**state, 'Mixed_5b.branch1x1.bn.running_var': np.ones(63, np.float32)}
  with pytest.raises(UserError, match='misshapen.*Mixed_5b.*branch1x1'):
    inception.variables_from_state_dict(wrong)


# --- the torch-free reader ----------------------------------------------------------------


@pytest.mark.parametrize('layout', ['zip', 'legacy'])
def test_reader_reads_what_torch_save_wrote(layout):
  state = torch_weights.load_state_dict(os.path.join(ref.DATA, f'state_dict_{layout}.pth'))
  with np.load(os.path.join(ref.DATA, 'state_dict_expected.npz')) as expected:
    assert list(state) == list(expected.keys())
    for name, value in expected.items():
      assert state[name].dtype == value.dtype and state[name].shape == value.shape, name
      np.testing.assert_array_equal(state[name], value)


class _Payload:
  def __init__(self, marker):
    self.marker = marker

  def __reduce__(self):
    return (os.system, (f'touch {self.marker}',))


def test_a_pickle_with_a_code_payload_is_refused_and_nothing_runs(tmp_path):
  marker = tmp_path / 'ran'
  path = tmp_path / 'evil.pth'
  path.write_bytes(pickle.dumps({'conv.weight': _Payload(marker)}))
  with pytest.raises(UserError, match=r'refusing.*(posix|os)\.system.*nothing from the file'):
    torch_weights.load_state_dict(str(path))
  # The same payload inside a torch zip archive.
  import zipfile

  archive = tmp_path / 'evil_zip.pth'
  with zipfile.ZipFile(archive, 'w') as z:
    z.writestr('evil/data.pkl', pickle.dumps(_Payload(marker)))
  with pytest.raises(UserError, match='refusing'):
    torch_weights.load_state_dict(str(archive))
  assert not marker.exists()


@pytest.mark.parametrize(
  'content, message',
  [
    (b'', 'not a readable'),
    (b'not a weights file at all', 'not a readable'),
    (pickle.dumps([1, 2, 3]), 'not a PyTorch weights file'),
  ],
)
def test_malformed_files_are_one_clear_error(tmp_path, content, message):
  path = tmp_path / 'bad.pth'
  path.write_bytes(content)
  with pytest.raises(UserError, match=message):
    torch_weights.load_state_dict(str(path))


def test_a_truncated_file_is_refused(tmp_path):
  data = open(os.path.join(ref.DATA, 'state_dict_legacy.pth'), 'rb').read()
  path = tmp_path / 'short.pth'
  path.write_bytes(data[: len(data) - 40])
  with pytest.raises(UserError, match='not a readable.*truncated'):
    torch_weights.load_state_dict(str(path))


# --- the command ----------------------------------------------------------------------------


def _write_folder(folder, images):
  from PIL import Image

  folder.mkdir()
  for i, image in enumerate(images):
    Image.fromarray(image).save(folder / f'{i:03d}.png')


def test_fid_command_reads_folders_and_npz_alike(tmp_path, variables, monkeypatch, capsys):
  a = ref.seeded_images((6, 32, 32, 3), 11)
  b = np.clip(a.astype(int) + 60, 0, 255).astype(np.uint8)
  _write_folder(tmp_path / 'a', a)
  np.savez(tmp_path / 'b.npz', images=b)
  weights = fid.Weights(variables, 'seeded', '0' * 64)
  monkeypatch.setattr(fid, 'load_weights', lambda path: weights)
  assert fid.main([str(tmp_path / 'a'), str(tmp_path / 'b.npz'), '--weights', 'w']) == 0
  value = float(capsys.readouterr().out.strip().splitlines()[-1].removeprefix('FID: '))
  pool_a, _ = fid.features(variables, a)
  pool_b, _ = fid.features(variables, b)
  stats = [fid.metrics.feature_statistics(p) for p in (pool_a, pool_b)]
  expected = fid.metrics.frechet_distance(*stats[0], *stats[1])
  assert value == pytest.approx(expected, rel=1e-6) and value > 0
  # Statistics saved once, then read as pytorch-fid's .npz of mu/sigma.
  stats = tmp_path / 'a_stats.npz'
  assert fid.main([str(tmp_path / 'a'), str(stats), '--save-stats', '--weights', 'w']) == 0
  assert fid.main([str(stats), str(tmp_path / 'b.npz'), '--weights', 'w']) == 0
  again = float(capsys.readouterr().out.strip().splitlines()[-1].removeprefix('FID: '))
  assert again == pytest.approx(value, rel=1e-9)


@pytest.mark.parametrize(
  'args, message',
  [
    (['{tmp}/nowhere', '{tmp}/nowhere', '--weights', '{tmp}/w.pth'], 'does not exist'),
    (['{tmp}', '{tmp}', '--weights', '{evil}'], 'refusing'),
    (['{tmp}/x.txt', '{tmp}', '--weights', '{data}/state_dict_zip.pth'], 'not pytorch-fid'),
    (['{tmp}'], 'the following arguments are required'),
  ],
)
def test_fid_command_bad_input_is_one_line_and_non_zero(tmp_path, args, message):
  evil = tmp_path / 'evil.pth'
  evil.write_bytes(pickle.dumps(_Payload(tmp_path / 'ran')))
  args = [a.format(tmp=tmp_path, evil=evil, data=ref.DATA) for a in args]
  result = subprocess.run(
    [sys.executable, '-m', 'gan_jax.fid', *args], capture_output=True, text=True, timeout=120
  )
  assert result.returncode != 0
  assert len(result.stderr.strip().splitlines()) == 1, result.stderr
  assert message in result.stderr
  assert not (tmp_path / 'ran').exists()


def test_weights_from_another_file_are_flagged_not_published(tmp_path):
  assert not fid.Weights({}, 'x', 'ab' * 32).published
  assert fid.Weights({}, 'x', fid.WEIGHTS_SHA256_PREFIX + '0' * 56).published


# --- --mode=eval ----------------------------------------------------------------------------


@pytest.fixture(scope='module')
def gan_run(tmp_path_factory):
  from gan_jax import main
  from tests.conftest import load_config

  workdir = str(tmp_path_factory.mktemp('gan'))
  main.run(load_config('mnist_dcgan'), workdir)
  return workdir


def test_eval_mode_adds_inception_metrics_with_cached_reference(
  gan_run, variables, tmp_path, monkeypatch, capsys
):
  from gan_jax import evaluate
  from gan_jax import main
  from tests.conftest import load_config

  config = load_config('mnist_dcgan')
  config.eval.inception_weights = 'pt_inception.pth'
  config.eval.inception_num_samples = 12
  config.eval.inception_reference_samples = 16
  config.eval.inception_cache_dir = str(tmp_path / 'cache')
  monkeypatch.setattr(
    evaluate.fid, 'load_weights', lambda path: fid.Weights(variables, path, 'ab' * 32)
  )
  counted = []
  real_features = evaluate.fid.features
  monkeypatch.setattr(
    evaluate.fid,
    'features',
    lambda weights, images, **kw: (
      counted.append(len(images)) or real_features(weights, images, **kw)
    ),
  )
  result = main.run(config, gan_run, 'eval')  # No classifier named: Inception alone.
  for name in ('fid', 'kid', 'is', 'precision', 'recall'):
    assert np.isfinite(result[f'inception_{name}']), name
  assert 1.0 <= result['inception_is'] <= 1008
  assert result['eval_inception_num_samples'] == 12
  assert result['eval_inception_weights'].endswith('@sha256:' + 'ab' * 8)
  assert counted == [16, 12]  # the reference split's subset, then the generated images
  out = capsys.readouterr().out
  assert 'NOT the published weights file' in out and 'fid' in out
  assert os.listdir(tmp_path / 'cache') == ['embedded_mnist_train_n16_' + 'ab' * 8 + '.npz']
  again = main.run(config, gan_run, 'eval')
  assert counted == [16, 12, 12]  # the reference came from the cache
  assert again['inception_fid'] == pytest.approx(result['inception_fid'], rel=1e-9)


def test_the_automatic_inception_count_is_50k_on_accelerators_and_recorded(tmp_path, monkeypatch):
  import json

  from gan_jax import config_checks
  from gan_jax import evaluators
  from gan_jax import main
  from gan_jax.errors import UserError
  from tests.conftest import load_config

  config = load_config('mnist_dcgan', None)
  assert config.eval.inception_num_samples == 0
  monkeypatch.setattr(fid.jax, 'default_backend', lambda: 'gpu')
  assert fid.default_num_samples() == 50_000
  monkeypatch.setattr(fid.jax, 'default_backend', lambda: 'cpu')
  evaluators.resolve_counts(config)
  assert config.eval.inception_num_samples == 10_000
  config = load_config('mnist_dcgan')
  config.eval.inception_num_samples = 0
  main.run(config, str(tmp_path))  # The smoke run: config.json records the count used.
  with open(tmp_path / 'config.json') as f:
    assert json.load(f)['eval']['inception_num_samples'] == 10_000
  config.eval.inception_num_samples = 1
  with pytest.raises(UserError, match='0 \\(automatic\\) or at least 2'):
    config_checks.check(config)
