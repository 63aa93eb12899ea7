"""Generated digits as training data when real ones are scarce (Classification Accuracy Score's
practical side): for n real digits per class, a class-conditional GAN trained on those n only,
then the article's classifier in three arms, paired by seed (the same real digits in each):

  real        the n per class, the recipe as it is (no augmentation)
  real+aug    the same with random shifts and rotations (config.augment.max_shift/max_degrees)
  real+aug+gen  the same plus --generated_per_class digits per class from the GAN, the real
              digits repeated so that a --generated_share of the set is generated

Each arm trains --classifier_steps steps of the recipe (batch 128) and is tested on the 1,000
real held-out digits. The GAN is --gan (mnist_fast, the default config) for --gan_steps with
DiffAugment --gan_augment; each GAN setting and each mix has its own folder under
--workroot/n<n>_seed<seed>/, so a rerun with other settings reuses the real arms and nothing
else. --gan_from reuses GANs trained elsewhere instead, one folder per (n, seed): a pattern
with {per_class} and {seed}, e.g. bench/limited_data.py's ADA runs, whose
config.data.per_class subsets are these (a run trained on other digits is refused before any
work). Merges one JSON row per (n, seed, arm), with common.machine(), into --out's `rows` by
(per_class, seed, arm): a rerun replaces its rows and keeps the others. Prints this run's rows
as a markdown table of means with standard errors and the paired difference gen - aug, and
writes a PNG of accuracy against n beside --out.

  python bench/low_data.py --per_class=5,10,50,100,400 --seeds=0,1,2 --out=docs/low_data.json
  python bench/low_data.py --per_class=10,50 --seeds=0,1,2 --out=docs/low_data_ada.json \
      --gan_from='runs/limited_data/n{per_class}_seed{seed}_ada'
  python bench/low_data.py --smoke --workroot=/tmp/low_data --out=/tmp/low_data.json
"""

import argparse
import datetime
import json
import math
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import ml_collections  # pylint: disable=g-import-not-at-top
import numpy as np  # pylint: disable=g-import-not-at-top

from bench import common  # pylint: disable=g-import-not-at-top
from gan_jax import cas  # pylint: disable=g-import-not-at-top
from gan_jax import data  # pylint: disable=g-import-not-at-top
from gan_jax import experiment as experiment_lib  # pylint: disable=g-import-not-at-top
from gan_jax import main as gan_main  # pylint: disable=g-import-not-at-top

ARMS = ('real', 'real+aug', 'real+aug+gen')


def row_key(row: dict) -> tuple:
  """What a row of --out is the measurement of."""
  return row['per_class'], row['seed'], row['arm']


def subset(images, labels, per_class: int, seed: int):
  """The first `per_class` digits of each class in a `seed`-shuffled order (what a config's
  data.per_class and data.per_class_seed train on)."""
  keep = data.per_class_indices(labels, per_class, seed)
  return images[keep], labels[keep]


def save(path: str, images, labels) -> str:
  """Written whole or not at all: mixed.npz's presence means its GAN is done."""
  os.makedirs(os.path.dirname(path), exist_ok=True)
  cas.save_npz(path, images=images, labels=labels.astype(np.int32))
  return path


def train_gan(args, real_npz: str, seed: int, workdir: str):
  """The GAN of --gan on the real subset; returns (experiment, step, state) restored."""
  config = common.load_config(args.gan) if not args.smoke else _smoke(args.gan)
  config.data.source = f'npz:{real_npz}'
  config.seed = seed
  config.augment.policy = args.gan_augment
  if not args.smoke:
    config.train.num_steps = args.gan_steps
  config.eval.classifier_workdir = ''
  gan_main.run(config, workdir)
  return experiment_lib.restore_for_inference(config, workdir)


def _smoke(spec: str):
  name, _ = common.parse_spec(spec)
  return common.load_config(name, 'smoke')


def train_classifier(args, npz: str, seed: int, augmented: bool, workdir: str) -> float:
  recipe = cas.load_recipe(args.recipe)
  recipe.data.source = f'npz:{npz}'
  recipe.data.eval_source = 'embedded:mnist'
  recipe.seed = seed
  if not args.smoke:
    recipe.train.num_steps = args.classifier_steps
  recipe.train.eval_every = recipe.train.num_steps  # Judged once, at the end.
  if augmented:
    recipe.augment.max_shift, recipe.augment.max_degrees = args.max_shift, args.max_degrees
  gan_main.run(recipe, workdir)
  accuracy, _, _ = cas.held_out_accuracy(workdir, data.load('embedded:mnist', 'test'))
  return accuracy


