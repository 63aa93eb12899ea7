"""How fast Inception features are: gan_jax's FID Inception, and pytorch-fid's beside it.

  python -m bench.inception_speed [--batches 50,100] [--size 32] [--torch]

Times the pool features of 32x32 images (resized to 299, as FID does) at each batch size, in
images/s and GFLOP/s (XLA's count of the compiled network), and projects the time to judge
10,000 generated images against cached reference statistics. `--torch` also times
pytorch-fid's InceptionV3 on the same images in the same process, round-robin (needs
pytorch-fid and torchvision: tests/inception_reference.py says how to install them). The
weights are random: speed does not depend on their values.
"""

import argparse
import os
import time

import jax
import jax.numpy as jnp
import numpy as np

from bench import common
from gan_jax import fid
from gan_jax.models import inception


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument('--batches', default='50,100')
  parser.add_argument('--size', type=int, default=32)
  parser.add_argument('--torch', action='store_true')
  parser.add_argument('--repeats', type=int, default=3)
  parser.add_argument('--seconds', type=float, default=20.0)
  args = parser.parse_args()
  print(f'CPU: {common.cpu_name()}; JAX {jax.__version__} on {jax.default_backend()}')
  shape = (1, args.size, args.size, 3)
  variables = jax.jit(inception.FIDInception().init)(jax.random.key(0), jnp.zeros(shape))
  rng = np.random.default_rng(0)
  runs, flops = {}, {}
  for batch in (int(b) for b in args.batches.split(',')):
    images = rng.integers(0, 256, (batch, *shape[1:]), dtype=np.uint8)
    compiled = fid._apply.lower(variables, jnp.zeros(images.shape, jnp.float32)).compile()
    cost = compiled.cost_analysis()
    flops[f'gan_jax b{batch}'] = (cost[0] if isinstance(cost, list) else cost)['flops'] / batch
    runs[f'gan_jax b{batch}'] = _timer(lambda x=images: fid.features(variables, x), batch)
    if args.torch:
      runs[f'pytorch-fid b{batch}'] = _torch_run(images)
  rates, errors = common.round_robin(runs, args.repeats, args.seconds, warmup_s=5.0)
  for name, rate in rates.items():
    med, spread = common.median_spread(rate)
    if med is None:
      print(f'{name:<18} failed: {errors.get(name)}')
      continue
    gflops = f', {flops[name] * med / 1e9:.1f} GFLOP/s' if name in flops else ''
    print(
      f'{name:<18} {med:6.2f} images/s (x{spread[0]:.2f}-x{spread[1]:.2f}){gflops}; '
      f'10,000 images: {10000 / med / 60:.1f} min'
    )
  if flops:
    print(f'network: {next(iter(flops.values())) / 1e9:.2f} GFLOP per image (XLA cost analysis)')


def _timer(call, batch):
  def run(n):
    start = time.perf_counter()
    for _ in range(n):
      call()
    return time.perf_counter() - start, n * batch

  return run


def _torch_run(images):
  from pytorch_fid import inception as pf
  import torch
  import torchvision

  torch.set_num_threads(len(os.sched_getaffinity(0)))
  random = torchvision.models.inception_v3(num_classes=1008, aux_logits=False, init_weights=True)
  saved = pf.load_state_dict_from_url
  pf.load_state_dict_from_url = lambda *a, **k: {
    k: v for k, v in random.state_dict().items() if not k.startswith('AuxLogits')
  }
  try:
    model = pf.InceptionV3([3]).eval()
  finally:
    pf.load_state_dict_from_url = saved
  x = torch.from_numpy(images.transpose(0, 3, 1, 2).astype(np.float32) / 255.0)

  def call():
    with torch.no_grad():
      model(x)[0].numpy()

  return _timer(call, len(images))


if __name__ == '__main__':
  main()
