"""Time UpConv2x methods, discriminator-style strided convs and R3GAN's grouped 3x3 convs.

Run by hand from the repo root:  python -m bench.layer_timing [--repeats 5] [--batches 64 256]

For each layer and batch size, times forward, input gradient (dx), kernel
gradient (dk) and full forward+backward (fwd+bwd: one vjp for both, what a
training step pays) under jax.jit, after a compile call and a warm-up call,
as the median of --repeats calls. Methods of one layer are timed in
round-robin order so that load from other processes hits them equally.
Biases are off so dk is the kernel gradient alone.
"""

import argparse
import os
import platform
import statistics
import time

import flax.linen as nn
import jax
import jax.numpy as jnp

from gan_jax.models.layers import METHODS, UpConv2x, upconv2x_flops

UP_LAYERS = [(256, 128, 7), (128, 64, 14)]  # (cin, cout, input size): DCGAN generator
DOWN_LAYERS = [(1, 64, 28), (64, 128, 14)]  # (cin, cout, input size): DCGAN discriminator
DOWN_KERNELS = (4, 3)  # torch Conv2d(k, stride=2, padding=1)
PASSES = ('fwd', 'dx', 'dk', 'fwd+bwd')


def pass_functions(model, params, x):
  """jitted callables for each pass; all take no arguments."""
  y = model.apply(params, x)
  cotangent = jnp.ones_like(y)
  forward = jax.jit(model.apply)
  dx = jax.jit(lambda p, x: jax.vjp(lambda x: model.apply(p, x), x)[1](cotangent))
  dk = jax.jit(lambda p, x: jax.vjp(lambda p: model.apply(p, x), p)[1](cotangent))
  # Returning y keeps the forward in the program; otherwise XLA drops it as dead code.
  both = jax.jit(lambda p, x: (lambda y, pullback: (y, pullback(cotangent)))(
      *jax.vjp(model.apply, p, x)))
  return {name: (lambda f=f: f(params, x)) for name, f in zip(PASSES, (forward, dx, dk, both))}


def median_ms(callables: dict, repeats: int) -> dict:
  """Round-robin timing: compile + warm up each callable, then median of repeats."""
  for call in callables.values():
    jax.block_until_ready(call())  # compile
    jax.block_until_ready(call())  # warm-up
  samples = {name: [] for name in callables}
  for _ in range(repeats):
    for name, call in callables.items():
      start = time.perf_counter()
      jax.block_until_ready(call())
      samples[name].append(time.perf_counter() - start)
  return {name: 1e3 * statistics.median(s) for name, s in samples.items()}


def time_models(models: dict, x, repeats: int) -> dict:
  """{model name: {pass: ms}} for models sharing the input x."""
  calls = {}
  for name, model in models.items():
    params = model.init(jax.random.key(0), x)
    for pass_name, call in pass_functions(model, params, x).items():
      calls[name, pass_name] = call
  times = {}
  for pass_name in PASSES:  # round-robin over models, one pass at a time
    ms = median_ms({n: c for (n, p), c in calls.items() if p == pass_name}, repeats)
    for name, t in ms.items():
      times.setdefault(name, {})[pass_name] = t
  return times


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--repeats', type=int, default=5)
  parser.add_argument('--batches', type=int, nargs='+', default=[64, 256])
  args = parser.parse_args()

  print(f'jax {jax.__version__}, backend {jax.default_backend()}, {os.cpu_count()} CPUs '
        f'({platform.processor() or platform.machine()}), repeats={args.repeats}, '
        f'load average at start {os.getloadavg()[0]:.1f}')
  key = jax.random.key(0)
  passes = '  '.join(f'{p:>9}' for p in PASSES)

  print('\nUpConv2x (torch ConvTranspose2d k=4 s=2 p=1): ms, then ratio to method=transpose '
        '(<1 is faster); GFLOP/s = architecture FLOPs (3x forward for fwd+bwd) / fwd+bwd time')
  print(f'{"layer":<22}{"batch":>6}  {"method":<10}{passes}    '
        + '  '.join(f'{"x" + p:>8}' for p in PASSES) + '  GFLOP/s')
  for cin, cout, size in UP_LAYERS:
    for batch in args.batches:
      x = jax.random.normal(key, (batch, size, size, cin))
      models = {m: UpConv2x(cout, use_bias=False, method=m) for m in METHODS}
      times = time_models(models, x, args.repeats)
      gflops = 3 * upconv2x_flops(batch, size, size, cin, cout) / 1e9
      for method in METHODS:
        t = times[method]
        print(f'{f"{cin}->{cout} {size}->{2 * size}px":<22}{batch:>6}  {method:<10}'
              + '  '.join(f'{t[p]:9.1f}' for p in PASSES) + '    '
              + '  '.join(f'{t[p] / times["transpose"][p]:8.2f}' for p in PASSES)
              + f'  {gflops / (t["fwd+bwd"] / 1e3):7.1f}', flush=True)

  print('\nDiscriminator nn.Conv(kernel k, strides=2, padding=1): ms, then ratio to its own fwd')
  print(f'{"layer":<22}{"batch":>6}  {"kernel":<10}{passes}    '
        + '  '.join(f'{p + "/fwd":>8}' for p in PASSES[1:]))
  for cin, cout, size in DOWN_LAYERS:
    for batch in args.batches:
      x = jax.random.normal(key, (batch, size, size, cin))
      models = {k: nn.Conv(cout, (k, k), strides=2, padding=1, use_bias=False)
                for k in DOWN_KERNELS}
      times = time_models(models, x, args.repeats)
      for k in DOWN_KERNELS:
        t = times[k]
        print(f'{f"{cin}->{cout} {size}->{size // 2}px":<22}{batch:>6}  {f"{k}x{k}":<10}'
              + '  '.join(f'{t[p]:9.1f}' for p in PASSES) + '    '
              + '  '.join(f'{t[p] / t["fwd"]:8.2f}' for p in PASSES[1:]), flush=True)
  print('\nR3GAN residual-block 3x3 conv (64 expanded channels): grouped (16 channels per '
        'group, the paper\'s) vs dense; ms, then ratio to dense')
  print(f'{"layer":<22}{"batch":>6}  {"groups":<10}{passes}    '
        + '  '.join(f'{"x" + p:>8}' for p in PASSES))
  for size in (28, 14):
    for batch in args.batches:
      x = jax.random.normal(key, (batch, size, size, 64))
      models = {g: nn.Conv(64, (3, 3), feature_group_count=g, use_bias=False) for g in (4, 1)}
      times = time_models(models, x, args.repeats)
      for groups in (4, 1):
        t = times[groups]
        print(f'{f"64->64 3x3 {size}px":<22}{batch:>6}  {groups:<10}'
              + '  '.join(f'{t[p]:9.1f}' for p in PASSES) + '    '
              + '  '.join(f'{t[p] / times[1][p]:8.2f}' for p in PASSES), flush=True)
  print(f'\nload average at end {os.getloadavg()[0]:.1f}')


if __name__ == '__main__':
  main()
