"""curves.png from metrics.jsonl: what is drawn, what is left out, and a readable PNG."""

import json
import os
import subprocess
import sys

from PIL import Image
import pytest

from gan_jax import plots
from tests.conftest import ROOT


def write_metrics(workdir, rows, tail=''):
  os.makedirs(workdir, exist_ok=True)
  with open(os.path.join(workdir, 'metrics.jsonl'), 'w') as f:
    f.writelines(json.dumps(r) + '\n' for r in rows)
    f.write(tail)


def gan_rows(steps=2000, timed=True):
  """A GAN run's rows: a training row every 10 steps, an evaluation every 500."""
  rows = []
  for step in range(10, steps + 1, 10):
    time_s = {'train_time_s': 5.0 + step / 40} if timed else {}
    rows.append(
      {'step': step, 'd_loss': 0.7, 'g_loss': 2.0 + step / steps, 'steps_per_sec': 40.0} | time_s
    )
    if step % 500 == 0:
      rows.append(
        {
          'step': step,
          'fid': 100.0 / step,
          'kid': 1.0 / step,
          'kid_std': 0.001,
          'precision': 0.5,
          'recall': 0.4,
          'class_accuracy': 0.9,
          'class_accuracy_3': 0.8,
          'eval_judge': 'runs/mnist_classifier@4000',
          'eval_num_samples': 2000,
          'floor_fid': 0.3,
          'is': float('nan'),
        }
        | time_s
      )
  return rows


def png_size(path):
  with Image.open(path) as image:
    image.load()  # Reads every pixel: a truncated file raises.
    return image.size


def test_gan_curves_with_training_time(tmp_path):
  workdir = str(tmp_path / 'mnist_fast')
  rows = gan_rows()
  rows.append({'step': 2000, 'mode': 'eval', 'fid': 1e6, 'inception_fid': 3.0})  # --mode=eval.
  write_metrics(workdir, rows, tail='{"step": 2010, "d_loss": 0.')  # Cut by a kill.
  losses, judged = plots.curves(plots.read_rows(os.path.join(workdir, 'metrics.jsonl')))
  assert sorted(losses) == ['d_loss', 'g_loss']
  assert len(losses['g_loss']) == 200 and losses['g_loss'][-1] == (2000, 55.0, 3.0)
  # Priority order first, then alphabetical; no provenance, floor, per-class value, spread,
  # non-finite value or --mode=eval row.
  assert list(judged) == ['fid', 'kid', 'class_accuracy', 'precision', 'recall']
  assert [p[0] for p in judged['fid']] == [500, 1000, 1500, 2000]
  assert judged['fid'][-1] == (2000, 55.0, 0.05)

  path = plots.write_curves(workdir)
  assert path == os.path.join(workdir, 'curves.png')
  width, height = png_size(path)
  assert width == 1200 and height == 100 * (1 + 2 * 6)  # Two columns; loss + 5 metric rows.
  assert sorted(os.listdir(workdir)) == ['curves.png', 'metrics.jsonl']  # No temp file left.


def test_classifier_curves(tmp_path):
  workdir = str(tmp_path / 'classifier')
  rows = []
  for step in range(100, 1001, 100):
    rows.append(
      {'step': step, 'loss': 1.0 / step, 'accuracy': 0.9, 'steps_per_sec': 9.0, 'train_time_s': 1.0}
    )
    rows.append({'step': step, 'test_accuracy': 0.95, 'test_loss': 0.2, 'train_time_s': 1.0})
  write_metrics(workdir, rows)
  losses, judged = plots.curves(plots.read_rows(os.path.join(workdir, 'metrics.jsonl')))
  assert list(losses) == ['loss'] and list(judged) == ['test_accuracy']
  width, height = png_size(plots.write_curves(workdir))
  assert (width, height) == (1200, 100 * (1 + 2 * 2))


def test_old_run_without_training_time_has_one_column(tmp_path):
  workdir = str(tmp_path / 'old')
  write_metrics(workdir, gan_rows(timed=False))
  width, height = png_size(plots.write_curves(workdir))
  assert (width, height) == (600, 100 * (1 + 2 * 6))


def test_at_most_eight_metric_rows(tmp_path):
  row = {f'metric_{c}': 1.0 for c in 'abcdefgh'} | {'fid': 2.0, 'modes': 10, 'mode_kl': 0.1}
  _, judged = plots.curves([{'step': 1, **row}])
  assert list(judged) == ['fid', 'modes', 'mode_kl'] + [f'metric_{c}' for c in 'abcde']


@pytest.mark.parametrize(
  'content', [None, '', '{"step": 1, "d_lo', '{"step": 1, "mode": "eval"}\n']
)
def test_nothing_to_draw(tmp_path, content):
  if content is not None:
    (tmp_path / 'metrics.jsonl').write_text(content)
  assert plots.write_curves(str(tmp_path)) is None
  assert not (tmp_path / 'curves.png').exists()


def test_import_does_not_import_matplotlib():
  code = 'import sys, gan_jax.plots; print("matplotlib" in sys.modules)'
  out = subprocess.run(
    [sys.executable, '-c', code], cwd=ROOT, capture_output=True, text=True, check=True
  )
  assert out.stdout.strip() == 'False'


def test_an_augmentations_state_is_drawn_from_the_training_rows(tmp_path):
  workdir = str(tmp_path / 'ada')
  rows = gan_rows(steps=200)
  for row in rows:
    if 'steps_per_sec' in row:
      row.update(augment_p=row['step'] / 400, augment_rt=0.6)
  write_metrics(workdir, rows)
  losses, judged = plots.curves(plots.read_rows(os.path.join(workdir, 'metrics.jsonl')))
  assert sorted(losses) == ['d_loss', 'g_loss']
  assert judged['augment_p'][-1] == (200, 10.0, 0.5) and len(judged['augment_rt']) == 20
  assert plots.write_curves(workdir)
