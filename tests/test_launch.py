"""End to end through the library entry point launch.py calls: artefacts, resume, sampling."""

import glob
import json
import os
import subprocess
import sys

import numpy as np
from PIL import Image
import pytest

from gan_jax import main
from gan_jax.errors import UserError
from tests.conftest import ROOT
from tests.conftest import load_config


@pytest.fixture(scope='module')
def smoke_run(tmp_path_factory):
  workdir = str(tmp_path_factory.mktemp('run'))
  config = load_config('mnist_dcgan')
  state = main.run(config, workdir)
  return config, workdir, state


def read_metrics(workdir):
  with open(os.path.join(workdir, 'metrics.jsonl')) as f:
    return [json.loads(line) for line in f]


def test_smoke_run_writes_every_artefact(smoke_run):
  config, workdir, state = smoke_run
  assert int(state.step) == config.train.num_steps
  for step in (3, 6):
    grid = Image.open(os.path.join(workdir, 'samples', f'step_{step:06d}.png'))
    assert grid.size[0] >= 256
  with open(os.path.join(workdir, 'config.json')) as f:
    assert json.load(f)['train']['num_steps'] == config.train.num_steps
  rows = read_metrics(workdir)
  assert [r['step'] for r in rows if 'd_loss' in r] == [2, 4, 6]
  for row in rows:
    if 'd_loss' in row:
      assert np.isfinite(row['d_loss']) and np.isfinite(row['g_loss']) and row['steps_per_sec'] > 0
  assert glob.glob(os.path.join(workdir, 'tensorboard', 'events.out.tfevents.*'))
  assert sorted(os.listdir(os.path.join(workdir, 'checkpoints'))) == ['3', '6']


def test_rerun_resumes_and_extends(smoke_run, capsys):
  config, workdir, _ = smoke_run
  config = load_config('mnist_dcgan')
  config.train.num_steps = 8
  state = main.run(config, workdir)
  out = capsys.readouterr().out
  assert 'resuming from the checkpoint at step 6' in out
  assert int(state.step) == 8
  steps = [r['step'] for r in read_metrics(workdir) if 'd_loss' in r]
  assert steps == [2, 4, 6, 8]
  assert os.path.exists(os.path.join(workdir, 'config.resumed_at_step_6.json'))


def test_sample_mode_writes_pngs_npz_and_grid(smoke_run):
  config, workdir, _ = smoke_run
  out_dir = main.run(config, workdir, 'sample', num_samples=5, sample_seed=3)
  with np.load(os.path.join(out_dir, 'samples.npz')) as f:
    assert f['images'].shape == (5, 28, 28, 1) and f['images'].dtype == np.uint8
    assert 'labels' not in f
  assert len(glob.glob(os.path.join(out_dir, 'images', '0*.png'))) == 5
  assert os.path.exists(os.path.join(out_dir, 'grid.png'))
  strip = Image.open(os.path.join(out_dir, 'interpolation.png'))
  assert strip.size[0] > 4 * strip.size[1]  # One row of 10 images.


def test_sample_mode_never_overwrites(smoke_run):
  config, workdir, _ = smoke_run
  main.run(config, workdir, 'sample', num_samples=2, sample_seed=9)
  with pytest.raises(UserError, match='already exists'):
    main.run(config, workdir, 'sample', num_samples=2, sample_seed=9)


def launch(*args, timeout=300):
  return subprocess.run(
    [sys.executable, os.path.join(ROOT, 'launch.py'), *args],
    capture_output=True,
    text=True,
    timeout=timeout,
    cwd=ROOT,
  )


def test_launch_py_trains_from_the_command_line(tmp_path):
  result = launch(
    '--config=configs/mnist_mlp_gan.py:smoke', f'--workdir={tmp_path}', '--config.train.num_steps=3'
  )
  assert result.returncode == 0, result.stderr
  assert 'step 3/3' in result.stdout
  assert os.path.exists(tmp_path / 'samples' / 'step_000003.png')


def test_time_budget_stops_and_saves_a_checkpoint(tmp_path, capsys):
  """train.time_budget_s counts from the process start; this test process is older than 1 s, so
  the run stops after its first step and saves it, far short of num_steps."""
  config = load_config('mnist_dcgan')
  config.train.num_steps = 1000
  config.train.time_budget_s = 1.0
  state = main.run(config, str(tmp_path))
  assert int(state.step) == 1
  assert (
    'stopping on the time budget (1 s): saved the checkpoint at step 1' in capsys.readouterr().out
  )
  assert os.listdir(os.path.join(tmp_path, 'checkpoints')) == ['1']


def test_mode_config_prints_the_checked_config_and_touches_nothing(tmp_path):
  """--mode=config: the resolved config after overrides, checked; no workdir needed, nothing
  written, no data or checkpoint opened."""
  result = launch(
    '--config=configs/mnist_attributes.py', '--mode=config', '--config.train.num_steps=7'
  )
  assert result.returncode == 0, result.stderr
  text = result.stdout.split('\nhardware: ')[0]
  config = json.loads(text[text.index('{') :])
  assert config['train']['num_steps'] == 7 and config['model']['condition'] == [
    'label',
    'thickness',
    'slant',
  ]
  assert config['eval']['inception_num_samples'] > 0  # The automatic count, resolved.
  bad = launch('--config=configs/mnist_fast.py', '--mode=config', '--config.train.num_steps=0')
  assert bad.returncode == 2 and bad.stderr.count('\n') == 1, bad.stderr
  missing = launch('--config=configs/mnist_fast.py', '--mode=sample')
  assert missing.returncode == 2
  assert missing.stderr.strip() == (
    'error: --workdir is required (where checkpoints, logs and samples go)'
  )
  assert not os.listdir(tmp_path)
