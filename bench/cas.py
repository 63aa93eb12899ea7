"""CAS and GAN-test of trained class-conditional GANs over several draws: --mode=cas for every
(config, classifier recipe, generated count, draw seed), then a table of means with standard
errors over the draw seeds.

Each GAN is the run in --runs/<config> (trained by its README command; this script trains no
GAN). The real-trained arm of a recipe is reused from --runs/<recipe name> when that run was
trained with the very same recipe (e.g. runs/mnist_classifier), else trained once per CAS
folder. A pass whose cas.json exists is read, not rerun, so an interrupted study resumes.

Each pass is a row of --out's `rows`, with common.machine(); the rows merge by (config, recipe,
count, seed): a rerun replaces its rows and keeps the others. The markdown table beside --out
is this run's rows.

  python bench/cas.py --configs=mnist_cgan,mnist_r3gan,mnist_fast \\
    --recipes=configs/mnist_classifier.py,configs/mnist_classifier_aug.py \\
    --counts=4000,20000 --seeds=0,1,2 --out=docs/cas_study.json
"""

import argparse
import collections
import datetime
import json
import math
import os
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench import common  # pylint: disable=g-import-not-at-top
from gan_jax import cas  # pylint: disable=g-import-not-at-top
from gan_jax import main as gan_main  # pylint: disable=g-import-not-at-top


def row_key(row: dict) -> tuple:
  """What a row of --out is the measurement of."""
  return row['config'], row['recipe'], row['count'], row['seed']


def newest_step(workdir: str) -> int | None:
  folder = os.path.join(workdir, 'checkpoints')
  steps = [int(d) for d in os.listdir(folder) if d.isdigit()] if os.path.isdir(folder) else []
  return max(steps, default=None)


def one_pass(args, name: str, recipe: str, count: int, seed: int) -> dict:
  """One --mode=cas pass (or its cas.json when it has run before) as a table row."""
  config = common.load_config(name, 'smoke' if args.smoke else None)
  spec = recipe + (':smoke' if args.smoke else '')
  config.eval.cas_classifier_config = spec
  config.eval.cas_num_samples = count
  config.eval.cas_seed = seed
  stem = os.path.splitext(os.path.basename(recipe))[0]
  config.eval.classifier_workdir = os.path.join(args.runs, stem)
  workdir = os.path.join(args.runs, name)
  folder = cas.pass_folder(workdir, newest_step(workdir), seed, count, spec, cas.load_recipe(spec))
  done = os.path.join(folder, 'cas.json')
  if os.path.isfile(done):
    with open(done) as f:
      result = json.load(f)
  else:
    result = gan_main.run(config, workdir, 'cas')
  return dict(config=name, recipe=recipe, count=count, seed=seed, **result)


def check_runs(args, names) -> None:
  for name in names:
    workdir = os.path.join(args.runs, name)
    if newest_step(workdir) is None:
      sys.exit(
        f'error: no trained GAN in {workdir!r}: train it first with python launch.py '
        f'--config=configs/{name}.py --workdir={workdir}'
      )


def markdown(rows, cpu: str, minutes: float) -> str:
  lines = [
    f'CPU: {cpu}; {datetime.date.today()}; {minutes:.0f} minutes for the passes not read from '
    'an earlier run; mean ± standard error over the draw seeds (per seed in brackets).',
    '',
    '| config (step) | recipe | generated | CAS | real-data accuracy | CAS / real | GAN-test |',
    '|---|---|---|---|---|---|---|',
  ]
  groups = collections.defaultdict(list)
  for r in sorted(rows, key=lambda r: (r['config'], r['recipe'], r['count'], r['seed'])):
    groups[r['config'], r['step'], r['recipe'], r['count']].append(r)
  for (name, step, recipe, count), group in groups.items():
    cas, se = common.mean_se([r['cas'] for r in group])
    per_seed = ', '.join(f'{r["cas"]:.3f}' for r in group)
    spread = '' if math.isnan(se) else f' ± {se:.4f}'
    real = statistics.fmean(r['real_accuracy'] for r in group)
    gan_test = statistics.fmean(r['gan_test'] for r in group)
    lines.append(
      f'| {name} ({step}) | {os.path.basename(recipe)} | {count:,} | {cas:.4f}{spread} '
      f'({per_seed}) | {real:.4f} | {cas / real:.3f} | {gan_test:.4f} |'
    )
  return '\n'.join(lines) + '\n'


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--configs', default='mnist_cgan,mnist_r3gan,mnist_fast')
  parser.add_argument(
    '--recipes', default='configs/mnist_classifier.py,configs/mnist_classifier_aug.py'
  )
  parser.add_argument('--counts', default='4000,20000')
  parser.add_argument('--seeds', default='0,1,2')
  parser.add_argument('--runs', default='runs', help='the GAN and classifier workdirs')
  parser.add_argument('--out', default='docs/cas_study.json')
  parser.add_argument('--smoke', action='store_true', help="the configs' smoke variants")
  args = parser.parse_args(argv)
  names = args.configs.split(',')
  try:
    counts = [int(c) for c in args.counts.split(',')]
    seeds = [int(s) for s in args.seeds.split(',')]
  except ValueError as e:
    parser.error(f'--counts and --seeds take integers separated by commas: {e}')
  if min(counts) < 1:
    parser.error(f'--counts must be at least 1, got {args.counts}')
  table_file = common.table_path(args.out)
  existing = common.claim_json(args.out, 'cas')
  check_runs(args, names)
  machine = common.machine()
  start = datetime.datetime.now()
  rows = []
  for name in names:
    for recipe in args.recipes.split(','):
      for count in counts:
        for seed in seeds:
          rows.append({**one_pass(args, name, recipe, count, seed), **machine})
          common.write_json(args.out, common.with_rows(existing, 'cas', rows, row_key))
  minutes = (datetime.datetime.now() - start).total_seconds() / 60
  table = markdown(rows, machine['cpu'], minutes)
  with open(table_file, 'w') as f:
    f.write(table)
  print(table)


if __name__ == '__main__':
  main()
