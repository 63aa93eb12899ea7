"""ADA as an augmentation plug-in (gan_jax/augmentations/ada.py) and few-image training.

The overfitting measure and p on hand-made logits (and least squares' boundary), fixed and
ramped p, the identity at p = 0 and gradients through the pipeline, R1 taken through it; p as
train state: logged, drawn in curves.png, restored bit for bit after SIGKILL, zero from a
checkpoint written without it; `config.data.per_class` (the subsets of bench/low_data.py, the
condition tables cut alike, too many refused); the core names no augmentation.
"""

import dataclasses
import json
import os
import re
import signal
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gan_jax import augmentations
from gan_jax import data
from gan_jax import experiment
from gan_jax import gan as gan_lib
from gan_jax import gan_builder
from gan_jax import main
from gan_jax.augmentations.ada import ADA
from gan_jax.errors import UserError
from tests.conftest import ROOT
from tests.conftest import load_config


def seen(logits, step):
  logits = jnp.asarray(logits, jnp.float32)
  return augmentations.Observation(logits, -logits, jnp.int32(step), logits.shape[0])


def test_p_follows_the_sign_of_d_real_every_interval():
  ada = ADA(target=0.6, kimg=1.0, interval=2)
  state = ada.init_state()
  state = ada.observe(state, seen([1.0, 2.0, -1.0, 3.0], 0))  # Summed, not yet due.
  assert float(state['p']) == 0.0 and float(state['signs']) == 2.0
  assert float(state['logits']) == 4.0 and float(state['images']) == 4.0
  state = ada.observe(state, seen([1.0, 1.0, 1.0, 1.0], 1))  # r_t = 6 / 8 = 0.75 > 0.6.
  assert float(state['rt']) == 0.75
  assert float(state['p']) == np.float32(8 / 1000)  # Up by images seen / (kimg * 1000).
  assert [float(state[k]) for k in ('signs', 'logits', 'images')] == [0.0, 0.0, 0.0]
  for step in (2, 3):
    state = ada.observe(state, seen([-1.0, -1.0, -1.0, -1.0], step))
  assert float(state['rt']) == -1.0 and float(state['p']) == 0.0  # Down again.
  for step in (4, 5):
    state = ada.observe(state, seen([-1.0, -1.0, -1.0, -1.0], step))
  assert float(state['p']) == 0.0  # Never below 0.
  high = ADA(target=0.6, kimg=0.001, interval=1)
  assert float(high.observe({**high.init_state(), 'p': jnp.float32(0.9)}, seen([5.0], 0))['p']) == 1


def test_least_squares_reads_the_sign_about_its_midpoint():
  config = load_config('mnist_dcgan')
  config.loss.name, config.augment.ada_target = 'least_squares', 0.6
  ada = augmentations.from_config(config)
  assert ada.boundary == 0.5
  state = ada.observe(ada.init_state(), seen([0.6, 0.4, 0.7, 0.45], 3))
  assert float(state['rt']) == 0.0 and float(state['p']) == 0.0  # 0.6, 0.7 real; 0.4, 0.45 not.
  state = ada.observe(state, seen([0.6, 0.7, 0.8, 0.51], 7))
  assert float(state['rt']) == 1.0 and float(state['p']) > 0


def test_fixed_p_and_its_ramp():
  fixed = ADA(p=0.4)
  assert float(fixed.init_state()['p']) == np.float32(0.4)
  assert fixed.metrics(fixed.init_state()).keys() == {'augment_p'}
  ramp = ADA(p=0.4, ramp_steps=10)
  assert float(ramp.init_state()['p']) == 0.0
  assert float(ramp.observe(ramp.init_state(), seen([1.0], 4))['p']) == np.float32(0.2)
  assert float(ramp.observe(ramp.init_state(), seen([1.0], 30))['p']) == np.float32(0.4)
  adaptive = ADA(target=0.6)
  assert adaptive.metrics(adaptive.init_state()).keys() == {'augment_p', 'augment_rt'}


