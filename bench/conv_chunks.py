"""Forward + backward time of the DCGAN's convolutions when the batch is split into slices.

Run by hand from the repo root:  python -m bench.conv_chunks [--batch 256] [--repeats 9]

Times each convolution of the default MNIST DCGAN (both UpConv2x layers of G, both 4x4
stride-2 convs of D) under jax.jit, with gan_jax.models.layers.batch_chunked at 1, 2, 4 and 8
slices, round-robin so that load from other processes hits every setting alike. Prints the
median milliseconds and the speed-up over the whole batch (config.model.conv_chunks).
"""

import argparse
import statistics
import time

import jax
import jax.numpy as jnp

from bench.xla_cpu_tricks import conv4x4s2
from gan_jax.models.layers import batch_chunked, upconv2x


def forward_backward(fn):
  def step(x, kernel):
    y, pullback = jax.vjp(fn, x, kernel)
    return y, pullback(jnp.ones_like(y))
  return jax.jit(step)


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--batch', type=int, default=256)
  parser.add_argument('--repeats', type=int, default=9)
  args = parser.parse_args()
  b, key = args.batch, jax.random.key(0)
  layers = {'G UpConv2x 7->14 128->64': (upconv2x, (b, 7, 7, 128), (4, 4, 128, 64)),
            'G UpConv2x 14->28 64->32': (upconv2x, (b, 14, 14, 64), (4, 4, 64, 32)),
            'D Conv 4x4s2 28->14 1->32': (conv4x4s2, (b, 28, 28, 1), (4, 4, 1, 32)),
            'D Conv 4x4s2 14->7 32->64': (conv4x4s2, (b, 14, 14, 32), (4, 4, 32, 64))}
  slices = (1, 2, 4, 8)
  print(f'batch {b}, {jax.device_count()} device(s); ms per forward+backward (speed-up vs 1)')
  for name, (fn, x_shape, k_shape) in layers.items():
    x, kernel = jax.random.normal(key, x_shape), jax.random.normal(key, k_shape)
    steps = {n: forward_backward(batch_chunked(fn, n)) for n in slices}
    for step in steps.values():
      jax.block_until_ready(step(x, kernel))
    times = {n: [] for n in slices}
    for _ in range(args.repeats):
      for n, step in steps.items():
        start = time.perf_counter()
        jax.block_until_ready(step(x, kernel))
        times[n].append(time.perf_counter() - start)
    ms = {n: 1e3 * statistics.median(t) for n, t in times.items()}
    print(f'{name:<28}' + ''.join(f'  {n}: {ms[n]:7.1f} ({ms[1] / ms[n]:.2f}x)' for n in slices),
          flush=True)


if __name__ == '__main__':
  main()
