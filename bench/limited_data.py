"""Few images, good GANs: the default recipe on N digits per class with no augmentation,
DiffAugment's fixed policy or ADA, at equal steps, judged against the 1,000 held-out digits.

  python bench/limited_data.py --per_class=10,50,100,400 --seeds=0,1,2 --out=docs/limited_data.json
  python bench/limited_data.py --smoke --workroot=/tmp/limited --out=/tmp/limited.json

Each run is configs/<--gan>.py with `data.per_class` = N and `data.per_class_seed` = `seed`
(the same subsets as bench/low_data.py, so its arms stay paired), `seed` = seed, --steps
steps, and one arm: `none`, `diffaugment` (`augment.policy` = --policy) or `ada`
(`augment.ada_target` = --ada_target, `augment.ada_kimg` = --ada_kimg). Each is judged by the
classifier in --judge on --num_samples samples against the held-out split: classifier-FID,
KID, precision, recall, class accuracy. ADA runs also keep p's curve (metrics.jsonl). At N in
--leak_per_class the samples' and the N training digits' morphometrics (slant, width, height,
thickness) and mean brightness are compared: the difference of means and of standard
deviations in units of the real standard deviation (augmentations must not leak into G).

A finished run leaves `judged.json` in --workroot/n<N>_seed<seed>_<arm>/ and is read, not
trained again; --out merges one row per (per_class, seed, arm) with common.machine() (a rerun
replaces its rows, keeps the others). Prints a markdown table of medians with every seed's
value (docs/limited_data.md holds it) and writes, beside --out, a PNG of FID against digits
per class (log x, one line per arm).
"""

import argparse
import json
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # pylint: disable=g-import-not-at-top

from bench import common  # pylint: disable=g-import-not-at-top
from gan_jax import data  # pylint: disable=g-import-not-at-top
from gan_jax import evaluate  # pylint: disable=g-import-not-at-top
from gan_jax import experiment as experiment_lib  # pylint: disable=g-import-not-at-top
from gan_jax import generation  # pylint: disable=g-import-not-at-top
from gan_jax import main as gan_main  # pylint: disable=g-import-not-at-top
from gan_jax import morpho  # pylint: disable=g-import-not-at-top

ARMS = ('none', 'diffaugment', 'ada')
LEAK = ('slant', 'width', 'height', 'thickness')
COLUMNS = ('fid', 'kid', 'precision', 'recall', 'class_accuracy')


def row_key(row: dict) -> tuple:
  return row['per_class'], row['seed'], row['arm']


def run_config(args, per_class: int, seed: int, arm: str):
  config = common.load_config(args.gan, 'smoke' if args.smoke else None)
  config.seed = seed
  config.data.per_class, config.data.per_class_seed = per_class, seed
  config.eval.classifier_workdir = ''  # Judged once, afterwards.
  config.eval.reference_split = 'test'
  config.eval.num_samples = args.num_samples
  config.augment.policy = args.policy if arm == 'diffaugment' else ''
  if arm == 'ada':
    config.augment.ada_target, config.augment.ada_kimg = args.ada_target, args.ada_kimg
  if not args.smoke:
    config.train.num_steps = args.steps
  config.train.progress_every_secs = 60.0
  return config


def leak(images, real_images) -> dict:
  """Per measure: (mean difference, SD difference) over the real SD, and the values."""
  fake, real = morpho.measure(images), morpho.measure_cached(real_images)
  fake['brightness'] = images.reshape(len(images), -1).mean(1) / 255.0
  real['brightness'] = real_images.reshape(len(real_images), -1).mean(1) / 255.0
  result = {}
  for name in (*LEAK, 'brightness'):
    f, r = fake[name][np.isfinite(fake[name])], real[name][np.isfinite(real[name])]
    sd = float(np.std(r))
    result[name] = dict(
      mean_diff=float((np.mean(f) - np.mean(r)) / sd),
      sd_diff=float((np.std(f) - sd) / sd),
      fake_mean=float(np.mean(f)),
      real_mean=float(np.mean(r)),
      fake_sd=float(np.std(f)),
      real_sd=sd,
    )
  return result


