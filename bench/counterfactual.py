"""Counterfactuals of held-out digits, measured: a trained attribute-conditioned GAN projects
the 1,000 held-out digits (true labels), edits thickness and slant by -1, -0.5, +0.5, +1 training
SD and swaps each digit's class, and gan_jax/counterfactual.py measures composition,
effectiveness, minimality, identity, reversibility and realism, beside the same edits of fresh
noise (the baseline: what --condition alone gives).

  python launch.py --config=configs/mnist_classifier.py --workdir=runs/mnist_classifier
  python launch.py --config=configs/mnist_classifier.py --workdir=runs/mnist_classifier_seed1 \\
      --config.seed=1
  python launch.py --config=configs/mnist_attributes.py --workdir=runs/mnist_attributes
  python bench/counterfactual.py --workdir=runs/mnist_attributes --out=docs/counterfactual.json

Projection uses the first classifier (its perceptual loss); every feature comparison the
second. Merges one row per (workdir, step, seed), with common.machine(), into --out's `rows`;
writes a grid beside --out (the first digit of each class: real, reconstruction, thinner,
thicker, slant -1 SD, slant +1 SD, the next class) and prints the table.
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # pylint: disable=g-import-not-at-top

from bench import common  # pylint: disable=g-import-not-at-top
from gan_jax import counterfactual  # pylint: disable=g-import-not-at-top
from gan_jax import data  # pylint: disable=g-import-not-at-top
from gan_jax import evaluate  # pylint: disable=g-import-not-at-top
from gan_jax import experiment as experiment_lib  # pylint: disable=g-import-not-at-top
from gan_jax import pictures  # pylint: disable=g-import-not-at-top
from gan_jax import projection  # pylint: disable=g-import-not-at-top
from gan_jax.errors import UserError  # pylint: disable=g-import-not-at-top

# (measure, key, goal) rows of the table; {a} is each conditioned attribute, {b} each other one.
TABLE = (
  ('null edit: pixel L1', 'null_l1', ''),
  ('null edit: rank of the source (median)', 'rank_median', '1'),
  ('null edit: rank of the source (90th percentile)', 'rank_p90', '<= 5'),
  ('{a}: r (requested vs measured change)', '{a}_r', '>= 0.95'),
  ('{a}: MAE (SD)', '{a}_mae_sd', '<= 0.25'),
  ('{a} edits: {b} drift (SD)', '{a}_drift_{b}_sd', '<= 0.2'),
  ('{a} edits: class kept', '{a}_class_kept', '>= 0.97'),
  ('class swap: new class read', 'swap_class_accuracy', '>= 0.97'),
  ('class swap: {a} drift (SD)', 'swap_drift_{a}_sd', '<= 0.25'),
  ('rank after thickness -1 SD (median)', 'identity_rank_median_-1sd', '<= 5'),
  ('rank after thickness +1 SD (median)', 'identity_rank_median_+1sd', '<= 5'),
  ('round trip -1 SD: pixel L1', 'round_trip_l1_-1sd', '<= 1.5x null'),
  ('round trip +1 SD: pixel L1', 'round_trip_l1_+1sd', '<= 1.5x null'),
  ('classifier-FID of the edited digits', 'fid_edited', ''),
)


def row_key(row: dict) -> tuple:
  return row['workdir'], row['step'], row['seed']


def parser() -> argparse.ArgumentParser:
  p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  p.add_argument('--config', default='mnist_attributes', help='a configs/ name (run spec)')
  p.add_argument('--workdir', default='runs/mnist_attributes')
  p.add_argument('--classifier', default='runs/mnist_classifier')
  p.add_argument('--ranker', default='runs/mnist_classifier_seed1')
  p.add_argument('--num_images', type=int, default=1000)
  p.add_argument('--round_trips', type=int, default=200)
  p.add_argument('--seed', type=int, default=0)
  p.add_argument('--out', default='docs/counterfactual.json')
  p.add_argument('--smoke', action='store_true', help="the config's smoke variant, for tests")
  return p


def figure(experiment, state, held_out, z, path: str) -> None:
  """The first digit of each class: real, reconstruction, thickness -1/+1 SD, slant -1/+1 SD,
  the next class."""
  images, labels, condition = held_out
  table = experiment.conditions
  index = np.asarray([np.flatnonzero(labels == c)[0] for c in np.unique(labels)])
  raw = counterfactual.raw_of(table, condition)[index]
  images, labels, z = images[index], labels[index], z[index]
  make = counterfactual.remaker(experiment.gan, state, table, z)
  columns = [images, make(labels, raw)]
  for name in table.conditioned_attributes[:2]:
    for delta in (-1.0, 1.0):
      columns.append(make(labels, counterfactual.shifted(table, raw, name, delta)))
  columns.append(make((labels + 1) % table.num_classes, raw))
  tiles = np.stack(columns, axis=1).reshape(-1, *images.shape[1:])
  pictures.save_png(path, pictures.grid(tiles, rows=len(index)))


def _names(key: str, names) -> list[tuple]:
  """The (a, b) that fill a TABLE key: each attribute and each other one, each attribute, or
  neither."""
  if '{b}' in key:
    return [(a, b) for a in names for b in names if b != a]
  return [(a, None) for a in names] if '{a}' in key else [(None, None)]


def markdown(row: dict, names) -> str:
  lines = ['| measure | projected | baseline (fresh z) | our target |', '|---|---|---|---|']
  for label, key, goal in TABLE:
    for a, b in _names(key, names):
      k = key.format(a=a, b=b)
      if k in row:
        base = row.get(f'baseline_{k}')
        cells = [f'{row[k]:.4g}', '-' if base is None else f'{base:.4g}', goal]
        lines.append(f'| {label.format(a=a, b=b)} | ' + ' | '.join(cells) + ' |')
  return '\n'.join(lines)


def main(argv=None):
  p = parser()
  args = p.parse_args(argv)
  if args.num_images < 1 or args.round_trips < 0:
    p.error('--num_images must be positive and --round_trips at least 0')
  existing = common.claim_json(args.out, 'counterfactual')
  machine = common.machine()
  config = common.load_config(args.config, 'smoke' if args.smoke else None)
  config.project.classifier_workdir = args.classifier
  try:
    ranker = evaluate.load_judge(args.ranker)
    model, params, _ = experiment_lib.load_classifier(args.classifier)
    experiment, step, state = experiment_lib.restore_for_inference(config, args.workdir)
  except UserError as e:
    sys.exit(f'error: {e}')
  table = experiment.conditions
  if table is None or not table.has_label or not table.conditioned_attributes:
    sys.exit(
      f'error: {args.workdir!r}: counterfactuals need a model conditioned on the label '
      'and attributes (e.g. configs/mnist_attributes.py)'
    )
  source = data.load(config.data.source, config.eval.floor_split, config.data)
  images, labels = (a[: args.num_images] for a in data.all_images(source))
  held_out = (images, labels, table.condition_of_images(images, labels))
  settings = projection.Settings.from_config(config)
  result, z = counterfactual.evaluate(
    experiment, state, (model, params), settings, held_out, ranker, args.round_trips, args.seed
  )
  figure(experiment, state, held_out, z, os.path.splitext(args.out)[0] + '.png')
  row = dict(workdir=args.workdir, step=step, seed=args.seed, config=args.config, **machine)
  row.update(classifier=args.classifier, ranker=args.ranker, settings=vars(settings), **result)
  common.write_json(args.out, common.with_rows(existing, 'counterfactual', [row], row_key))
  print(
    f'{machine["cpu"]} ({machine["cpu_family_model"]}); {machine["date"]}; '
    f'{result["num_images"]} held-out digits projected in {result["project_seconds"]:.0f} s'
  )
  print(markdown(row, table.conditioned_attributes))


if __name__ == '__main__':
  main()
