"""Where the DCGAN train step's time goes: per-layer jax vs torch vs TensorFlow, and step parts.

Run by hand from the repo root:  python -m bench.step_breakdown [--batch 256] [--repeats 5]
    [--frameworks jax,torch,tf] [--parts]

Layers are the default MNIST DCGAN's at the shapes one train step uses (D's at 2B for its own
update, at B when G's update backpropagates through it). For each: forward, and forward +
backward (all gradients the step needs: input and weight, or weight only for layers whose
input is data, or input only for D in G's update). Frameworks are timed round-robin in one
process (idle thread pools cost nothing measurable; set --frameworks to isolate).
`--parts` also times pieces of gan_jax's step: G forward, D update, G update, whole step.
GFLOP/s use the architecture's multiply-adds (bench.train_step.dcgan_layers).
"""

import argparse
import os
import statistics
import time

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')


def layer_specs(batch, width=32):
  """(name, kind, input NHWC shape, cin, cout, grads) with grads in {'wx', 'w', 'x'}."""
  w = width
  return [
      ('G Dense_0 100->6272', 'dense', (batch, 100), 100, 6272, 'w'),
      ('G UpConv2x_0 7->14 128->64', 'up', (batch, 7, 7, 4 * w), 4 * w, 2 * w, 'wx'),
      ('G UpConv2x_1 14->28 64->32', 'up', (batch, 14, 14, 2 * w), 2 * w, w, 'wx'),
      ('G Conv_0 3x3 32->1', 'conv3', (batch, 28, 28, w), w, 1, 'wx'),
      (f'D Conv_0 4x4s2 1->32 @2B', 'down', (2 * batch, 28, 28, 1), 1, w, 'w'),
      (f'D Conv_1 4x4s2 32->64 @2B', 'down', (2 * batch, 14, 14, w), w, 2 * w, 'wx'),
      (f'D Conv_0 4x4s2 1->32 @B dx', 'down', (batch, 28, 28, 1), 1, w, 'x'),
      (f'D Conv_1 4x4s2 32->64 @B dx', 'down', (batch, 14, 14, w), w, 2 * w, 'x'),
  ]