def gan_name(args, per_class: int, seed: int) -> str:
  """The folder of one GAN setting, so that runs of another setting never mix with it."""
  if args.gan_from:
    name = 'from_' + os.path.relpath(reused_workdir(args, per_class, seed))
  else:
    name = f'gan_{args.gan}_{args.gan_steps}_{args.gan_augment or "none"}'
  return re.sub(r'[^\w.,=-]+', '_', name)


def reused_workdir(args, per_class: int, seed: int) -> str:
  return args.gan_from.format(per_class=per_class, seed=seed)


def reused_config(args, per_class: int, seed: int):
  """The config of --gan_from's run for (per_class, seed); exits with a one-line error when it
  is missing or was trained on other digits than this study's subset."""
  workdir = reused_workdir(args, per_class, seed)
  path = os.path.join(workdir, 'config.json')
  if not os.path.isfile(path):
    sys.exit(f'error: --gan_from: no GAN run in {workdir!r} (no config.json)')
  with open(path) as f:
    config = ml_collections.ConfigDict(json.load(f))
  trained_on = (config.data.source, config.data.get('per_class'), config.data.get('per_class_seed'))
  if trained_on != ('embedded:mnist', per_class, seed) or not config.model.get('conditional'):
    sys.exit(
      f'error: --gan_from: {workdir!r} is not a class-conditional GAN of embedded:mnist with '
      f'data.per_class={per_class}, data.per_class_seed={seed} (it has {trained_on})'
    )
  return config


def gan_fields(args, per_class: int, seed: int) -> dict:
  """What a real+aug+gen row records of its GAN."""
  if not args.gan_from:
    return dict(gan=args.gan, gan_steps=args.gan_steps, gan_augment=args.gan_augment)
  config = reused_config(args, per_class, seed)
  aug = config.augment
  kind = f'ada target {aug.ada_target}' if aug.get('ada_target') else aug.policy or 'none'
  return dict(
    gan=reused_workdir(args, per_class, seed),
    gan_steps=config.train.num_steps,
    gan_augment=kind,
  )


def mix(images, labels, generated, share: float):
  """The real digits repeated beside all of `generated`, so that `share` of the set is generated
  (the repeat rounded; at least one copy of the real digits)."""
  repeat = max(1, round(len(generated.labels) * (1 - share) / (share * len(labels))))
  return (
    np.concatenate([np.tile(images, (repeat, 1, 1, 1)), generated.images]),
    np.concatenate([np.tile(labels, repeat), generated.labels]),
  )


def run_one(args, per_class: int, seed: int) -> list[dict]:
  root = os.path.join(args.workroot, f'n{per_class}_seed{seed}')
  train = data.load('embedded:mnist', 'train')
  images, labels = subset(*data.all_images(train), per_class, seed)
  real_npz = save(os.path.join(root, 'real.npz'), images, labels)
  rows = []
  acc = train_classifier(args, real_npz, seed, False, os.path.join(root, 'real'))
  rows.append(dict(per_class=per_class, seed=seed, arm='real', accuracy=acc))
  acc = train_classifier(args, real_npz, seed, True, os.path.join(root, 'real_aug'))
  rows.append(dict(per_class=per_class, seed=seed, arm='real+aug', accuracy=acc))
  gan_root = os.path.join(root, gan_name(args, per_class, seed))
  gen_npz = os.path.join(gan_root, f'generated_{args.generated_per_class}.npz')
  if not os.path.isfile(gen_npz):  # Written whole or not at all: its presence means done.
    if args.gan_from:
      config = reused_config(args, per_class, seed)
      workdir = reused_workdir(args, per_class, seed)
      experiment, step, state = experiment_lib.restore_for_inference(config, workdir)
    else:
      experiment, step, state = train_gan(args, real_npz, seed, os.path.join(gan_root, 'gan'))
    cas.write_generated(experiment, state, step, 10 * args.generated_per_class, seed, gen_npz)
  arm = f'real_aug_gen_{args.generated_per_class}_share{args.generated_share:g}'
  mixed_npz = save(
    os.path.join(gan_root, arm + '.npz'),
    *mix(images, labels, data.npz_source(gen_npz), args.generated_share),
  )
  acc = train_classifier(args, mixed_npz, seed, True, os.path.join(gan_root, arm))
  rows.append(
    dict(
      per_class=per_class,
      seed=seed,
      arm='real+aug+gen',
      accuracy=acc,
      **gan_fields(args, per_class, seed),
      generated_per_class=args.generated_per_class,
      generated_share=args.generated_share,
    )
  )
  return rows


