"""Classifier runs and the classifier-feature metrics of generators, end to end (smoke sizes)."""

import glob
import json
import os

import numpy as np
import pytest

from gan_jax import evaluate
from gan_jax import main
from gan_jax.errors import UserError
from tests.conftest import load_config

METRICS = ('fid', 'kid', 'kid_std', 'is', 'is_std', 'precision', 'recall', 'density', 'coverage')


@pytest.fixture(scope='module')
def classifier_run(tmp_path_factory):
  workdir = str(tmp_path_factory.mktemp('classifier'))
  main.run(load_config('mnist_classifier'), workdir)
  return workdir


@pytest.fixture(scope='module')
def judged_gan_run(tmp_path_factory, classifier_run):
  workdir = str(tmp_path_factory.mktemp('gan'))
  config = load_config('mnist_dcgan')
  config.eval.classifier_workdir = classifier_run
  config.eval.num_samples = 64
  main.run(config, workdir)
  return config, workdir


def rows(workdir):
  with open(os.path.join(workdir, 'metrics.jsonl')) as f:
    return [json.loads(line) for line in f]


def test_classifier_run_reports_test_accuracy_and_loads_as_a_judge(classifier_run):
  accuracies = [r['test_accuracy'] for r in rows(classifier_run) if 'test_accuracy' in r]
  assert len(accuracies) == 2 and all(0.0 <= a <= 1.0 for a in accuracies)
  judge = evaluate.load_judge(classifier_run)
  assert judge.step == 6
  probs, features = judge.predict(np.zeros((3, 28, 28, 1), np.uint8))
  assert probs.shape == (3, 10) and features.shape == (3, 128)
  np.testing.assert_allclose(probs.sum(-1), 1.0, rtol=1e-5)


def test_gan_training_logs_every_metric_with_its_provenance(judged_gan_run, classifier_run):
  _, workdir = judged_gan_run
  evals = [r for r in rows(workdir) if 'fid' in r]
  assert [r['step'] for r in evals] == [3, 6]
  for row in evals:
    for name in METRICS:
      assert np.isfinite(row[name]), name
    assert row['eval_num_samples'] == 64 and row['eval_reference_split'] == 'train'
    assert row['eval_classifier'].endswith('@6')
  cached = glob.glob(os.path.join(classifier_run, 'reference_stats', '*.npz'))
  assert [os.path.basename(p) for p in cached] == ['embedded_mnist_train_step6.npz']


def test_eval_mode_prints_a_table_and_appends_a_row(judged_gan_run, capsys):
  config, workdir = judged_gan_run
  result = main.run(config, workdir, 'eval')
  out = capsys.readouterr().out
  assert 'generator' in out and 'real test split' in out and 'fid' in out
  for name in METRICS:
    assert np.isfinite(result[name]) and np.isfinite(result['floor_' + name])
  assert rows(workdir)[-1]['mode'] == 'eval'


def test_eval_truncation_changes_the_judged_noise_and_is_recorded(judged_gan_run, monkeypatch):
  config, workdir = judged_gan_run
  seen = []
  real_generate = evaluate.generation.ema_images
  monkeypatch.setattr(
    evaluate.generation,
    'ema_images',
    lambda gan, state, z, labels: (
      seen.append(np.asarray(z)) or real_generate(gan, state, z, labels)
    ),
  )
  for truncation in (0.0, 0.5):
    config.eval.truncation = truncation
    result = main.run(config, workdir, 'eval')
    assert result['eval_truncation'] == truncation
  plain, truncated = seen
  assert np.abs(plain).max() > 1.5  # 64 x 100 draws of N(0, 1)
  assert np.abs(truncated).max() <= 0.5
  config.eval.truncation = -1.0
  with pytest.raises(UserError, match='truncation'):
    main.run(config, workdir, 'eval')
  config.eval.truncation = 0.0


def test_eval_mode_without_a_judge_is_a_user_error(judged_gan_run):
  config, workdir = judged_gan_run
  config = load_config('mnist_dcgan')
  with pytest.raises(UserError, match='classifier_workdir'):
    main.run(config, workdir, 'eval')


def test_a_gan_workdir_is_not_a_judge(judged_gan_run):
  _, workdir = judged_gan_run
  with pytest.raises(UserError, match='not a classifier'):
    evaluate.load_judge(workdir)


def test_real_data_floor_is_not_fooled_by_class_ordered_splits(monkeypatch):
  """Splits stored class by class (as the embedded one is) must be shuffled before a prefix
  or the IS analogue's consecutive splits are taken: confident 10-class data has IS ~10."""
  labels = np.repeat(np.arange(10), 100)
  probs = np.eye(10)[labels]
  features = np.random.default_rng(0).normal(size=(1000, 8)) + labels[:, None]
  monkeypatch.setattr(evaluate, 'reference_features', lambda *args: (features, probs, labels))
  config = load_config('mnist_dcgan')
  config.eval.num_samples = 500
  floor = evaluate.real_data_floor(None, config.eval, config.data)
  assert floor['is'] > 9.0, floor['is']