def test_identity_at_p_zero_and_differentiable_above():
  ada = ADA(target=0.6)
  images = jax.random.uniform(jax.random.key(0), (8, 28, 28, 1), minval=-1, maxval=1)
  key = jax.random.key(1)
  apply = jax.jit(lambda x, p: ada.apply(x, key, {**ada.init_state(), 'p': p}))
  np.testing.assert_array_equal(apply(images, jnp.float32(0.0)), images)
  assert not np.array_equal(apply(images, jnp.float32(0.8)), images)
  grad = jax.grad(lambda x: jnp.sum(apply(x, jnp.float32(0.8)) ** 2))(images)
  assert np.all(np.isfinite(grad)) and np.any(grad != 0)


def _r1(augmentation, p):
  config = load_config('mnist_dcgan')
  config.loss.r1_gamma = 1.0
  gan = gan_builder.build(config, (28, 28, 1), 10)
  gan = dataclasses.replace(gan, augmentation=augmentation)
  state = gan.init(jax.random.key(0))
  state = state.replace(augment={**augmentation.init_state(), 'p': jnp.float32(p)})
  batch = {'image': np.full((16, 28, 28, 1), 40, np.uint8), 'label': np.arange(16) % 10}
  batch['image'][:, 8:20, 10:18] = 250
  _, metrics = jax.jit(gan_lib.train_step, static_argnums=0)(gan, state, batch, jax.random.key(1))
  return float(metrics['r1'])


def test_r1_is_taken_through_the_augmentation():
  plain = _r1(augmentations.NONE, 0.0)
  assert _r1(ADA(target=0.6), 0.0) == pytest.approx(plain, rel=1e-6)
  assert _r1(ADA(target=0.6), 1.0) != pytest.approx(plain, rel=1e-3)


ADA_FLAGS = [
  '--config=configs/mnist_dcgan.py:smoke',
  '--config.augment.ada_target=0.6',
  '--config.augment.ada_kimg=0.05',
  '--config.augment.ada_interval=2',
  '--config.train.num_steps=12',
  '--config.train.checkpoint_every=2',
]


def launch(workdir, *more):
  return subprocess.Popen(
    [sys.executable, os.path.join(ROOT, 'launch.py'), *ADA_FLAGS, f'--workdir={workdir}', *more],
    cwd=ROOT,
    stdout=subprocess.DEVNULL,
    stderr=subprocess.PIPE,
    text=True,
  )


def final_state(workdir):
  config = load_config('mnist_dcgan')
  for flag in ADA_FLAGS[1:]:
    key, value = flag[len('--config.') :].split('=')
    section, name = key.split('.')
    config[section][name] = type(config[section][name])(value)
  _, step, state = experiment.restore_for_inference(config, workdir)
  return step, jax.device_get(state)


def test_p_is_state_restored_bit_for_bit_after_sigkill(tmp_path):
  ref, killed = tmp_path / 'ref', tmp_path / 'killed'
  assert launch(ref).wait(timeout=300) == 0
  proc = launch(killed)
  deadline = time.monotonic() + 300
  while not (killed / 'checkpoints' / '6').is_dir() and proc.poll() is None:
    assert time.monotonic() < deadline
    time.sleep(0.05)
  proc.send_signal(signal.SIGKILL)
  proc.wait()
  assert launch(killed).wait(timeout=300) == 0
  (step, want), (_, got) = final_state(ref), final_state(killed)
  assert step == 12 and float(want.augment['p']) > 0  # p moved, and is checkpointed.
  for a, b in zip(jax.tree.leaves(want), jax.tree.leaves(got), strict=True):
    np.testing.assert_array_equal(a, b)
  with open(ref / 'metrics.jsonl') as f:
    rows = [json.loads(line) for line in f if '"augment_p"' in line]
  assert len(rows) == 6 and all('augment_rt' in r for r in rows)
  assert (ref / 'curves.png').is_file()


def test_a_checkpoint_written_without_p_restores_it_as_zero():
  config = load_config('mnist_cgan')  # The fixture's config (tests/test_conditions.py).
  config.model.latent_dim, config.model.g_width, config.model.d_width = 8, 4, 4
  config.augment.ada_target = 0.6
  workdir = os.path.join(ROOT, 'tests', 'data', 'label_only_run')
  _, step, state = experiment.restore_for_inference(config, workdir)
  assert step > 0 and float(jax.device_get(state.augment['p'])) == 0.0


