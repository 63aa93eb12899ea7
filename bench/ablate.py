"""Trains each MNIST GAN config for the same number of steps and tabulates their metrics.

  python bench/ablate.py --steps 2000 --out runs/ablation.md
  python bench/ablate.py --configs mnist_cgan,mnist_cgan:loss.r1_gamma=0.0   # one part off

A run is a config name, optionally followed by `:field=value` overrides (values are Python
literals), so one part can be switched off or on against the same step budget.

Every config trains on the embedded digits in `<workroot>/<config>` (a rerun resumes or
reuses finished runs); the judge is the classifier in --classifier_workdir (trained first
with configs/mnist_classifier.py if missing). The table gives classifier-feature FID, KID,
precision, recall, density, coverage, per-class accuracy for conditional models and wall
time, beside the real-data floor: held-out real test digits against the same reference.

--out is the markdown table of this run; the JSON beside it holds the rows by run name, each
with common.machine(): a rerun replaces the rows of the names it reruns and keeps the others.
"""

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # pylint: disable=g-import-not-at-top

from bench import common  # pylint: disable=g-import-not-at-top
from gan_jax import evaluate  # pylint: disable=g-import-not-at-top
from gan_jax import experiment as experiment_lib
from gan_jax import main

# The four MNIST configs, then the parts that matter switched one at a time: mnist_cgan
# without its R1 penalty, and mnist_dcgan with it.
CONFIGS = (
  'mnist_mlp_gan',
  'mnist_dcgan',
  'mnist_cgan',
  'mnist_sngan',
  'mnist_cgan:loss.r1_gamma=0.0',
  'mnist_dcgan:loss.r1_gamma=1.0',
)
COLUMNS = ('fid', 'kid', 'precision', 'recall', 'density', 'coverage', 'class_accuracy')
TABLE = 'Classifier-feature metrics after '  # How the markdown table starts.


def train_judge(workdir: str) -> evaluate.Judge:
  if not os.path.isdir(os.path.join(workdir, 'checkpoints')):
    print(f'training the judge classifier in {workdir}', flush=True)
    main.run(common.load_config('mnist_classifier'), workdir)
  return evaluate.load_judge(workdir)


def train_and_judge(name: str, steps: int, workroot: str, judge) -> dict:
  config = common.load_config(name)
  config.train.num_steps = steps
  config.train.progress_every_secs = 30.0
  workdir = os.path.join(workroot, name.replace(':', '__'))
  timing_path = os.path.join(workdir, 'ablation_wall_s.json')
  if not os.path.exists(timing_path):
    start = time.monotonic()
    main.run(config, workdir)
    os.makedirs(workdir, exist_ok=True)
    with open(timing_path, 'w') as f:
      json.dump({'steps': steps, 'wall_s': time.monotonic() - start}, f)
  with open(timing_path) as f:
    wall = json.load(f)['wall_s']
  experiment, step, state = experiment_lib.restore_for_inference(config, workdir)
  result = evaluate.judge_generator(judge, experiment.gan, state, config.eval, config.data)
  return {**result, 'step': step, 'wall_s': wall}


def markdown(rows: dict[str, dict], steps: int, judge, eval_config) -> str:
  lines = [
    f'Classifier-feature metrics after {steps} steps (batch 64), {eval_config.num_samples} '
    f'generated images against the {eval_config.reference_split} split, judge '
    f'`{os.path.relpath(judge.workdir)}` at step {judge.step}. Lower FID/KID is better; '
    'higher precision/recall/density/coverage is better.',
    '',
    '| run | ' + ' | '.join(COLUMNS) + ' | wall time |',
    '|---' * (len(COLUMNS) + 2) + '|',
  ]
  for name, row in rows.items():
    cells = [f'{row[c]:.3f}' if c in row and np.isfinite(row[c]) else '-' for c in COLUMNS]
    wall = f'{row["wall_s"] / 60:.1f} min' if 'wall_s' in row else '-'
    lines.append(f'| {name} | ' + ' | '.join(cells) + f' | {wall} |')
  for name, row in rows.items():
    per_class = [row.get(f'class_accuracy_{c}') for c in range(10)]
    if per_class[0] is not None:
      lines += [
        '',
        f'{name}: classifier accuracy on generated images of each requested class: '
        + ', '.join(f'{c}: {a:.3f}' for c, a in enumerate(per_class)),
      ]
  return '\n'.join(lines) + '\n'


def main_(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--steps', type=int, default=2000)
  parser.add_argument('--configs', default=','.join(CONFIGS))
  parser.add_argument('--workroot', default='runs/ablation')
  parser.add_argument('--classifier_workdir', default='runs/mnist_classifier')
  parser.add_argument('--out', default='')
  args = parser.parse_args(argv)
  if args.out:
    common.table_path(args.out, TABLE)
  existing = common.claim_json(json_beside(args.out), 'ablate')
  machine = common.machine()
  judge = train_judge(args.classifier_workdir)
  eval_config = common.load_config('mnist_dcgan').eval
  data_config = common.load_config('mnist_dcgan').data
  rows = {}
  for name in args.configs.split(','):
    rows[name] = {**train_and_judge(name, args.steps, args.workroot, judge), **machine}
    print(name, json.dumps(rows[name]), flush=True)
  floor = evaluate.real_data_floor(judge, eval_config, data_config)
  rows['real test digits (floor)'] = {**floor, **machine}
  table = markdown(rows, args.steps, judge, eval_config)
  print(table)
  write_table(args.out, table)
  if args.out:
    common.write_json(json_beside(args.out), common.with_rows(existing, 'ablate', rows))


def json_beside(out: str) -> str:
  """The JSON beside the markdown table `out` ('' for none)."""
  return os.path.splitext(out)[0] + '.json' if out else ''


def write_table(out: str, table: str) -> None:
  """The markdown `table` to `out` ('' = nowhere)."""
  if not out:
    return
  os.makedirs(os.path.dirname(out) or '.', exist_ok=True)
  with open(out, 'w') as f:
    f.write(table)


if __name__ == '__main__':
  main_()