def markdown(rows, args, cpu: str, minutes: float) -> str:
  gan = (
    f'GANs of {args.gan_from}'
    if args.gan_from
    else f'GAN {args.gan} ({args.gan_steps} steps, DiffAugment {args.gan_augment!r})'
  )
  lines = [
    f'CPU: {cpu}; {datetime.date.today()}; {minutes:.0f} minutes in all; {gan}; '
    f'classifier {args.recipe}, {args.classifier_steps} steps; augmentation shift '
    f'{args.max_shift} px, rotation {args.max_degrees} deg; {args.generated_per_class} '
    f'generated digits per class, {args.generated_share:g} of the mixed set; seeds {args.seeds}.',
    '',
    '| real per class | real | real+aug | real+aug+gen | gen - aug (paired) |',
    '|---|---|---|---|---|',
  ]
  for n in sorted({r['per_class'] for r in rows}):
    cells = []
    by_arm = {
      arm: {r['seed']: r['accuracy'] for r in rows if r['per_class'] == n and r['arm'] == arm}
      for arm in ARMS
    }
    for arm in ARMS:
      mean, se = common.mean_se(list(by_arm[arm].values()))
      cells.append(f'{mean:.4f} ± {se:.4f}')
    seeds = sorted(set(by_arm['real+aug']) & set(by_arm['real+aug+gen']))
    mean, se = common.mean_se([by_arm['real+aug+gen'][s] - by_arm['real+aug'][s] for s in seeds])
    cells.append(f'{100 * mean:+.2f} ± {100 * se:.2f} points')
    lines.append(f'| {n} | ' + ' | '.join(cells) + ' |')
  return '\n'.join(lines) + '\n'


def plot(rows, path: str) -> None:
  fig, ax = common.axes()
  for arm in ARMS:
    ns = sorted({r['per_class'] for r in rows if r['arm'] == arm})
    stats = [
      common.mean_se([r['accuracy'] for r in rows if r['arm'] == arm and r['per_class'] == n])
      for n in ns
    ]
    ax.errorbar(
      ns,
      [m for m, _ in stats],
      yerr=[0 if math.isnan(s) else s for _, s in stats],
      marker='o',
      capsize=3,
      label=arm,
    )
  ax.set_xscale('log')
  ax.set_xlabel('real digits per class')
  ax.set_ylabel('held-out accuracy (1,000 real digits)')
  ax.legend()
  ax.grid(alpha=0.3)
  fig.tight_layout()
  fig.savefig(path, dpi=100)


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--per_class', default='5,10,50,100,400')
  parser.add_argument('--seeds', default='0,1,2')
  parser.add_argument('--gan', default='mnist_fast')
  parser.add_argument('--gan_steps', type=int, default=5500)
  parser.add_argument('--gan_augment', default='translation,cutout')
  parser.add_argument('--recipe', default='configs/mnist_classifier.py')
  parser.add_argument('--classifier_steps', type=int, default=465)
  parser.add_argument('--generated_per_class', type=int, default=400)
  parser.add_argument('--generated_share', type=float, default=0.25)
  parser.add_argument('--max_shift', type=float, default=2.0)
  parser.add_argument('--max_degrees', type=float, default=10.0)
  parser.add_argument(
    '--gan_from', default='', help="GAN runs to reuse: 'dir/n{per_class}_seed{seed}'"
  )
  parser.add_argument('--workroot', default='runs/low_data')
  parser.add_argument('--out', default='docs/low_data.json')
  parser.add_argument('--smoke', action='store_true', help='smoke configs, n=5, one seed')
  args = parser.parse_args(argv)
  if not 0 < args.generated_share < 1:
    parser.error(f'--generated_share must be in (0, 1), got {args.generated_share}')
  if args.smoke:
    args.per_class, args.seeds, args.generated_per_class = '5', '0', 10
    args.gan_steps = args.classifier_steps = 6  # What the smoke configs train.
    args.recipe = 'configs/mnist_classifier.py:smoke'
  seeds = [int(s) for s in args.seeds.split(',')]
  counts = [int(v) for v in args.per_class.split(',')]
  if args.gan_from:
    for seed in seeds:
      for n in counts:
        reused_config(args, n, seed)  # Every GAN checked before any work.
  existing = common.claim_json(args.out, 'low_data')
  machine = common.machine()
  start = datetime.datetime.now()
  rows = []
  for seed in seeds:
    for n in counts:
      rows.extend({**row, **machine} for row in run_one(args, n, seed))
      common.write_json(args.out, common.with_rows(existing, 'low_data', rows, row_key))
  minutes = (datetime.datetime.now() - start).total_seconds() / 60
  plot(rows, os.path.splitext(args.out)[0] + '.png')
  print(markdown(rows, args, machine['cpu'], minutes))


if __name__ == '__main__':
  main()
