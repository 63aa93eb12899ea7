"""What a checkpoint save costs training: steps/s over windows that contain saves, written
before the next step (train.async_checkpointing=False) or on a thread (True, the default),
against the same run without saves.

  python bench/checkpoint_stall.py --out=docs/checkpoint_stall.json
  python bench/checkpoint_stall.py --spec=mnist_dcgan --steps=60 --every=10 --rounds=1  # quick

Each arm is a fresh launch.py process training --spec for --steps on synthetic data, saving
every --every steps (the no-save arm: only at the end, after the last logged step); its rate is
the one logged at the last step (steps/s from the first compiled step on, so every save but the
final one falls inside the window). Arms alternate within a round, --rounds rounds; medians.
Each run is appended to --out's `runs`, with common.machine(): a rate depends on the machine
and its load, so no run replaces another.
"""

import argparse
import os
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench import common  # pylint: disable=g-import-not-at-top

ARMS = {
  'no saves': ['--config.train.checkpoint_every=1000000'],
  'saves, written before the next step': ['--config.train.async_checkpointing=False'],
  'saves, written in the background': ['--config.train.async_checkpointing=True'],
}


def run_arm(args, flags: list, workdir: str) -> float:
  name, fields = common.parse_spec(args.spec)
  rows = common.launch(
    name,
    workdir,
    [
      *[f'--config.{path}={value}' for path, value in fields],
      f'--config.data.source={args.data}',
      f'--config.train.num_steps={args.steps}',
      f'--config.train.checkpoint_every={args.every}',
      f'--config.train.log_every={args.every}',
      '--config.train.eval_every=1000000',
      *flags,
    ],
  )
  return [r for r in rows if 'steps_per_sec' in r][-1]['steps_per_sec']


def state_mib(workdir: str) -> float:
  total = 0
  for root, _, files in os.walk(os.path.join(workdir, 'checkpoints')):
    total += sum(os.path.getsize(os.path.join(root, f)) for f in files)
  return total / 2**20


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--spec', default='cifar10_dcgan')
  parser.add_argument('--data', default='synthetic:32x32x3')
  parser.add_argument('--steps', type=int, default=200)
  parser.add_argument('--every', type=int, default=20)
  parser.add_argument('--rounds', type=int, default=2)
  parser.add_argument('--workroot', default='runs/checkpoint_stall')
  parser.add_argument('--out', default='docs/checkpoint_stall.json')
  args = parser.parse_args(argv)
  existing = common.claim_json(args.out, 'checkpoint_stall')
  machine = common.machine()
  rates = {arm: [] for arm in ARMS}
  for _ in range(args.rounds):
    for arm, flags in ARMS.items():
      workdir = os.path.join(args.workroot, arm.split(',')[-1].strip().replace(' ', '_'))
      rates[arm].append(run_arm(args, flags, workdir))
  size = state_mib(workdir)
  base = statistics.median(rates['no saves'])
  result = {
    **machine,
    'spec': args.spec,
    'steps': args.steps,
    'save_every': args.every,
    'checkpoints_kept_mib': round(size, 1),
    'rates': rates,
    'median_steps_per_s': {arm: statistics.median(r) for arm, r in rates.items()},
    'ratio_to_no_saves': {arm: statistics.median(r) / base for arm, r in rates.items()},
  }
  common.write_json(args.out, common.with_run(existing, 'checkpoint_stall', result))
  for arm in ARMS:
    print(
      f'{arm:40s} {result["median_steps_per_s"][arm]:.3f} steps/s  '
      f'{result["ratio_to_no_saves"][arm]:.3f}x'
    )


if __name__ == '__main__':
  main()