def p_curve(workdir: str) -> list:
  with open(os.path.join(workdir, 'metrics.jsonl')) as f:
    rows = [json.loads(line) for line in f]
  return [(r['step'], r['augment_p'], r.get('augment_rt')) for r in rows if 'augment_p' in r]


def run_one(args, judge, per_class: int, seed: int, arm: str) -> dict:
  """Trains (unless done) and judges one run; its row, with the machine it trained on."""
  workdir = os.path.join(args.workroot, f'n{per_class}_seed{seed}_{arm}')
  done = os.path.join(workdir, 'judged.json')
  if os.path.isfile(done):
    with open(done) as f:
      return json.load(f)
  machine, start = common.machine(), time.monotonic()
  config = run_config(args, per_class, seed, arm)
  gan_main.run(config, workdir)
  wall_s = time.monotonic() - start
  experiment, step, state = experiment_lib.restore_for_inference(config, workdir)
  gan = experiment.gan
  images, labels = generation.generate_images(gan, state, args.num_samples, seed)
  row = dict(per_class=per_class, seed=seed, arm=arm, step=step, gan=args.gan, wall_s=wall_s)
  row.update(machine)
  row.update(evaluate.judge_images(judge, images, config.eval, config.data, labels, 10))
  row = {k: v for k, v in row.items() if not k.startswith('class_accuracy_')}
  if arm == 'ada':
    row.update(ada_target=args.ada_target, ada_kimg=args.ada_kimg, p_curve=p_curve(workdir))
  if arm == 'diffaugment':
    row['policy'] = args.policy
  if per_class in args.leak_per_class:
    real, _ = data.all_images(data.load(config.data.source, 'train', config.data))
    row['leak'] = leak(np.asarray(images[: args.leak_samples]), real)
  common.write_json(done, row)
  return row


def medians(rows, per_class: int, arm: str, column: str):
  values = {r['seed']: r[column] for r in rows if (r['per_class'], r['arm']) == (per_class, arm)}
  return (statistics.median(values.values()) if values else float('nan')), values


def markdown(rows, args, machine: dict) -> str:
  lines = [
    f'CPU: {machine["cpu"]} ({machine["cpu_family_model"]}); {machine["date"]}; GAN {args.gan}, '
    f'{args.steps} steps each; DiffAugment {args.policy!r}; ADA target {args.ada_target}, '
    f'ada_kimg {args.ada_kimg}; {args.num_samples} samples against the 1,000 held-out digits, '
    'judge ' + os.path.relpath(args.judge) + '. Medians over seeds, each seed in brackets.',
    '',
    '| digits per class | ' + ' | '.join(f'FID {a}' for a in ARMS) + ' | ADA p at the end |',
    '|---' * (len(ARMS) + 2) + '|',
  ]
  for n in sorted({r['per_class'] for r in rows}):
    cells = []
    for arm in ARMS:
      median, values = medians(rows, n, arm, 'fid')
      seeds = ', '.join(f'{values[s]:.2f}' for s in sorted(values))
      cells.append(f'{median:.2f} ({seeds})' if values else '-')
    ps = [r['p_curve'][-1][1] for r in rows if (r['per_class'], r['arm']) == (n, 'ada')]
    cells.append(', '.join(f'{p:.2f}' for p in ps) or '-')
    lines.append(f'| {n} | ' + ' | '.join(cells) + ' |')
  return '\n'.join(lines) + '\n'


def plot(rows, path: str) -> None:
  fig, ax = common.axes()
  for arm in ARMS:
    ns = sorted({r['per_class'] for r in rows if r['arm'] == arm})
    if not ns:
      continue
    stats = [medians(rows, n, arm, 'fid') for n in ns]
    low = [min(v.values()) for _, v in stats]
    high = [max(v.values()) for _, v in stats]
    ax.plot(ns, [m for m, _ in stats], marker='o', label=arm)
    ax.fill_between(ns, low, high, alpha=0.2)
  ax.set_xscale('log')
  ax.set_yscale('log')
  ax.set_xlabel('training digits per class')
  ax.set_ylabel('classifier-FID vs held-out digits (median, range)')
  ax.legend()
  ax.grid(alpha=0.3)
  fig.savefig(path, dpi=100)


