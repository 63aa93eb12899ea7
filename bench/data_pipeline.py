"""Your own images at scale: 50,000 generated 32x32 RGB PNGs prepared as ArrayRecord shards
(`python -m gan_jax.prepare`), read through the input pipeline, beside the pace at which
configs/cifar10_dcgan.py trains on them (the images it consumes per second).

  python bench/data_pipeline.py --out=docs/data_pipeline.json
  python bench/data_pipeline.py --count=3000 --train_steps=20 --workroot=/tmp/dp --out=/tmp/dp.json

Parts, one after another (never beside another timed job):
  make     the PNG folder (10 class sub-folders; smooth random pictures, so PNG sizes are those
           of photographs rather than of noise); cached in --workroot, not timed
  prepare  the command's wall time, a fresh process (imports included), all cores
  read     the training pipeline (grain, the threads and prefetch training uses) over the shards:
           images/s after 5 warm-up batches; the same over the folder (`folder:`) for scale
  train    cifar10_dcgan on the shards for --train_steps: the median steps/s logged after the
           first interval (compilation excluded), times the batch
The ratio read / train is how much faster the data comes than the model eats it. Each run is
appended to --out's `runs`, with common.machine(): a rate depends on the machine and its load,
so no run replaces another.
"""

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # pylint: disable=g-import-not-at-top

from bench import common  # pylint: disable=g-import-not-at-top


def make_folder(root: str, count: int) -> str:
  """`count` seeded 32x32 RGB PNGs in 10 class sub-folders (kept between runs)."""
  from PIL import Image  # pylint: disable=g-import-not-at-top

  folder = os.path.join(root, f'png_{count}')
  if os.path.isdir(folder):
    return folder
  tmp = folder + '.partial'
  shutil.rmtree(tmp, ignore_errors=True)
  rng = np.random.default_rng(0)
  for i in range(count):
    coarse = rng.integers(0, 256, (4, 4, 3), dtype=np.uint8)
    image = Image.fromarray(coarse).resize((32, 32), Image.Resampling.BICUBIC)
    pixels = np.asarray(image, np.int16) + rng.integers(-8, 9, (32, 32, 3))
    path = os.path.join(tmp, f'class_{i % 10}', f'{i:06d}.png')
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(path)
  os.rename(tmp, folder)
  return folder


def time_prepare(folder: str, dest: str) -> float:
  shutil.rmtree(dest, ignore_errors=True)
  start = time.monotonic()
  subprocess.run(
    [sys.executable, '-m', 'gan_jax.prepare', folder, dest, '--size=32', '--channels=3'],
    check=True,
    cwd=common.REPO,
    stdout=subprocess.DEVNULL,
  )
  return time.monotonic() - start


def read_rate(source_name: str, batch: int, batches: int) -> tuple[float, float]:
  """(seconds to open the source, images/s through the training pipeline)."""
  from gan_jax import data  # pylint: disable=g-import-not-at-top
  from gan_jax import input_pipeline  # pylint: disable=g-import-not-at-top

  start = time.monotonic()
  source = data.load(source_name, 'train', {'image_size': 32, 'channels': 3})
  opened = time.monotonic() - start
  it = input_pipeline.iterate(input_pipeline.make_dataset(source, seed=0, global_batch_size=batch))
  for _ in range(5):
    next(it)
  start = time.monotonic()
  for _ in range(batches):
    next(it)
  return opened, batches * batch / (time.monotonic() - start)


def train_rate(dest: str, workdir: str, steps: int) -> tuple[float, int]:
  """(median steps/s of cifar10_dcgan on the shards after its first log interval, batch)."""
  config = common.load_config('cifar10_dcgan')
  rows = common.launch(
    'cifar10_dcgan',
    workdir,
    [
      f'--config.data.source=arrayrecord:{dest}',
      f'--config.train.num_steps={steps}',
      '--config.train.log_every=5',
      '--config.train.eval_every=1000000',
      '--config.train.checkpoint_every=1000000',
    ],
  )
  rates = [r.get('steps_per_sec') for r in rows]
  rates = [r for r in rates if r]
  return statistics.median(rates[1:] or rates), config.train.batch_size


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--count', type=int, default=50_000)
  parser.add_argument('--read_batches', type=int, default=200)
  parser.add_argument('--train_steps', type=int, default=60)
  parser.add_argument('--workroot', default='runs/data_pipeline')
  parser.add_argument('--out', default='docs/data_pipeline.json')
  args = parser.parse_args(argv)
  existing = common.claim_json(args.out, 'data_pipeline')
  row = {**common.machine(), 'images': args.count}
  os.makedirs(args.workroot, exist_ok=True)
  folder = make_folder(args.workroot, args.count)
  dest = os.path.join(args.workroot, f'shards_{args.count}')
  row['prepare_s'] = time_prepare(folder, dest)
  row['shards_open_s'], row['shards_read_images_per_s'] = read_rate(
    f'arrayrecord:{dest}', 128, args.read_batches
  )
  row['folder_open_s'], row['folder_read_images_per_s'] = read_rate(
    f'folder:{folder}', 128, args.read_batches
  )
  steps_per_s, batch = train_rate(dest, os.path.join(args.workroot, 'train'), args.train_steps)
  row['train_images_per_s'] = steps_per_s * batch
  row['read_over_train'] = row['shards_read_images_per_s'] / row['train_images_per_s']
  common.write_json(args.out, common.with_run(existing, 'data_pipeline', row))
  for key, value in row.items():
    print(f'{key}: {value:.1f}' if isinstance(value, float) else f'{key}: {value}')


if __name__ == '__main__':
  main()