def test_per_class_takes_bench_low_data_subsets():
  from bench import low_data  # pylint: disable=g-import-not-at-top

  full = data.load('embedded:mnist', 'train')
  config = load_config('mnist_dcgan')
  config.data.per_class, config.data.per_class_seed = 10, 2
  cut = data.load('embedded:mnist', 'train', config.data)
  images, labels = low_data.subset(full.images, full.labels, 10, 2)
  np.testing.assert_array_equal(cut.images, images)
  np.testing.assert_array_equal(cut.labels, labels)
  assert np.bincount(cut.labels).tolist() == [10] * 10
  assert len(data.load('embedded:mnist', 'test', config.data)) == 1000  # Judged on all.
  assert len(data.load('embedded:mnist', 'train', config.data, whole=True)) == 4000
  config.data.per_class = 10_000
  with pytest.raises(UserError, match=r'config.data.per_class=10000 is more than class \d+ holds'):
    data.load('embedded:mnist', 'train', config.data)


def test_per_class_cuts_the_condition_tables_alike():
  config = load_config('mnist_attributes')
  config.data.per_class = 5
  run, *_ = experiment.setup(config, '')
  assert len(run.source) == 50 and len(run.conditions.labels) == 50


def test_too_many_per_class_is_one_line_and_writes_nothing(tmp_path):
  out = subprocess.run(
    [
      sys.executable,
      os.path.join(ROOT, 'launch.py'),
      '--config=configs/mnist_dcgan.py:smoke',
      f'--workdir={tmp_path / "run"}',
      '--config.data.per_class=401',
    ],
    cwd=ROOT,
    capture_output=True,
    text=True,
  )
  labels = data.load('embedded:mnist', 'train').labels
  smallest = np.bincount(labels).argmin()
  assert out.returncode == 2
  assert out.stderr.strip().splitlines() == [
    f'error: config.data.per_class=401 is more than class {smallest} holds '
    f'({np.bincount(labels).min()} training examples)'
  ]
  assert not (tmp_path / 'run').exists()


CORE = ('gan.py', 'gan_builder.py', 'train.py', 'gan_experiment.py')


def test_the_core_names_no_augmentation():
  for name in CORE:
    with open(os.path.join(ROOT, 'gan_jax', name)) as f:
      code = f.read()
    for word in ('ada', 'diffaugment', 'diff_augment', 'augment_policy', 'policy'):
      assert not re.search(rf'\b{word}\b', code, re.I), (name, word)


def test_limited_data_study_smoke(tmp_path, capsys):
  from bench import limited_data  # pylint: disable=g-import-not-at-top

  judge = str(tmp_path / 'judge')
  main.run(load_config('mnist_classifier'), judge)
  out = str(tmp_path / 'limited.json')
  args = ['--smoke', '--per_class=5', '--seeds=0', '--num_samples=100', '--leak_per_class=5']
  args += ['--leak_samples=50', f'--judge={judge}', f'--workroot={tmp_path / "runs"}']
  limited_data.main([*args, f'--out={out}'])
  with open(out) as f:
    rows = json.load(f)['rows']
  assert [r['arm'] for r in rows] == list(limited_data.ARMS)
  assert all(r['per_class'] == 5 and r['fid'] > 0 and 'load_1min' in r for r in rows)
  ada = rows[-1]
  assert ada['p_curve'] and all(0.0 <= p <= 1.0 for _, p, _ in ada['p_curve'])
  assert set(ada['leak']) == {'slant', 'width', 'height', 'thickness', 'brightness'}
  assert '| 5 |' in capsys.readouterr().out and not (tmp_path / 'limited.md').exists()
  assert (tmp_path / 'limited.png').stat().st_size > 0
  assert (tmp_path / 'limited_p.png').stat().st_size > 0
  limited_data.main([*args, f'--out={out}'])  # Finished runs are read, not trained again.
  assert len(os.listdir(tmp_path / 'runs')) == 3
  with pytest.raises(SystemExit):
    limited_data.main([*args, '--arms=none,mixup', f'--out={out}'])
