"""Measured control: conditional configs trained for the same wall time, then judged.

  python bench/control.py --specs=mnist_attributes,mnist_cgan --seeds=0,1,2 --seconds=900
  python bench/control.py --specs=mnist_instance,mnist_cgan --seeds=0 --seconds=900
  python bench/control.py --specs=mnist_text,mnist_text_rule --seconds=1200 --out=docs/text.json

Each run spec (bench/common.py) trains with `train.time_budget_s` = --seconds (one run at a time,
never two timed jobs at once), then `--mode=eval` judges its latest checkpoint with every
evaluator its config names: classifier-FID and class accuracy on --num_samples samples (the
judge in runs/mnist_classifier), the control grid for attribute configs, obedience to
sentences for configs with a text section, and retrieval ranks when --rank_classifier names a
second classifier. Prints a markdown table of this run's medians (docs/control.md) and merges
one JSON row per run into --out by (spec, seed): a rerun replaces its rows, the others stay.
Each row carries its --seconds and common.machine(); a row without its own `seconds` and `cpu`
has the file's top-level ones.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench import common  # pylint: disable=g-import-not-at-top

KEYS = (
  'fid',
  'class_accuracy',
  'control_r_thickness',
  'control_r_slant',
  'control_mae_sd_thickness',
  'control_mae_sd_slant',
  'control_class_accuracy',
  'instance_rank_median',
  'instance_rank_p90',
  'text_obedience_seen',
  'text_obedience_held_out',
  'text_ceiling_seen',
  'text_ceiling_held_out',
  'text_digit_accuracy',
)


def row_key(row: dict) -> tuple:
  """What a row of --out is the measurement of: its run spec and seed."""
  return row['spec'], row['seed']


def _overrides(spec: str) -> list[str]:
  _, fields = common.parse_spec(spec)
  return [f'--config.{path}={value}' for path, value in fields]


def run_one(spec: str, seed: int, args, workdir: str) -> dict:
  name, _ = common.parse_spec(spec)
  base = [
    sys.executable,
    os.path.join(common.REPO, 'launch.py'),
    f'--config=configs/{name}.py',
    f'--workdir={workdir}',
    f'--config.seed={seed}',
    *_overrides(spec),
  ]
  judge = [f'--config.eval.classifier_workdir={args.judge}']
  start = time.monotonic()
  train = (
    base
    + judge
    + [
      f'--config.train.time_budget_s={args.seconds}',
      '--config.train.num_steps=1000000',
      '--config.train.eval_every=1000000',
    ]
  )
  with open(workdir + '.train.log', 'w') as log:
    subprocess.run(train, check=True, stdout=log, stderr=subprocess.STDOUT, cwd=common.REPO)
  wall = time.monotonic() - start
  evaluate = (
    base
    + judge
    + [
      '--mode=eval',
      f'--config.eval.num_samples={args.num_samples}',
      f'--config.eval.rank_classifier_workdir={args.rank_classifier}',
    ]
  )
  with open(workdir + '.eval.log', 'w') as log:
    subprocess.run(evaluate, check=True, stdout=log, stderr=subprocess.STDOUT, cwd=common.REPO)
  with open(os.path.join(workdir, 'metrics.jsonl')) as f:
    rows = [json.loads(line) for line in f]
  judged = {}
  for row in rows:
    judged.update({k: v for k, v in row.items() if k in KEYS or k == 'step'})
  steps = max(r['step'] for r in rows)  # The eval rows carry the checkpoint's step.
  return {'spec': spec, 'seed': seed, 'train_wall_s': round(wall, 1), 'steps': steps, **judged}


def _label(key: str) -> str:
  return 'grid class accuracy' if key == 'control_class_accuracy' else key.replace('control_', '')


def markdown(rows: list[dict], args, cpu: str) -> str:
  specs = list(dict.fromkeys(r['spec'] for r in rows))
  shown = [k for k in ('steps', *KEYS) if any(k in r for r in rows)]
  lines = [
    f'{args.seconds:g} s of training per run, seeds {args.seeds}; medians over seeds; {cpu}; '
    f'{time.strftime("%Y-%m-%d")}.',
    '',
    '| config | ' + ' | '.join(_label(k) for k in shown) + ' |',
    '|---' * (len(shown) + 1) + '|',
  ]
  for spec in specs:
    mine = [r for r in rows if r['spec'] == spec]
    cells = []
    for k in shown:
      values = [r[k] for r in mine if k in r]
      cells.append(f'{statistics.median(values):.4g}' if values else '-')
    lines.append(f'| {spec} | ' + ' | '.join(cells) + ' |')
  return '\n'.join(lines)


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--specs', default='mnist_attributes,mnist_cgan')
  parser.add_argument('--seeds', default='0')
  parser.add_argument('--seconds', type=float, default=900.0)
  parser.add_argument('--num_samples', type=int, default=5000)
  parser.add_argument('--judge', default='runs/mnist_classifier')
  parser.add_argument('--rank_classifier', default='runs/mnist_classifier_seed1')
  parser.add_argument('--workroot', default='runs/bench_control')
  parser.add_argument('--out', default='docs/control.json')
  args = parser.parse_args(argv)
  existing = common.claim_json(args.out, 'control')
  machine = common.machine()
  rows = []
  for seed in (int(s) for s in args.seeds.split(',')):
    for spec in args.specs.split(','):
      safe = spec.replace(':', '_').replace('=', '-').replace('/', '_')
      workdir = os.path.join(common.REPO, args.workroot, f'{safe}_seed{seed}')
      if os.path.exists(workdir):
        raise SystemExit(f'error: {workdir} exists; choose another --workroot')
      os.makedirs(os.path.dirname(workdir), exist_ok=True)
      rows.append({**run_one(spec, seed, args, workdir), 'seconds': args.seconds, **machine})
      print(json.dumps(rows[-1]), flush=True)
      common.write_json(args.out, common.with_rows(existing, 'control', rows, row_key))
  print(markdown(rows, args, machine['cpu']))


if __name__ == '__main__':
  main()
