"""What an augmentation costs a train step: the default config's step with no augmentation,
ADA at p = 0 (skipped by `lax.cond`), ADA at p = 0 computed and masked (what the step would
cost without the cond), ADA at --p, and DiffAugment's translation,cutout, timed round-robin.

  python bench/augment_speed.py --out=runs/augment_speed.json
  python bench/augment_speed.py --config=mnist_fast --p=0.6 --repeats=3 --seconds=20

Each variant is the same GAN (configs/<--config>.py, its batch) and train state, one jitted
step per lazy-penalty phase, timed over whole cycles of `loss.penalty_every` steps on the same
real batch, so a penalised step is counted as often as training counts it. Prints the median
steps per second over --repeats and each variant's cost over no augmentation (the median over
repeats of its time per step against the same round's no-augmentation time); appends the run,
with common.machine(), to --out's `runs`.
"""

import argparse
import dataclasses
import functools
import json
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # pylint: disable=g-import-not-at-top
import jax.numpy as jnp  # pylint: disable=g-import-not-at-top

from bench import common  # pylint: disable=g-import-not-at-top
from gan_jax import augmentations  # pylint: disable=g-import-not-at-top
from gan_jax import data  # pylint: disable=g-import-not-at-top
from gan_jax import gan as gan_lib  # pylint: disable=g-import-not-at-top
from gan_jax import gan_builder  # pylint: disable=g-import-not-at-top
from gan_jax import hardware  # pylint: disable=g-import-not-at-top
from gan_jax.augmentations import ada_ops  # pylint: disable=g-import-not-at-top
from gan_jax.augmentations.ada import ADA  # pylint: disable=g-import-not-at-top
from gan_jax.augmentations.diffaugment import DiffAugment  # pylint: disable=g-import-not-at-top


@dataclasses.dataclass(frozen=True)
class MaskedADA(ADA):
  """ADA without the cond: the pipeline always runs, its coins masking every transform."""

  def apply(self, images, key, state):
    return ada_ops.ada_augment(images, key, state['p'], self.ops)


def variants(p: float) -> dict:
  """name -> (augmentation, its state's p)."""
  return {
    'none': (augmentations.NONE, None),
    'ada p=0 (lax.cond)': (ADA(target=0.6), 0.0),
    'ada p=0 (masked)': (MaskedADA(target=0.6), 0.0),
    f'ada p={p:g}': (ADA(target=0.6), p),
    'diffaugment translation,cutout': (DiffAugment('translation,cutout'), None),
  }


def stepper(config, augmentation, p, batch):
  """run(n) -> (seconds, steps): n cycles of the step with `augmentation` at `p`."""
  source = data.load(config.data.source, 'train', config.data)
  per_device = config.train.batch_size // jax.device_count()
  slices = hardware.conv_batch_slices_for(hardware.default_config(), per_device)
  gan = gan_builder.build(config, source.image_shape, source.num_classes, slices)
  gan = dataclasses.replace(gan, augmentation=augmentation)
  state = gan.init(jax.random.key(0))
  if p is not None:
    state = state.replace(augment={**state.augment, 'p': jnp.float32(p)})
  every = max(1, gan.penalty_every)
  jitted = {
    flag: jax.jit(functools.partial(gan_lib.train_step, gan, penalize=flag))
    for flag in ({True, False} if every > 1 else {None})
  }
  steps = [jitted[gan.penalty_due(k) if every > 1 else None] for k in range(every)]
  key = jax.random.key(1)
  holder = {'state': state}

  def run(n):
    start = time.perf_counter()
    s = holder['state']
    for _ in range(n):
      for step in steps:
        s, _ = step(s, batch, key)
        if p is not None:  # Keep p where it was put (the adaptive update would move it).
          s = s.replace(augment={**s.augment, 'p': jnp.float32(p)})
    jax.block_until_ready(s)
    holder['state'] = s
    return time.perf_counter() - start, n * every

  return run


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--config', default='mnist_fast')
  parser.add_argument('--p', type=float, default=0.6)
  parser.add_argument('--repeats', type=int, default=3)
  parser.add_argument('--seconds', type=float, default=20.0)
  parser.add_argument('--warmup', type=float, default=5.0)
  parser.add_argument('--out', default='')
  args = parser.parse_args(argv)
  if not 0 <= args.p <= 1 or args.repeats < 1 or args.seconds <= 0:
    parser.error('--p must be in [0, 1]; --repeats and --seconds positive')
  existing = common.claim_json(args.out, 'augment_speed')
  machine = common.machine()
  config = common.load_config(args.config)
  images, labels = data.all_images(data.load(config.data.source, 'train', config.data))
  b = config.train.batch_size
  batch = {'image': images[:b], 'label': labels[:b]}
  runs = {name: stepper(config, a, p, batch) for name, (a, p) in variants(args.p).items()}
  rates, errors = common.round_robin(runs, args.repeats, args.seconds, args.warmup)
  base = rates['none']
  result = {
    name: {
      'steps_per_sec': statistics.median(r),
      'repeats': r,
      # Paired: each repeat against the same round's 'none', then the median of those.
      'cost_vs_none': statistics.median(b / x - 1.0 for b, x in zip(base, r)),
    }
    for name, r in rates.items()
    if r and base
  }
  run = {**machine, 'config': args.config, 'batch': b, 'p': args.p, 'results': result}
  run['errors'] = errors
  for name, r in result.items():
    print(f'{name:32s} {r["steps_per_sec"]:7.2f} steps/s  {100 * r["cost_vs_none"]:+6.1f}%')
  print(json.dumps({k: machine[k] for k in ('cpu', 'cpu_family_model', 'load_1min')}))
  if args.out:
    common.write_json(args.out, common.with_run(existing, 'augment_speed', run))


if __name__ == '__main__':
  main()