def p_plot(rows, path: str) -> None:
  """ADA's p over the steps of every ADA run, one colour per digits-per-class count."""
  fig, ax = common.axes()
  runs = sorted((r['per_class'], r['seed'], r['p_curve']) for r in rows if r.get('p_curve'))
  colours = {n: f'C{i}' for i, n in enumerate(sorted({n for n, _, _ in runs}))}
  for n, seed, curve in runs:
    steps, ps = [c[0] for c in curve], [c[1] for c in curve]
    ax.plot(
      steps,
      ps,
      color=colours[n],
      alpha=0.8,
      label=f'{n} per class' if seed == min(s for m, s, _ in runs if m == n) else None,
    )
  ax.set_xlabel('step')
  ax.set_ylabel("ADA's p")
  ax.legend()
  ax.grid(alpha=0.3)
  fig.savefig(path, dpi=100)


def parser() -> argparse.ArgumentParser:
  p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  p.add_argument('--per_class', default='10,50,100,400')
  p.add_argument('--seeds', default='0,1,2')
  p.add_argument('--arms', default=','.join(ARMS))
  p.add_argument('--gan', default='mnist_fast')
  p.add_argument('--steps', type=int, default=5500)
  p.add_argument('--policy', default='translation,cutout')
  p.add_argument('--ada_target', type=float, default=0.6)
  p.add_argument('--ada_kimg', type=float, default=20.0)
  p.add_argument('--num_samples', type=int, default=5000)
  p.add_argument('--leak_per_class', default='50,400')
  p.add_argument('--leak_samples', type=int, default=1000)
  p.add_argument('--judge', default='runs/mnist_classifier')
  p.add_argument('--workroot', default='runs/limited_data')
  p.add_argument('--out', default='docs/limited_data.json')
  p.add_argument('--smoke', action='store_true', help="the GAN's smoke variant, for tests")
  return p


def checked(p: argparse.ArgumentParser, args):
  """`args` with its lists parsed (`counts`, `seed_list`, `leak_per_class`); a bad one is
  argparse's one-line error (exit 2)."""
  try:
    args.leak_per_class = [int(n) for n in args.leak_per_class.split(',') if n]
    args.counts = counts = [int(n) for n in args.per_class.split(',')]
    args.seed_list = [int(s) for s in args.seeds.split(',')]
  except ValueError as e:
    p.error(f'--per_class, --seeds and --leak_per_class take integers ({e})')
  unknown = set(args.arms.split(',')) - set(ARMS)
  if unknown:
    p.error(f'unknown --arms {sorted(unknown)}: choose from {", ".join(ARMS)}')
  if min(counts) < 1 or min(args.ada_target, args.ada_kimg, args.num_samples) <= 0:
    p.error('--per_class, --ada_target, --ada_kimg and --num_samples must be positive')
  return args


def main(argv=None):
  p = parser()
  args = checked(p, p.parse_args(argv))
  existing = common.claim_json(args.out, 'limited_data')
  machine = common.machine()
  judge = evaluate.load_judge(args.judge)
  rows = []
  for per_class in args.counts:
    for seed in args.seed_list:
      for arm in args.arms.split(','):
        rows.append(run_one(args, judge, per_class, seed, arm))
        print(json.dumps({k: v for k, v in rows[-1].items() if k in (*COLUMNS, 'arm')}))
        common.write_json(args.out, common.with_rows(existing, 'limited_data', rows, row_key))
  plot(rows, os.path.splitext(args.out)[0] + '.png')
  p_plot(rows, os.path.splitext(args.out)[0] + '_p.png')
  print(markdown(rows, args, machine))


if __name__ == '__main__':
  main()