def macs(kind, shape, cin, cout):
  n = shape[0]
  if kind == 'dense':
    return n * cin * cout
  h = shape[1]
  if kind == 'up':
    return n * (2 * h) ** 2 * 4 * cin * cout
  if kind == 'conv3':
    return n * h * h * 9 * cin * cout
  return n * (h // 2) ** 2 * 16 * cin * cout  # down


def im2col_upconv2x(x, kernel):
  """UpConv2x (torch ConvTranspose2d k4 s2 p1) as 4 phase matmuls over 2x2 patches.

  Phase (a, b) of the output is a 2x2 correlation of the 1-padded input at offset (a, b)
  with taps kernel[::-1, ::-1][a::2, b::2]; as a matmul: patches (B, H, W, 4 cin) @ (4 cin,
  cout). Dots (and their gradients, also dots) run at matmul speed on XLA:CPU.
  """
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  from gan_jax.models.layers import _depth_to_space  # pylint: disable=g-import-not-at-top
  b, h, w, cin = x.shape
  cout = kernel.shape[-1]
  flipped = kernel[::-1, ::-1]
  xp = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
  rows = []
  for a in (0, 1):
    row = []
    for c in (0, 1):
      patches = jnp.concatenate([xp[:, a + i:a + i + h, c + j:c + j + w, :]
                                 for i in (0, 1) for j in (0, 1)], axis=-1)
      row.append(patches @ flipped[a::2, c::2].reshape(4 * cin, cout))
    rows.append(jnp.stack(row, -2))
  return _depth_to_space(jnp.stack(rows, -3))


_TAPS = (((1, 0), (3, -1)), ((2, 0), (0, 1)))  # phase a: ((kernel row, input shift), ...)


def gemm_upconv2x(x, kernel):
  """UpConv2x as one matmul + col2im (how cuDNN/torch do transposed convs).

  torch's out[2i - 1 + k] += x[i] w[k] for all 16 taps at once: Y = x @ W, (B*H*W, cin) @
  (cin, 16 cout), then each output phase (a, b) adds the 4 of Y's taps that land on it,
  shifted: phase 0 of a dimension is Y[m, k=1] + Y[m-1, k=3], phase 1 is Y[m, k=2] +
  Y[m+1, k=0]. Exactly the architecture's multiply-adds, all in a dot (and its gradients).
  """
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  from gan_jax.models.layers import _depth_to_space  # pylint: disable=g-import-not-at-top
  b, h, w, cin = x.shape
  cout = kernel.shape[-1]
  y = (x.reshape(-1, cin) @ kernel.transpose(2, 0, 1, 3).reshape(cin, 16 * cout))
  y = jnp.pad(y.reshape(b, h, w, 4, 4, cout), ((0, 0), (1, 1), (1, 1), (0, 0), (0, 0), (0, 0)))
  rows = []
  for a in (0, 1):
    row = []
    for c in (0, 1):
      row.append(sum(y[:, 1 + sh:1 + sh + h, 1 + sw:1 + sw + w, kh, kw, :]
                     for kh, sh in _TAPS[a] for kw, sw in _TAPS[c]))
    rows.append(jnp.stack(row, -2))
  return _depth_to_space(jnp.stack(rows, -3))


def _dot_dk(x_slice, g):
  """sum over batch and space of x_slice (B, H, W, cin)^T g (B, H, W, cout) -> (cin, cout)."""
  import jax  # pylint: disable=g-import-not-at-top
  return jax.lax.dot_general(x_slice, g, (((0, 1, 2), (0, 1, 2)), ((), ())))


def _make_dotdk_upconv2x():
  """UpConv2x ('phase' forward and input gradient) whose kernel gradient is 16 dots.

  XLA differentiates the phase convs' kernels into convolutions with image-sized windows
  (batch as the feature dimension), slow on XLA:CPU. Phase (a, b) correlates the 1-padded
  input at offset (a + i, b + j) with kernel[3 - a - 2i, 3 - b - 2j], so that tap's gradient
  is xp[:, a+i : a+i+H, b+j : b+j+W]^T . g_phase(a, b): one GEMM with K = B*H*W each.
  """
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  from gan_jax.models.layers import upconv2x  # pylint: disable=g-import-not-at-top

  @jax.custom_vjp
  def up(x, kernel):
    return upconv2x(x, kernel, 'phase')

  def fwd(x, kernel):
    return upconv2x(x, kernel, 'phase'), (x, kernel)

  def bwd(res, g):
    x, kernel = res
    b, h, w, _ = x.shape
    dx = jax.vjp(lambda x: upconv2x(x, kernel, 'phase'), x)[1](g)[0]
    xp = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    g = g.reshape(b, h, 2, w, 2, -1)
    taps = {}
    for a in (0, 1):
      for c in (0, 1):
        gp = g[:, :, a, :, c, :]
        for i in (0, 1):
          for j in (0, 1):
            taps[3 - a - 2 * i, 3 - c - 2 * j] = _dot_dk(
                xp[:, a + i:a + i + h, c + j:c + j + w, :], gp)
    dk = jnp.stack([jnp.stack([taps[r, q] for q in range(4)]) for r in range(4)])
    return dx, dk.astype(kernel.dtype)

  up.defvjp(fwd, bwd)
  return up


def _make_dotdk_conv4x4s2():
  """flax Conv(4x4, stride 2, SAME, even size) whose kernel gradient is 16 dots."""
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  from bench.xla_cpu_tricks import conv4x4s2 as conv  # pylint: disable=g-import-not-at-top

  @jax.custom_vjp
  def down(x, kernel):
    return conv(x, kernel)

  def fwd(x, kernel):
    return conv(x, kernel), (x, kernel)

  def bwd(res, g):
    x, kernel = res
    _, h, w, _ = x.shape
    dx = jax.vjp(lambda x: conv(x, kernel), x)[1](g)[0]
    xp = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    dk = jnp.stack([jnp.stack([_dot_dk(xp[:, i:i + h:2, j:j + w:2, :], g) for j in range(4)])
                    for i in range(4)])
    return dx, dk.astype(kernel.dtype)

  down.defvjp(fwd, bwd)
  return down


def im2col_conv4x4s2(x, kernel):
  """flax nn.Conv(4x4, stride 2, SAME) on even sizes (pads 1, 1) as one patches matmul."""
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  b, h, w, cin = x.shape
  xp = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
  patches = jnp.concatenate([xp[:, i:i + h:2, j:j + w:2, :] for i in range(4)
                             for j in range(4)], axis=-1)
  return patches @ kernel.reshape(16 * cin, -1)


def jax_layer(kind, shape, cin, cout, grads, method='phase'):
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  from jax import lax  # pylint: disable=g-import-not-at-top
  from gan_jax.models.layers import upconv2x  # pylint: disable=g-import-not-at-top
  key = jax.random.key(0)
  x = jax.random.normal(key, shape)
  if kind == 'dense':
    k = jax.random.normal(key, (cin, cout)) * 0.1
    f = lambda x, k: x @ k
  elif kind == 'up':
    k = jax.random.normal(key, (4, 4, cin, cout)) * 0.1
    up_method = method if method in ('phase', 'phase3x3', 'transpose') else 'phase'
    f = {'im2col': im2col_upconv2x, 'gemm': gemm_upconv2x}.get(
        method, lambda x, k: upconv2x(x, k, up_method))
    if method == 'dotdk':
      f = _make_dotdk_upconv2x()
  else:
    size, stride, pad = ((3, 1, 'SAME') if kind == 'conv3' else (4, 2, 'SAME'))
    k = jax.random.normal(key, (size, size, cin, cout)) * 0.1
    f = lambda x, k: lax.conv_general_dilated(x, k, (stride, stride), pad,
                                              dimension_numbers=('NHWC', 'HWIO', 'NHWC'))
    if method == 'im2col' and kind == 'down':
      f = im2col_conv4x4s2
    if method == 'dotdk' and kind == 'down':
      f = _make_dotdk_conv4x4s2()
    if method == 'phasedx' and kind == 'down':
      from bench.xla_cpu_tricks import conv4x4s2_phase_dx  # pylint: disable=g-import-not-at-top
      f = conv4x4s2_phase_dx
  if method == 'bf16':  # bfloat16 inputs and weights (f32 accumulation is up to XLA)
    x, k = x.astype(jnp.bfloat16), k.astype(jnp.bfloat16)
    if kind == 'up':
      f = lambda x, k: upconv2x(x, k, 'phase')
  y = f(x, k)
  ct = jnp.ones_like(y)
  fwd = jax.jit(f)
  # The output is returned too: else XLA drops the forward (a linear layer's gradients do not
  # need it) and 'f+b' would time the backward alone.
  def vjp(g, *args):
    y, pullback = jax.vjp(g, *args)
    return y, pullback(ct)
  if grads == 'wx':
    bwd = jax.jit(lambda x, k: vjp(f, x, k))
  elif grads == 'w':
    bwd = jax.jit(lambda x, k: vjp(lambda k: f(x, k), k))
  else:
    bwd = jax.jit(lambda x, k: vjp(lambda x: f(x, k), x))
  return (lambda: jax.block_until_ready(fwd(x, k)),
          lambda: jax.block_until_ready(bwd(x, k)))


def torch_layer(kind, shape, cin, cout, grads):
  import torch  # pylint: disable=g-import-not-at-top
  from torch.nn import functional as F  # pylint: disable=g-import-not-at-top
  if kind == 'dense':
    x = torch.randn(shape)
    k = torch.randn(cout, cin) * 0.1
    f = lambda x, k: F.linear(x, k)
  else:
    x = torch.randn(shape[0], shape[3], shape[1], shape[2])
    if kind == 'up':
      k = torch.randn(cin, cout, 4, 4) * 0.1
      f = lambda x, k: F.conv_transpose2d(x, k, stride=2, padding=1)
    elif kind == 'conv3':
      k = torch.randn(cout, cin, 3, 3) * 0.1
      f = lambda x, k: F.conv2d(x, k, padding=1)
    else:
      k = torch.randn(cout, cin, 4, 4) * 0.1
      f = lambda x, k: F.conv2d(x, k, stride=2, padding=1)
  x.requires_grad_('x' in grads)
  k.requires_grad_('w' in grads)

  def fwd():
    with torch.no_grad():
      f(x, k)

  def bwd():
    y = f(x, k)
    y.backward(torch.ones_like(y))
    x.grad = k.grad = None
  return fwd, bwd


def tf_layer(kind, shape, cin, cout, grads):
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  x = tf.Variable(tf.random.normal(shape))
  if kind == 'dense':
    k = tf.Variable(tf.random.normal((cin, cout)) * 0.1)
    f = lambda x, k: tf.matmul(x, k)
  elif kind == 'up':
    k = tf.Variable(tf.random.normal((4, 4, cout, cin)) * 0.1)
    out = (shape[0], 2 * shape[1], 2 * shape[2], cout)
    f = lambda x, k: tf.nn.conv2d_transpose(x, k, out, 2, 'SAME')
  else:
    size, stride = (3, 1) if kind == 'conv3' else (4, 2)
    k = tf.Variable(tf.random.normal((size, size, cin, cout)) * 0.1)
    f = lambda x, k: tf.nn.conv2d(x, k, stride, 'SAME')
  wrt = {'wx': [x, k], 'w': [k], 'x': [x]}[grads]

  @tf.function
  def fwd_fn():
    return f(x, k)

  @tf.function
  def bwd_fn():
    with tf.GradientTape() as tape:
      y = f(x, k)
    return [y] + tape.gradient(y, wrt, output_gradients=tf.ones_like(y))  # y: keep the fwd
  return (lambda: fwd_fn().numpy(), lambda: [g.numpy() for g in bwd_fn()])


def time_round_robin(calls, repeats, min_seconds=0.3):
  """{name: median seconds per call}; each sample runs a call enough times for min_seconds."""
  counts = {}
  for name, call in calls.items():
    call()
    t = time.perf_counter()
    call()
    counts[name] = max(1, int(min_seconds / max(time.perf_counter() - t, 1e-5)))
  samples = {name: [] for name in calls}
  for r in range(repeats):
    names = list(calls)
    names = names[r % len(names):] + names[:r % len(names)]
    for name in names:
      t = time.perf_counter()
      for _ in range(counts[name]):
        calls[name]()
      samples[name].append((time.perf_counter() - t) / counts[name])
  return {name: statistics.median(s) for name, s in samples.items()}


def step_parts(batch, repeats):
  """Times pieces of gan_jax.gan.train_step (same code paths) for the default config."""
  import functools  # pylint: disable=g-import-not-at-top
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  from configs import mnist_dcgan  # pylint: disable=g-import-not-at-top
  from gan_jax import gan as gan_lib  # pylint: disable=g-import-not-at-top
  gan = gan_lib.build(mnist_dcgan.get_config(), (28, 28, 1), 10)
  state = gan.init(jax.random.key(0))
  key = jax.random.key(1)
  real = jax.random.uniform(key, (batch, 28, 28, 1), minval=-1, maxval=1)
  z = jax.random.normal(key, (batch, 100))
  batch_u8 = {'image': np.zeros((batch, 28, 28, 1), np.uint8), 'label': np.zeros(batch, np.int32)}

  def g_fwd(state):
    return gan.generate(state.g_params, state.g_stats, z, None, train=True)[0]

  def d_update(state):
    both = jnp.concatenate([real, real])
    def loss(p):
      logits = gan.discriminate(p, state.d_stats, both, None, train=True)[0]
      r, f = jnp.split(logits, 2)
      return gan.loss.d(r, f)
    g = jax.grad(loss)(state.d_params)
    u, o = gan.d_tx.update(g, state.d_opt, state.d_params)
    return jax.tree.map(jnp.add, state.d_params, u), o

  def g_update(state):
    def loss(p):
      fake, stats = gan.generate(p, state.g_stats, z, None, train=True)
      return gan.loss.g(None, gan.discriminate(state.d_params, state.d_stats, fake, None,
                                               train=False)[0]), stats
    g, stats = jax.grad(loss, has_aux=True)(state.g_params)
    u, o = gan.g_tx.update(g, state.g_opt, state.g_params)
    return jax.tree.map(jnp.add, state.g_params, u), o, stats

  step = jax.jit(functools.partial(gan_lib.train_step, gan))
  parts = {'G forward (train BN) @B': jax.jit(g_fwd), 'D update @2B (fwd+bwd+adam)':
           jax.jit(d_update), 'G update @B (G fwd+bwd, D fwd+dx, adam)': jax.jit(g_update)}
  calls = {k: (lambda f=f: jax.block_until_ready(f(state))) for k, f in parts.items()}
  calls['whole train_step (not donated)'] = lambda: jax.block_until_ready(
      step(state, batch_u8, key))
  return time_round_robin(calls, repeats)


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--batch', type=int, default=256)
  parser.add_argument('--repeats', type=int, default=5)
  parser.add_argument('--frameworks', default='jax,torch,tf')
  parser.add_argument('--jax-methods', default='phase', help='UpConv2x methods to time')
  parser.add_argument('--parts', action='store_true')
  args = parser.parse_args()
  frameworks = args.frameworks.split(',')
  print(f'batch {args.batch}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}, '
        f'XLA_FLAGS={os.environ.get("XLA_FLAGS", "")!r}')
  if args.parts:
    print('\ngan_jax step parts (ms, median):')
    for name, s in step_parts(args.batch, args.repeats).items():
      print(f'  {name:<44}{1e3 * s:9.1f}')

  print(f'\n{"layer":<30}{"pass":<5}' + ''.join(f'{f:>16}' for f in frameworks)
        + '   (ms; GFLOP/s)')
  totals = {}
  for name, kind, shape, cin, cout, grads in layer_specs(args.batch):
    calls = {}
    for fw in frameworks:
      if fw.startswith('jax'):
        method = fw.split(':')[1] if ':' in fw else 'phase'
        f, b = jax_layer(kind, shape, cin, cout, grads, method)
      elif fw == 'torch':
        f, b = torch_layer(kind, shape, cin, cout, grads)
      else:
        f, b = tf_layer(kind, shape, cin, cout, grads)
      calls[(fw, 'fwd')], calls[(fw, 'bwd')] = f, b
    times = time_round_robin(calls, args.repeats)
    m = macs(kind, shape, cin, cout)
    for p, mult in (('fwd', 1), ('bwd', {'wx': 3, 'w': 2, 'x': 2}[grads])):
      if p == 'bwd':
        label = {'wx': 'f+b', 'w': 'f+dw', 'x': 'f+dx'}[grads]
      else:
        label = 'fwd'
      cells = ''
      for fw in frameworks:
        t = times[(fw, p)]
        totals[(fw, p)] = totals.get((fw, p), 0) + t
        cells += f'{1e3 * t:9.2f}{2 * m * mult / t / 1e9:7.1f}'
      print(f'{name:<30}{label:<5}{cells}', flush=True)
  print(f'{"sum":<30}{"fwd":<5}' + ''.join(f'{1e3 * totals[(fw, "fwd")]:9.2f}{"":7}'
                                           for fw in frameworks))
  print(f'{"sum":<30}{"bwd":<5}' + ''.join(f'{1e3 * totals[(fw, "bwd")]:9.2f}{"":7}'
                                           for fw in frameworks))
  print(f'load average at end {os.getloadavg()[0]:.1f}')


if __name__ == '__main__':
  main()
