"""Evaluators chosen by config: the registry, schedules, and what a run leaves for people to
look at (curves.png, training time that continues across resumes)."""

import json
import os
import re
import subprocess
import sys

import ml_collections
import numpy as np
from PIL import Image
import pytest

from gan_jax import evaluators
from gan_jax import main
from gan_jax import train
from gan_jax.errors import UserError
from tests.conftest import ROOT
from tests.conftest import load_config


def read_rows(workdir):
  with open(os.path.join(workdir, 'metrics.jsonl')) as f:
    return [json.loads(line) for line in f]


@evaluators.register('test_mean_brightness')
class MeanBrightness(evaluators.Evaluator):
  """A new evaluator, added by registering it: the mean grey level of a few samples."""

  headline = ('mean_brightness',)
  calls: list = []

  def run(self, state, step):
    images, _ = self.experiment.generate_images(state, self.num_samples or 8, seed=0)
    MeanBrightness.calls.append(step)
    return {'mean_brightness': float(np.mean(images)), 'mean_brightness_samples': len(images)}


def with_evals(config, **evals):
  """`config` whose config.evals is replaced by `evals` (name -> dict)."""
  with config.unlocked():
    config.evals = ml_collections.ConfigDict(evals)
  return config


def test_a_registered_evaluator_runs_on_its_own_schedule_without_touching_the_loop(
  tmp_path, capsys
):
  config = load_config('mnist_dcgan')  # 6 steps, train.eval_every 3.
  with_evals(
    config,
    bright=dict(type='test_mean_brightness', every=2, num_samples=4),
    never=dict(type='test_mean_brightness', every=-1, num_samples=4),  # --mode=eval only.
  )
  MeanBrightness.calls.clear()
  main.run(config, str(tmp_path))
  assert MeanBrightness.calls == [2, 4, 6]
  rows = [r for r in read_rows(tmp_path) if 'mean_brightness' in r]
  assert [r['step'] for r in rows] == [2, 4, 6]
  assert all(0 <= r['mean_brightness'] <= 255 and r['mean_brightness_samples'] == 4 for r in rows)
  out = capsys.readouterr().out
  assert 'eval at step 4: mean_brightness ' in out
  # --mode=eval runs every configured evaluator, scheduled or not.
  MeanBrightness.calls.clear()
  result = main.run(config, str(tmp_path), 'eval')
  assert MeanBrightness.calls == [6, 6] and 'mean_brightness' in result


def test_unconfigured_judges_are_skipped_and_eval_mode_says_what_is_missing(tmp_path):
  config = load_config('mnist_dcgan')  # classifier_metrics and inception, neither configured.
  assert evaluators.configured(config) == []
  main.run(config, str(tmp_path))
  assert not any('fid' in r for r in read_rows(tmp_path))
  with pytest.raises(UserError, match='needs a judge'):
    main.run(config, str(tmp_path), 'eval')


def test_an_evaluator_for_another_kind_of_experiment_is_refused(tmp_path):
  config = with_evals(load_config('mnist_dcgan'), acc=dict(type='test_accuracy', every=0))
  with pytest.raises(UserError, match='config.evals.acc'):
    main.run(config, str(tmp_path))
  assert not os.listdir(tmp_path)


def test_unknown_evaluator_type_is_one_line_and_touches_nothing(tmp_path):
  workdir = tmp_path / 'run'
  result = subprocess.run(
    [
      sys.executable,
      'launch.py',
      '--config=configs/mnist_dcgan.py:smoke',
      f'--workdir={workdir}',
      '--config.evals.classifier_metrics.type=fidd',
    ],
    cwd=ROOT,
    capture_output=True,
    text=True,
    timeout=300,
  )
  assert result.returncode == 2
  lines = result.stderr.strip().splitlines()
  assert len(lines) == 1, result.stderr
  assert "unknown evaluator type 'fidd'" in lines[0] and 'classifier_metrics' in lines[0]
  assert not workdir.exists()


def test_every_run_leaves_curves_and_training_time_that_continues_across_resumes(tmp_path):
  config = load_config('mnist_dcgan')
  config.train.num_steps = 4
  main.run(config, str(tmp_path))
  curves = tmp_path / 'curves.png'
  with Image.open(curves) as image:
    assert image.size[0] > 200 and image.size[1] > 200
  first = read_rows(tmp_path)
  times = [r['train_time_s'] for r in first if 'train_time_s' in r]
  assert times and all(t > 0 for t in times) and times == sorted(times)
  config.train.num_steps = 6  # Resume from step 4.
  main.run(config, str(tmp_path))
  resumed = [r for r in read_rows(tmp_path) if r['step'] > 4 and 'train_time_s' in r]
  assert resumed and min(r['train_time_s'] for r in resumed) > max(times)


def test_classifier_runs_judge_themselves_and_draw_curves(tmp_path):
  config = load_config('mnist_classifier')
  main.run(config, str(tmp_path))
  accuracies = [r for r in read_rows(tmp_path) if 'test_accuracy' in r]
  assert [r['step'] for r in accuracies] == [3, 6]
  assert os.path.getsize(tmp_path / 'curves.png') > 0


def test_training_clock_pauses_and_resumes():
  clock = train.TrainClock(resumed_seconds=100.0)
  before = clock.seconds()
  with clock.paused():
    paused_at = clock.seconds()
  assert before >= 100.0 and clock.seconds() - paused_at < 0.05


def test_an_evaluator_reads_its_own_options_from_its_entry():
  """big_vision's from_config: an option only one evaluator reads lives in its
  config.evals.NAME entry; the shared config.eval field stays the fallback."""
  config = load_config('mnist_dcgan')
  assert evaluators.configured(config) == []
  with config.unlocked():
    config.evals.classifier_metrics.classifier_workdir = 'runs/judge'
    config.evals.inception.weights = ''
  chosen = evaluators.configured(config)
  assert [name for name, _, _ in chosen] == ['classifier_metrics']
  cls, spec = chosen[0][1], chosen[0][2]
  assert cls.option(config, spec, 'classifier_workdir') == 'runs/judge'
  config.evals.classifier_metrics.classifier_workdir = ''
  config.eval.classifier_workdir = 'runs/shared'
  assert cls.option(config, spec, 'classifier_workdir') == 'runs/shared'
  config.evals.inception.weights = 'weights.pth'
  assert 'inception' in [name for name, _, _ in evaluators.configured(config)]


@pytest.mark.parametrize(
  'field, value, message',
  [
    ('levels', 0, 'config.evals.control.levels must be >= 1, got 0'),
    ('weights', 'x.pth', 'unknown field(s) weights'),
  ],
)
def test_bad_evaluator_options_are_one_line_errors(field, value, message):
  config = load_config('mnist_attributes')
  with config.unlocked():
    config.evals.control[field] = value
  with pytest.raises(UserError, match=re.escape(message)):
    evaluators.configured(config)
