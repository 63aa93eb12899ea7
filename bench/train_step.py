"""Issue 8: the gan_jax DCGAN train step against PyTorch and Keras, FLOP/s, compile and input.

Run by hand from the repo root (not part of the test suite):

  python -m bench.train_step                      # batches 64,256, 5 repeats
  python -m bench.train_step --quick              # sanity run at batch 64, about 4 minutes
  python -m bench.train_step --out /tmp/bench.json --batches 64,256 --repeats 7
  python -m bench.train_step --batches 64 --kinds jax --variants jax_scan8,jax_xnn   # XLA ideas

Each implementation runs in its own fresh worker process (`--worker`, a JSON-lines protocol on
stdin/stdout), so compile time is a first compile in a new process, frameworks do not share
thread pools, and XLA flags can differ per worker. Workers are set up one at a time, then timed
round-robin (the starting worker rotates each repeat) so that load from other processes on
this shared machine hits them equally; every rate is the median over --repeats of
(images in the repeat) / (seconds), after warm-up, with the end of each repeat synchronised
(block_until_ready / .item() / .numpy()).

What is timed, for each batch B (the default MNIST DCGAN config, width 32, 28x28x1):
  jax            gan_jax.gan.train_step jitted as gan_jax/train.py does it (1-device mesh
                 shardings, donated state), a host uint8 batch put on the device each step.
  torch          the same model and update in eager PyTorch (bench/torch_dcgan.py).
  torch_compile  the same with G and D under torch.compile (null + reason if it fails).
  torch_passive, torch_1t, torch_compile_passive   torch with OMP_WAIT_POLICY=PASSIVE or one
                 thread: its OpenMP threads spin by default, which a shared, oversubscribed
                 machine punishes hard; `torch_best_img_s` is the best eager setting.
  keras          Keras 3 on TensorFlow, custom GradientTape step in tf.function, no XLA: what
                 Keras picks on a CPU-only machine (bench/keras_dcgan.py).
  keras_xla      the same with tf.function(jit_compile=True).
  pipeline       gan_jax.input_pipeline.make_dataset + iterate over embedded MNIST train alone.
  peak_jax/peak_torch/peak_tf   a 4096x4096 float32 matmul (XLA, MKL/oneDNN via torch,
                 oneDNN via TensorFlow): the machine's peak is the largest median.
All frameworks get the same pre-made uint8 MNIST batches (NHWC) and sample their own noise.

MFU = (analytical FLOPs of one step: 2 x multiply-adds of every Dense/Conv layer, see
`step_flops`) x steps/s / peak. XLA's own count (cost_analysis of the compiled step) is
printed for information: it also counts elementwise ops and the padding zeros it multiplies.
"""

import argparse
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time
import traceback

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TARGETS = {'jax_over_torch': 1.5, 'jax_over_keras': 2.0, 'mfu': 0.40,
           'pipeline_over_training': 10.0, 'first_step_s': 20.0}
HEADLINE_KINDS = ('jax', 'torch', 'torch_compile', 'keras', 'keras_xla', 'pipeline',
                  'peak_jax', 'peak_torch', 'peak_tf', 'torch_passive', 'torch_1t',
                  'torch_compile_passive')
# torch's OpenMP threads spin-wait by default; on a shared, oversubscribed machine that can
# cost it several x (measured here: 50 vs 330 img/s at batch 64). These variants are torch's
# best case; `torch_best_img_s` is the fastest torch setting and gets its own ratio.
KIND_ENV = {'torch_passive': {'OMP_WAIT_POLICY': 'PASSIVE'},
            'torch_compile_passive': {'OMP_WAIT_POLICY': 'PASSIVE'}}
TORCH_KINDS = ('torch', 'torch_passive', 'torch_1t')

# jax variants for the investigation (--variants): bench-side changes except 'conv_chunks',
# which sets config.model.conv_chunks (jax_chunksN). 'flags' are appended to XLA_FLAGS of that
# worker; 'scan' runs that many steps per call with lax.scan; 'device_data' keeps the training
# images on the device and passes indices.
_LIBRARY_OPS = 'LIBRARY_FUSION_TYPE_INDIVIDUAL_CONVOLUTION,LIBRARY_FUSION_TYPE_INDIVIDUAL_DOT'
JAX_VARIANTS = {
    'jax': {},
    'jax_devdata': {'device_data': True},
    'jax_scan8': {'device_data': True, 'scan': 8},
    'jax_phase_dx': {'phase_dx': True},  # D's input gradients via upconv2x (xla_cpu_tricks)
    'jax_phase3x3': {'method': 'phase3x3'},
    'jax_transpose': {'method': 'transpose'},
    'jax_no_eigen_mt': {'flags': '--xla_cpu_multi_thread_eigen=false'},
    'jax_2dev': {'flags': '--xla_force_host_platform_device_count=2', 'mesh_devices': 2},
    'jax_xnn': {'flags': '--xla_cpu_use_xnnpack=true'},
    'jax_xnn_conv': {'flags': '--xla_cpu_experimental_xnn_fusion_type=' + _LIBRARY_OPS},
    'jax_ynn_conv': {'flags': '--xla_cpu_experimental_ynn_fusion_type=' + _LIBRARY_OPS},
    'jax_onednn_conv': {'flags': '--xla_cpu_experimental_onednn_fusion_type=' + _LIBRARY_OPS},
    'jax_onednn': {'flags': '--xla_cpu_use_onednn=true'},
    'jax_vec512': {'flags': '--xla_cpu_prefer_vector_width=512'},
    'jax_fastmath': {'flags': '--xla_cpu_enable_fast_math=true'},
    'jax_chunks1': {'conv_chunks': 1},
    'jax_chunks2': {'conv_chunks': 2},
    'jax_chunks4': {'conv_chunks': 4},
    'jax_chunks8': {'conv_chunks': 8},
    'jax_chunks16': {'conv_chunks': 16},
}


# ----------------------------------------------------------------------------------------------
# FLOPs of the architecture (analytical)

def dcgan_layers(width=32, latent=100, image=28, channels=1):
  """[(net, layer, forward multiply-adds per image, has weight grad)] of the default DCGAN.

  Only Dense and conv layers: batch norm, activations, losses and the optimizer are ignored
  (they are O(activations) or O(params), not O(MACs)). UpConv2x uses
  gan_jax.models.layers.upconv2x_flops (4 of the 16 taps reach each output pixel).
  """
  from gan_jax.models.layers import upconv2x_flops  # pylint: disable=g-import-not-at-top
  s = image // 4  # 7: two x2 upsamplings in G, two stride-2 convs in D.
  return [
      ('G', 'Dense_0', latent * s * s * 4 * width),
      ('G', 'UpConv2x_0', upconv2x_flops(1, s, s, 4 * width, 2 * width) // 2),
      ('G', 'UpConv2x_1', upconv2x_flops(1, 2 * s, 2 * s, 2 * width, width) // 2),
      ('G', 'Conv_0', image * image * 9 * width * channels),
      ('D', 'Conv_0', (image // 2) ** 2 * 16 * channels * width),
      ('D', 'Conv_1', s * s * 16 * width * 2 * width),
      ('D', 'dense', s * s * 2 * width),
  ]


def step_flops(batch, width=32):
  """Analytical FLOPs (2 per multiply-add) of one train step, total and per layer.

  D update: G forward on B (no gradient) + D forward and backward on 2B images; backward is
  2x forward (input and weight gradients) except for D's first conv, whose input needs no
  gradient (1x). G update: G forward and backward on B (2x, except Dense_0 whose input z needs
  no gradient: 1x) + D forward and backward-to-input only on B (1x: D's weights are frozen).
  """
  rows, total = [], 0
  for net, name, macs in dcgan_layers(width):
    first = (net, name) in (('G', 'Dense_0'), ('D', 'Conv_0'))  # input needs no gradient
    if net == 'G':
      d_update = batch * macs  # forward only
      g_update = batch * macs * (2 if first else 3)
    else:
      d_update = 2 * batch * macs * (2 if first else 3)
      g_update = batch * macs * 2  # forward + input gradient
    flops = 2 * (d_update + g_update)
    rows.append({'net': net, 'layer': name, 'fwd_macs_per_image': macs, 'step_flops': flops})
    total += flops
  return total, rows


# ----------------------------------------------------------------------------------------------
# Workers: each runs in its own process and answers JSON-lines commands.

def mnist_batches(batch, count=32, seed=0):
  """`count` uint8 NHWC batches of embedded MNIST train, shuffled, shared by all frameworks."""
  import numpy as np  # pylint: disable=g-import-not-at-top
  from gan_jax import data  # pylint: disable=g-import-not-at-top
  source = data.load('embedded:mnist', 'train')
  rng = np.random.default_rng(seed)
  order = np.concatenate([rng.permutation(len(source)) for _ in
                          range(math.ceil(count * batch / len(source)))])
  return [{'image': source.images[order[i * batch:(i + 1) * batch]],
           'label': source.labels[order[i * batch:(i + 1) * batch]]} for i in range(count)]


class JaxRunner:
  """gan_jax.gan.train_step, jitted like gan_jax/train.py (+ optional bench-only variants)."""

  def __init__(self, batch, method=None, scan=1, device_data=False, mesh_devices=1, flags='',
               phase_dx=False, conv_chunks=None):
    del flags  # Already in XLA_FLAGS of this process.
    t0 = time.perf_counter()
    import functools  # pylint: disable=g-import-not-at-top
    import jax  # pylint: disable=g-import-not-at-top
    import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
    import numpy as np  # pylint: disable=g-import-not-at-top
    from configs import mnist_dcgan  # pylint: disable=g-import-not-at-top
    from gan_jax import gan as gan_lib  # pylint: disable=g-import-not-at-top
    from gan_jax import data  # pylint: disable=g-import-not-at-top
    from gan_jax import sharding  # pylint: disable=g-import-not-at-top
    if method:  # Bench-only: every UpConv2x built in this process uses `method`.
      from gan_jax.models import layers  # pylint: disable=g-import-not-at-top
      layers.UpConv2x = functools.partial(layers.UpConv2x, method=method)
    if phase_dx:  # Bench-only: D's 4x4 stride-2 convs get an upconv2x input gradient.
      from bench import xla_cpu_tricks  # pylint: disable=g-import-not-at-top
      xla_cpu_tricks.patch_discriminator_convs()
    self.jax, self.batch, self.scan = jax, batch, scan
    t_import = time.perf_counter()

    config = mnist_dcgan.get_config()
    config.train.batch_size = batch
    if conv_chunks is not None:
      config.model.conv_chunks = conv_chunks
    source = data.load(config.data.source, 'train', config.data)
    gan = gan_lib.build(config, source.image_shape, source.num_classes)
    mesh = sharding.make_mesh(config.mesh)
    if mesh.size != mesh_devices:
      raise RuntimeError(f'expected {mesh_devices} devices, got {mesh.size}')
    self.key = jax.random.key(config.seed)
    abstract = jax.eval_shape(gan.init, self.key)
    state_sh = sharding.state_sharding(mesh, abstract)
    batch_sh, replicated = sharding.batch_sharding(mesh), sharding.replicated(mesh)
    self.state = jax.block_until_ready(jax.jit(gan.init, out_shardings=state_sh)(self.key))
    self.host_batches = mnist_batches(batch)
    t_init = time.perf_counter()

    if device_data:  # The whole train split on the device; a step receives indices.
      images = jax.device_put(source.images, replicated)
      labels = jax.device_put(source.labels, replicated)
      rng = np.random.default_rng(0)
      self.host_batches = [rng.permutation(len(source))[:batch * scan].reshape(scan, batch)
                           .astype(np.int32) for _ in range(32)]

      def multi_step(state, images, labels, idx, key):
        def body(state, i):
          return gan_lib.train_step(gan, state, {'image': images[i], 'label': labels[i]}, key)
        if scan == 1:
          return body(state, idx[0])
        state, metrics = jax.lax.scan(body, state, idx)
        return state, jax.tree.map(lambda m: m[-1], metrics)

      # The data set is an argument, not a closed-over constant (XLA would embed 3 MB).
      jitted = jax.jit(multi_step, in_shardings=(state_sh, replicated, replicated, replicated,
                                                 replicated),
                       out_shardings=(state_sh, replicated), donate_argnums=0)
      step_fn = _BindData(jitted, images, labels)
      self.put = lambda b: b
    else:
      if scan != 1:
        raise ValueError('scan needs device_data')
      step_fn = jax.jit(functools.partial(gan_lib.train_step, gan),
                        in_shardings=(state_sh, batch_sh, replicated),
                        out_shardings=(state_sh, replicated), donate_argnums=0)
      self.put = lambda b: sharding.put_batch(b, batch_sh)

    # First step as a fresh training process pays it: trace + lower, compile, run.
    t = time.perf_counter()
    first = self.put(self.host_batches[0])
    lowered = step_fn.lower(self.state, first, self.key)
    t_lower = time.perf_counter()
    self.step = lowered.compile()
    t_compile = time.perf_counter()
    self.state, metrics = self.step(self.state, first, self.key)
    jax.block_until_ready((self.state, metrics))
    t_first = time.perf_counter()
    cost = self.step.cost_analysis()
    cost = cost[0] if isinstance(cost, (list, tuple)) else cost
    flops, layer_rows = step_flops(batch)
    self.info = {
        'import_s': t_import - t0, 'init_s': t_init - t_import, 'lower_s': t_lower - t,
        'compile_s': t_compile - t_lower, 'first_run_s': t_first - t_compile,
        'first_step_s': t_first - t, 'steps_per_call': scan,
        'xla_flops_per_step': float(cost.get('flops', float('nan'))) / scan,
        'xla_bytes_per_step': float(cost.get('bytes accessed', float('nan'))) / scan,
        'analytic_flops_per_step': flops, 'layer_flops': layer_rows,
        'devices': jax.device_count(), 'jax': jax.__version__,
        'param_shapes': {net: {k: [list(v.shape) for v in jax.tree.leaves(p)]
                               for k, p in params.items()}
                         for net, params in (('G', self.state.g_params),
                                             ('D', self.state.d_params))},
        'first_metrics': {k: float(v) for k, v in metrics.items()},
    }
    self._jnp = jnp
    self.i = 1

  def run(self, n):
    """n steps (rounded up to whole calls); returns (seconds, images)."""
    calls = math.ceil(n / self.scan)
    t = time.perf_counter()
    for _ in range(calls):
      b = self.put(self.host_batches[self.i % len(self.host_batches)])
      self.i += 1
      self.state, metrics = self.step(self.state, b, self.key)
    self.jax.block_until_ready((self.state, metrics))
    return time.perf_counter() - t, calls * self.scan * self.batch


class _BindData:
  """f(state, idx, key) -> jitted(state, images, labels, idx, key), also for .lower()."""

  def __init__(self, jitted, images, labels):
    self.jitted, self.images, self.labels = jitted, images, labels

  def lower(self, state, idx, key):
    return _BindData(self.jitted.lower(state, self.images, self.labels, idx, key),
                     self.images, self.labels)

  def compile(self):
    return _BindData(self.jitted.compile(), self.images, self.labels)

  def cost_analysis(self):
    return self.jitted.cost_analysis()

  def __call__(self, state, idx, key):
    return self.jitted(state, self.images, self.labels, idx, key)


class TorchRunner:

  def __init__(self, batch, compile=False, threads=None):
    t0 = time.perf_counter()
    import torch  # pylint: disable=g-import-not-at-top
    from bench import torch_dcgan  # pylint: disable=g-import-not-at-top
    if threads:
      torch.set_num_threads(threads)
    t_import = time.perf_counter()
    self.batch, self.torch = batch, torch
    self.model = torch_dcgan.TorchDCGAN(compile=compile)
    self.host_batches = mnist_batches(batch)
    t = time.perf_counter()
    self.model.step(self.host_batches[0]['image'])
    t_first = time.perf_counter()
    self.info = {'import_s': t_import - t0, 'first_step_s': t_first - t,
                 'torch': torch.__version__, 'threads': torch.get_num_threads(),
                 'compile': compile, 'omp_wait_policy': os.environ.get('OMP_WAIT_POLICY')}
    self.i = 1

  def run(self, n):
    t = time.perf_counter()
    for _ in range(n):
      self.model.step(self.host_batches[self.i % len(self.host_batches)]['image'])
      self.i += 1
    return time.perf_counter() - t, n * self.batch


class KerasRunner:

  def __init__(self, batch, jit_compile=False):
    t0 = time.perf_counter()
    from bench import keras_dcgan  # pylint: disable=g-import-not-at-top
    import keras  # pylint: disable=g-import-not-at-top
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    t_import = time.perf_counter()
    self.batch, self.tf = batch, tf
    self.model = keras_dcgan.KerasDCGAN(jit_compile=jit_compile)
    self.host_batches = mnist_batches(batch)
    t = time.perf_counter()
    self.model.step(tf.convert_to_tensor(self.host_batches[0]['image']))['d_loss'].numpy()
    t_first = time.perf_counter()
    self.info = {'import_s': t_import - t0, 'first_step_s': t_first - t,
                 'keras': keras.__version__, 'tensorflow': tf.__version__,
                 'backend': keras.backend.backend(), 'jit_compile': jit_compile,
                 'intra_op_threads': tf.config.threading.get_intra_op_parallelism_threads()}
    self.i = 1

  def run(self, n):
    t = time.perf_counter()
    for _ in range(n):
      m = self.model.step(self.tf.convert_to_tensor(
          self.host_batches[self.i % len(self.host_batches)]['image']))
      self.i += 1
    m['d_loss'].numpy()
    return time.perf_counter() - t, n * self.batch


class PipelineRunner:
  """gan_jax's input pipeline alone, as gan_jax/train.py builds it (grain, 2 threads)."""

  def __init__(self, batch):
    t0 = time.perf_counter()
    from gan_jax import data, input_pipeline  # pylint: disable=g-import-not-at-top
    source = data.load('embedded:mnist', 'train')
    t_load = time.perf_counter()
    self.batches = input_pipeline.iterate(
        input_pipeline.make_dataset(source, seed=0, global_batch_size=batch))
    first = next(self.batches)
    assert first['image'].shape == (batch, 28, 28, 1), first['image'].shape
    self.batch = batch
    self.info = {'load_s': t_load - t0, 'first_batch_s': time.perf_counter() - t_load}

  def run(self, n):
    t = time.perf_counter()
    for _ in range(n):
      next(self.batches)
    return time.perf_counter() - t, n * self.batch


class PeakRunner:
  """A float32 size x size matmul; units are FLOPs."""

  def __init__(self, batch, framework='jax', size=4096):
    del batch
    self.flops = 2 * size ** 3
    if framework == 'jax':
      import jax  # pylint: disable=g-import-not-at-top
      import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
      a = jax.random.normal(jax.random.key(0), (size, size), jnp.float32)
      b = jax.random.normal(jax.random.key(1), (size, size), jnp.float32)
      f = jax.jit(jnp.matmul)
      self.call = lambda: jax.block_until_ready(f(a, b))
    elif framework == 'torch':
      import torch  # pylint: disable=g-import-not-at-top
      a, b = torch.randn(size, size), torch.randn(size, size)
      self.call = lambda: torch.mm(a, b)
    else:  # TensorFlow's oneDNN matmul
      import tensorflow as tf  # pylint: disable=g-import-not-at-top
      a, b = tf.random.normal((size, size)), tf.random.normal((size, size))
      matmul = tf.function(tf.linalg.matmul)
      self.call = lambda: matmul(a, b).numpy()
    self.call()
    self.info = {'framework': framework, 'size': size}

  def run(self, n):
    t = time.perf_counter()
    for _ in range(n):
      self.call()
    return time.perf_counter() - t, n * self.flops


def make_runner(kind, batch):
  if kind.startswith('jax'):
    opts = dict(JAX_VARIANTS[kind])
    return JaxRunner(batch, **opts)
  return {
      'torch': lambda: TorchRunner(batch),
      'torch_compile': lambda: TorchRunner(batch, compile=True),
      'torch_passive': lambda: TorchRunner(batch),
      'torch_compile_passive': lambda: TorchRunner(batch, compile=True),
      'torch_1t': lambda: TorchRunner(batch, threads=1),
      'keras': lambda: KerasRunner(batch),
      'keras_xla': lambda: KerasRunner(batch, jit_compile=True),
      'pipeline': lambda: PipelineRunner(batch),
      'peak_jax': lambda: PeakRunner(batch, 'jax'),
      'peak_torch': lambda: PeakRunner(batch, 'torch'),
      'peak_tf': lambda: PeakRunner(batch, 'tf'),
      'verify': lambda: Verifier(batch),
  }[kind]()


def worker_main(kind, batch):
  """JSON lines on the real stdout; everything else (library chatter) goes to stderr."""
  out = os.fdopen(os.dup(1), 'w', buffering=1)
  os.dup2(2, 1)
  sys.stdout = sys.stderr
  send = lambda obj: out.write(json.dumps(obj, default=float) + '\n')
  try:
    runner = make_runner(kind, batch)
  except Exception as e:  # Reported to the driver, which records null and the reason.
    traceback.print_exc()
    first_line = str(e).strip().splitlines()[0] if str(e).strip() else ''
    send({'error': f'{type(e).__name__}: {first_line}'})
    return
  send({'info': runner.info})
  for line in sys.stdin:
    cmd = json.loads(line)
    if cmd['cmd'] == 'run':
      try:
        seconds, units = runner.run(cmd['n'])
        send({'seconds': seconds, 'units': units})
      except Exception as e:
        traceback.print_exc()
        send({'error': f'{type(e).__name__}: {e}'})
    elif cmd['cmd'] == 'quit':
      return


# ----------------------------------------------------------------------------------------------
# Verification: same layers, same parameter counts, same outputs for the same weights.

class Verifier:
  """Loads jax's initial weights into torch and Keras and compares layers, nets and 3 steps."""

  def __init__(self, batch):
    import numpy as np  # pylint: disable=g-import-not-at-top
    import jax  # pylint: disable=g-import-not-at-top
    import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
    import flax.linen as nn  # pylint: disable=g-import-not-at-top
    import torch  # pylint: disable=g-import-not-at-top
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    import keras  # pylint: disable=g-import-not-at-top
    from bench import keras_dcgan, torch_dcgan  # pylint: disable=g-import-not-at-top
    from configs import mnist_dcgan  # pylint: disable=g-import-not-at-top
    from gan_jax import gan as gan_lib  # pylint: disable=g-import-not-at-top
    from gan_jax.models import layers as jax_layers  # pylint: disable=g-import-not-at-top

    batch = min(batch, 64)
    checks = []

    def check(name, ref, *others, rtol=1e-4):
      ref = np.asarray(ref, np.float64)
      scale = max(float(np.max(np.abs(ref))), 1e-12)
      errs = [float(np.max(np.abs(np.asarray(o, np.float64) - ref))) / scale for o in others]
      checks.append({'check': name, 'max_rel_err': errs, 'ok': all(e <= rtol for e in errs),
                     'rtol': rtol})

    # 1. UpConv2x (every method) vs torch ConvTranspose2d(k4, s2, p1) vs Keras Conv2DTranspose.
    rng = np.random.default_rng(0)
    for cin, cout, size in ((128, 64, 7), (64, 32, 14)):
      x = rng.standard_normal((8, size, size, cin)).astype(np.float32)
      k = (rng.standard_normal((4, 4, cin, cout)) / np.sqrt(16 * cin)).astype(np.float32)
      ref = torch.nn.functional.conv_transpose2d(
          torch.from_numpy(x).permute(0, 3, 1, 2), torch.from_numpy(k.transpose(2, 3, 0, 1)),
          stride=2, padding=1).permute(0, 2, 3, 1).numpy()
      ups = [np.asarray(jax_layers.upconv2x(jnp.asarray(x), jnp.asarray(k), m))
             for m in jax_layers.METHODS]
      layer = keras.layers.Conv2DTranspose(cout, 4, strides=2, padding='same', use_bias=False)
      layer.build((None, size, size, cin))
      layer.set_weights([k.transpose(0, 1, 3, 2)])
      check(f'UpConv2x {cin}->{cout} {size}px: jax {"/".join(jax_layers.METHODS)}, '
            'keras vs torch ConvTranspose2d', ref, *ups, layer(x).numpy())
    # D's conv: flax nn.Conv(4x4, stride 2, SAME) vs torch SameConv2d vs Keras Conv2D 'same'.
    for cin, cout, size in ((1, 32, 28), (32, 64, 14)):
      x = rng.standard_normal((8, size, size, cin)).astype(np.float32)
      conv = nn.Conv(cout, (4, 4), strides=2)
      params = conv.init(jax.random.key(0), x)
      kern = np.array(params['params']['kernel'])
      bias = np.array(params['params']['bias']) + 0.1
      params = {'params': {'kernel': kern, 'bias': bias}}
      tconv = torch_dcgan.SameConv2d(cin, cout, 4, 2, size)
      with torch.no_grad():
        tconv.weight.copy_(torch.from_numpy(kern.transpose(3, 2, 0, 1)))
        tconv.bias.copy_(torch.from_numpy(bias))
        tout = tconv(torch.from_numpy(x).permute(0, 3, 1, 2)).permute(0, 2, 3, 1).numpy()
      kconv = keras.layers.Conv2D(cout, 4, strides=2, padding='same')
      kconv.build((None, size, size, cin))
      kconv.set_weights([kern, bias])
      pads = jax.lax.padtype_to_pads((size, size), (4, 4), (2, 2), 'SAME')
      check(f'Conv4x4 s2 SAME {cin}->{cout} {size}px (pads {pads[0]}): torch, keras vs flax',
            conv.apply(params, x), tout, kconv(x).numpy())

    # 2. Whole nets with jax's initial weights, then three train steps with the same noise.
    config = mnist_dcgan.get_config()
    gan = gan_lib.build(config, (28, 28, 1), 10)
    state = gan.init(jax.random.key(0))
    g_np = jax.tree.map(np.asarray, state.g_params)
    d_np = jax.tree.map(np.asarray, state.d_params)
    tm, km = torch_dcgan.TorchDCGAN(), keras_dcgan.KerasDCGAN()
    tm.load_flax(g_np, d_np)
    km.load_flax(g_np, d_np)

    def rows(params, order):
      return [(name, int(sum(np.size(v) for v in jax.tree.leaves(params[name]))))
              for name in order]
    d_order = ['Conv_0', 'Conv_1', torch_dcgan.dense_key(d_np)]
    if set(g_np) != set(_G_ORDER) or set(d_np) != set(d_order):
      raise RuntimeError(f'unexpected flax layers {sorted(g_np)} {sorted(d_np)}')
    self.table = {'G': list(zip(rows(g_np, _G_ORDER), torch_dcgan.layer_params(tm.G),
                                keras_dcgan.layer_params(km.G))),
                  'D': list(zip(rows(d_np, d_order), torch_dcgan.layer_params(tm.D),
                                keras_dcgan.layer_params(km.D)))}
    counts_ok = all(j[1] == t[1] == k[1] for net in self.table.values() for j, t, k in net)
    totals = {net: [sum(r[i][1] for r in self.table[net]) for i in range(3)]
              for net in self.table}
    checks.append({'check': 'parameter count per layer (table)', 'ok': counts_ok
                   and len(self.table['G']) == 7 and len(self.table['D']) == 3,
                   'max_rel_err': [0.0]})

    images = mnist_batches(batch, count=3)
    z = np.asarray(jax.random.normal(jax.random.key(5), (batch, 100)))
    jax_g = gan.generate(state.g_params, state.g_stats, z, None, train=True)[0]
    with torch.no_grad():
      torch_g = tm.G(torch.from_numpy(z)).permute(0, 2, 3, 1).numpy()
    check('G forward (train-mode BN), same weights: torch, keras vs jax', jax_g, torch_g,
          km.G(z, training=True).numpy(), rtol=2e-4)
    real = np.asarray(images[0]['image'], np.float32) * (2 / 255) - 1
    jax_d = gan.discriminate(state.d_params, state.d_stats, real, None, train=True)[0]
    with torch.no_grad():
      torch_d = tm.D(torch.from_numpy(real).permute(0, 3, 1, 2)).numpy()
    check('D forward, same weights: torch, keras vs jax', jax_d, torch_d,
          km.D(real, training=True).numpy()[:, 0])

    key = jax.random.key(1)
    step = jax.jit(lambda s, b: gan_lib.train_step(gan, s, b, key))
    history = {'jax': [], 'torch': [], 'keras': []}
    for i in range(3):
      # gan_jax.gan.train_step's noise: rngs[0] for D's update, rngs[3] for G's.
      rngs = jax.random.split(jax.random.fold_in(key, i), 5)
      z1 = np.asarray(gan.sample_noise(rngs[0], batch)[0])
      z2 = np.asarray(gan.sample_noise(rngs[3], batch)[0])
      state, m = step(state, images[i])
      history['jax'].append({k: float(v) for k, v in m.items()})
      history['torch'].append(tm.step(images[i]['image'], torch.from_numpy(z1),
                                      torch.from_numpy(z2), metrics=True))
      history['keras'].append({k: float(v) for k, v in
                               km.step(tf.convert_to_tensor(images[i]['image']), z1, z2).items()})
    keys = sorted(history['jax'][0])
    flat = lambda h: [[s[k] for k in keys] for s in h]
    check('3 train steps, same noise: metrics (losses, logits, grad norms) torch, keras vs jax',
          flat(history['jax']), flat(history['torch']), flat(history['keras']), rtol=1e-3)
    # Adam's early updates are ~lr * sign(grad), so float32 round-off can flip an element with a
    # tiny gradient: compare whole updates, ||delta_torch - delta_jax|| / ||delta_jax||.
    init_t = _flax_g_in_torch_order(g_np)
    for name, mine, theirs in (('G params', state.g_params, list(tm.G.parameters())),
                               ('EMA G params', state.ema_params, tm.ema)):
      mine = _flax_g_in_torch_order(jax.tree.map(np.asarray, mine))
      theirs = [p.detach().numpy() for p in theirs]
      num = math.sqrt(sum(float(np.sum((t - m) ** 2)) for t, m in zip(theirs, mine)))
      den = math.sqrt(sum(float(np.sum((m - i0) ** 2)) for m, i0 in zip(mine, init_t)))
      checks.append({'check': f'{name} after 3 steps: torch vs jax, |update difference| / '
                              '|update|', 'max_rel_err': [num / den], 'ok': num / den < 1e-2,
                     'rtol': 1e-2})
    self.info = {'checks': checks, 'param_table': self.table, 'param_totals': totals,
                 'history': history, 'batch': batch}

  def run(self, n):
    raise NotImplementedError


def _flax_g_in_torch_order(g):
  """flax G params (numpy) as the list torch_dcgan.Generator.parameters() yields, torch layouts."""
  return [g['Dense_0']['kernel'].reshape(100, 7, 7, 128).transpose(3, 1, 2, 0).reshape(6272, 100),
          g['BatchNorm_0']['scale'], g['BatchNorm_0']['bias'],
          g['UpConv2x_0']['kernel'].transpose(2, 3, 0, 1),
          g['BatchNorm_1']['scale'], g['BatchNorm_1']['bias'],
          g['UpConv2x_1']['kernel'].transpose(2, 3, 0, 1),
          g['BatchNorm_2']['scale'], g['BatchNorm_2']['bias'],
          g['Conv_0']['kernel'].transpose(3, 2, 0, 1), g['Conv_0']['bias']]


_G_ORDER = ['Dense_0', 'BatchNorm_0', 'UpConv2x_0', 'BatchNorm_1', 'UpConv2x_1', 'BatchNorm_2',
            'Conv_0']  # flax's auto names, in call order (= torch and Keras layer order)


# ----------------------------------------------------------------------------------------------
# Driver

class Worker:
  """A worker process; setup happens in the constructor (one worker at a time)."""

  def __init__(self, kind, batch, log):
    env = dict(os.environ)
    env['PYTHONPATH'] = REPO + os.pathsep + env.get('PYTHONPATH', '')
    env.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
    env.update(KIND_ENV.get(kind, {}))
    flags = JAX_VARIANTS.get(kind, {}).get('flags', '')
    if flags:
      env['XLA_FLAGS'] = (env.get('XLA_FLAGS', '') + ' ' + flags).strip()
    self.kind, self.batch = kind, batch
    log.write(f'\n===== worker {kind} batch {batch} =====\n')
    log.flush()
    t = time.perf_counter()
    self.proc = subprocess.Popen(
        [sys.executable, '-m', 'bench.train_step', '--worker', kind, '--batches', str(batch)],
        cwd=REPO, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log,
        text=True, bufsize=1)
    reply = self._read()
    self.process_s = time.perf_counter() - t  # fresh process start to first step done
    self.error = reply.get('error')
    self.info = reply.get('info', {})

  def _read(self):
    line = self.proc.stdout.readline()
    if not line:
      self.proc.wait()
      return {'error': f'worker exited with code {self.proc.returncode} (see the worker log)'}
    return json.loads(line)

  def run(self, n):
    self.proc.stdin.write(json.dumps({'cmd': 'run', 'n': n}) + '\n')
    self.proc.stdin.flush()
    reply = self._read()
    if 'error' in reply:
      raise RuntimeError(reply['error'])
    return reply['seconds'], reply['units']

  def close(self):
    if self.proc.poll() is None:
      try:
        self.proc.stdin.write(json.dumps({'cmd': 'quit'}) + '\n')
        self.proc.stdin.flush()
        self.proc.wait(timeout=60)
      except (OSError, subprocess.TimeoutExpired):
        self.proc.kill()
        self.proc.wait()


def time_round_robin(workers, repeats, seconds_per_repeat, warmup_s):
  """{kind: [rate per repeat]} with rate = units / second; a failing worker is dropped."""
  counts, rates, errors = {}, {w.kind: [] for w in workers}, {}
  live = []
  for w in workers:
    try:
      seconds, units = w.run(1)  # calibration (the first timed call after setup)
      per_call = max(seconds, 1e-4)
      counts[w.kind] = max(1, int(seconds_per_repeat / per_call))
      warm = max(1, int(warmup_s / per_call))
      w.run(warm)
      live.append(w)
    except RuntimeError as e:
      errors[w.kind] = str(e)
  for r in range(repeats):
    order = live[r % len(live):] + live[:r % len(live)] if live else []
    for w in order:
      if w.kind in errors:
        continue
      try:
        seconds, units = w.run(counts[w.kind])
        rates[w.kind].append(units / seconds)
      except RuntimeError as e:
        errors[w.kind] = str(e)
  return rates, counts, errors


def summarize(rates):
  if not rates:
    return None, None
  med = statistics.median(rates)
  return med, (min(rates) / med, max(rates) / med)


def fmt(x, spec='.1f', none='null'):
  return none if x is None else format(x, spec)


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--batches', default=None,
                      help='comma-separated batch sizes (default 64,256; 64 with --quick)')
  parser.add_argument('--repeats', type=int, default=5)
  parser.add_argument('--quick', action='store_true',
                      help='fast sanity run: batch 64, 2 repeats of ~0.4 s, short warm-up')
  parser.add_argument('--out', help='write the results as JSON to this file')
  parser.add_argument('--kinds', default=','.join(HEADLINE_KINDS),
                      help=f'implementations to time (default {",".join(HEADLINE_KINDS)})')
  parser.add_argument('--variants', default='',
                      help=f'extra jax variants to time beside them: {",".join(JAX_VARIANTS)}')
  parser.add_argument('--no-verify', action='store_true', help='skip the equivalence checks')
  parser.add_argument('--seconds', type=float, default=None, help='seconds per repeat per worker')
  parser.add_argument('--log', default='/tmp/bench_train_step_workers.log',
                      help="the workers' stderr (library warnings, tracebacks)")
  parser.add_argument('--worker', help=argparse.SUPPRESS)
  args = parser.parse_args(argv)
  batches = [int(b) for b in (args.batches or ('64' if args.quick else '64,256')).split(',')
             if b]
  if args.worker:
    return worker_main(args.worker, batches[0])

  repeats = 2 if args.quick and args.repeats == 5 else args.repeats
  seconds = args.seconds or (0.4 if args.quick else 2.0)
  warmup_s = 0.5 if args.quick else 3.0
  kinds = [k for k in args.kinds.split(',') if k]
  kinds += [v for v in args.variants.split(',') if v and v not in kinds]
  for k in kinds:
    if k not in HEADLINE_KINDS and k not in JAX_VARIANTS:
      parser.error(f'unknown kind {k!r}')
  log = open(args.log, 'w')  # pylint: disable=consider-using-with
  print(f'gan_jax train-step benchmark: {os.cpu_count()} CPUs ({_cpu_name()}), python '
        f'{platform.python_version()}, batches {batches}, repeats {repeats}, ~{seconds:g} s per '
        f'repeat per worker, load average {os.getloadavg()[0]:.1f} at start; worker log '
        f'{args.log}', flush=True)
  results = {'machine': {'cpus': os.cpu_count(), 'cpu': _cpu_name(),
                         'load_avg_start': os.getloadavg()[0]},
             'args': {'batches': batches, 'repeats': repeats, 'seconds_per_repeat': seconds,
                      'kinds': kinds, 'quick': args.quick},
             'batches': {}}

  if not args.no_verify:
    print('\n== Same model? (jax initial weights loaded into torch and Keras) ==', flush=True)
    v = Worker('verify', 64, log)
    v.close()
    results['verify'] = v.info or {'error': v.error}
    print_verify(v)

  peaks = {}
  for batch in batches:
    print(f'\n== batch {batch}: setting up workers one at a time (fresh processes) ==',
          flush=True)
    workers = []
    for kind in kinds:
      w = Worker(kind, batch, log)
      status = (f'ERROR {w.error}' if w.error else
                f'first step {fmt(w.info.get("first_step_s"), ".1f")} s'
                + (f' (lower {w.info["lower_s"]:.1f} + compile {w.info["compile_s"]:.1f} + run '
                   f'{w.info["first_run_s"]:.2f}; imports {w.info["import_s"]:.1f}, init '
                   f'{w.info["init_s"]:.1f})' if 'compile_s' in w.info else '')
                + f', process start to ready {w.process_s:.1f} s')
      print(f'  {kind:<16} {status}', flush=True)
      if w.error:
        w.close()
      workers.append(w)
    live = [w for w in workers if not w.error]
    rates, counts, errors = time_round_robin(live, repeats, seconds, warmup_s)
    for w in workers:
      w.close()
    row = {'batch': batch, 'load_avg': os.getloadavg()[0]}
    by_kind = {w.kind: w for w in workers}
    print(f'\n  {"kind":<16}{"median":>12}  {"min/med":>8}{"max/med":>8}  {"calls/rep":>9}  unit')
    for kind in kinds:
      w = by_kind[kind]
      err = w.error or errors.get(kind)
      med, spread = summarize(rates.get(kind, [])) if not err else (None, None)
      unit = 'GFLOP/s' if kind.startswith('peak') else 'images/s'
      scale = 1e-9 if kind.startswith('peak') else 1.0
      row[kind] = {'rate': med, 'unit': unit, 'repeats': rates.get(kind),
                   'spread': spread, 'info': w.info, 'error': err}
      if err:
        print(f'  {kind:<16}{"null":>12}  ({err})')
      else:
        print(f'  {kind:<16}{med * scale:12.1f}  {spread[0]:8.2f}{spread[1]:8.2f}  '
              f'{counts[kind]:9d}  {unit}')
      if kind.startswith('peak') and med:
        peaks.setdefault(kind, []).append(med * 1e-9)
    results['batches'][str(batch)] = row

  # Peak: the best matmul rate seen (median per batch round, max over frameworks and rounds).
  peak_gflops = max((max(v) for v in peaks.values()), default=None)
  results['peak_gflops'] = peak_gflops  # best of all rounds; each batch row has its own
  results['peak'] = {k: max(v) for k, v in peaks.items()}
  print('\n== Summary (images/s are medians; ratios are jax / other at the same batch) ==')
  print(f'peak float32 matmul: ' + ', '.join(f'{k} {max(v):.1f}' for k, v in peaks.items())
        + f' GFLOP/s -> peak_gflops = {fmt(peak_gflops)}')
  for batch in batches:
    row = results['batches'][str(batch)]
    rate = lambda k: (row.get(k) or {}).get('rate')
    jax_rate = rate('jax')
    jax_info = (row.get('jax') or {}).get('info') or {}
    flops = jax_info.get('analytic_flops_per_step')
    xla_flops = jax_info.get('xla_flops_per_step')
    achieved = jax_rate / batch * flops / 1e9 if jax_rate and flops else None
    # MFU against the peak measured in this batch's own round (same load on the machine).
    batch_peaks = [rate(k) * 1e-9 for k in ('peak_jax', 'peak_torch', 'peak_tf') if rate(k)]
    batch_peak = max(batch_peaks) if batch_peaks else peak_gflops
    flat = {
        'batch': batch,
        'jax_img_s': jax_rate, 'torch_img_s': rate('torch'),
        'torch_compile_img_s': rate('torch_compile'), 'keras_img_s': rate('keras'),
        'keras_xla_img_s': rate('keras_xla'), 'pipeline_img_s': rate('pipeline'),
        'first_step_s': jax_info.get('first_step_s'),
        'compile_s': jax_info.get('compile_s'),
        'analytic_gflop_per_step': flops / 1e9 if flops else None,
        'xla_gflop_per_step': xla_flops / 1e9 if xla_flops else None,
        'achieved_gflops': achieved,
        'achieved_gflops_xla_count': (jax_rate / batch * xla_flops / 1e9
                                      if jax_rate and xla_flops else None),
        'peak_gflops': batch_peak, 'peak_gflops_all_rounds': peak_gflops,
        'mfu': achieved / batch_peak if achieved and batch_peak else None,
        'torch_compile_error': (row.get('torch_compile') or {}).get('error'),
    }
    torch_rates = {k: rate(k) for k in TORCH_KINDS + ('torch_compile', 'torch_compile_passive')
                   if rate(k)}
    flat['torch_passive_img_s'] = rate('torch_passive')
    flat['torch_1t_img_s'] = rate('torch_1t')
    flat['torch_compile_passive_img_s'] = rate('torch_compile_passive')
    best_eager = max((k for k in TORCH_KINDS if rate(k)), key=rate, default=None)
    flat['torch_best_img_s'] = rate(best_eager) if best_eager else None
    flat['torch_best_setting'] = best_eager
    best_any = max(torch_rates, key=torch_rates.get, default=None)
    flat['torch_any_best_img_s'] = torch_rates.get(best_any)
    flat['torch_any_best_setting'] = best_any
    for other in ('torch', 'torch_compile', 'keras', 'keras_xla', 'torch_best', 'torch_any_best'):
      other_rate = flat.get(f'{other}_img_s')
      flat[f'ratio_jax_{other}'] = jax_rate / other_rate if jax_rate and other_rate else None
    flat['pipeline_over_training'] = (rate('pipeline') / jax_rate
                                      if jax_rate and rate('pipeline') else None)
    for v in kinds:
      if v in JAX_VARIANTS and v != 'jax':
        flat[f'{v}_img_s'] = rate(v)
        flat[f'ratio_{v}_jax'] = rate(v) / jax_rate if jax_rate and rate(v) else None
    row.update(flat)
    print(f'\nbatch {batch}:')
    print(f'  jax {fmt(jax_rate)} img/s | torch eager {fmt(rate("torch"))} | torch.compile '
          f'{fmt(rate("torch_compile"))} | keras (tf.function) {fmt(rate("keras"))} | keras XLA '
          f'{fmt(rate("keras_xla"))}')
    print(f'  torch eager settings: default {fmt(rate("torch"))}, OMP_WAIT_POLICY=PASSIVE '
          f'{fmt(rate("torch_passive"))}, 1 thread {fmt(rate("torch_1t"))}; torch.compile '
          f'passive {fmt(rate("torch_compile_passive"))} -> best eager '
          f'{fmt(flat["torch_best_img_s"])} ({flat["torch_best_setting"]}), jax/best eager torch '
          f'{fmt(flat["ratio_jax_torch_best"], ".2f")}, jax/best torch of all '
          f'{fmt(flat["ratio_jax_torch_any_best"], ".2f")} ({flat["torch_any_best_setting"]})')
    print(f'  ratios: jax/torch {fmt(flat["ratio_jax_torch"], ".2f")} (target >= '
          f'{TARGETS["jax_over_torch"]}), jax/torch.compile '
          f'{fmt(flat["ratio_jax_torch_compile"], ".2f")}, jax/keras '
          f'{fmt(flat["ratio_jax_keras"], ".2f")} (target >= {TARGETS["jax_over_keras"]}), '
          f'jax/keras_xla {fmt(flat["ratio_jax_keras_xla"], ".2f")}')
    if flat['torch_compile_error']:
      print(f'  torch.compile: null ({flat["torch_compile_error"]})')
    print(f'  FLOPs/step: analytic {fmt(flat["analytic_gflop_per_step"], ".2f")} GFLOP, XLA '
          f'cost_analysis {fmt(flat["xla_gflop_per_step"], ".2f")} GFLOP; achieved '
          f'{fmt(achieved)} GFLOP/s (XLA count: {fmt(flat["achieved_gflops_xla_count"])}) / peak '
          f'{fmt(batch_peak)} (this round) -> MFU '
          f'{fmt(flat["mfu"] and 100 * flat["mfu"], ".1f")}% (target >= '
          f'{100 * TARGETS["mfu"]:.0f}% at the larger batch)')
    print(f'  input pipeline {fmt(rate("pipeline"), ".0f")} img/s = '
          f'{fmt(flat["pipeline_over_training"], ".1f")}x what jax training consumes (target >= '
          f'{TARGETS["pipeline_over_training"]:.0f}x)')
    print(f'  first step (lower + compile + run, fresh process) {fmt(flat["first_step_s"])} s '
          f'(target < {TARGETS["first_step_s"]:.0f} s)')
    for v in kinds:
      if v in JAX_VARIANTS and v != 'jax':
        print(f'  variant {v}: {fmt(rate(v))} img/s = {fmt(flat[f"ratio_{v}_jax"], ".2f")}x jax'
              f' (first step {fmt(((row.get(v) or {}).get("info") or {}).get("first_step_s"))} s)')

  if batches and 'jax' in kinds:
    print_flops_table(results, batches)
  big = str(max(batches))
  row = results['batches'][big]
  results['targets'] = {
      'jax_over_torch': {'target': TARGETS['jax_over_torch'],
                         'value': {b: results['batches'][str(b)].get('ratio_jax_torch')
                                   for b in batches},
                         'value_vs_best_eager_torch_setting': {
                             b: results['batches'][str(b)].get('ratio_jax_torch_best')
                             for b in batches}},
      'jax_over_keras': {'target': TARGETS['jax_over_keras'],
                         'value': {b: results['batches'][str(b)].get('ratio_jax_keras')
                                   for b in batches}},
      'mfu_at_largest_batch': {'target': TARGETS['mfu'], 'batch': int(big),
                               'value': row.get('mfu')},
      'pipeline_over_training': {'target': TARGETS['pipeline_over_training'],
                                 'value': {b: results['batches'][str(b)].get(
                                     'pipeline_over_training') for b in batches}},
      'first_step_s': {'target': TARGETS['first_step_s'],
                       'value': {b: results['batches'][str(b)].get('first_step_s')
                                 for b in batches}},
  }
  results['machine']['load_avg_end'] = os.getloadavg()[0]
  print(f'\nload average at end {os.getloadavg()[0]:.1f}')
  if args.out:
    with open(args.out, 'w') as f:
      json.dump(results, f, indent=1, default=float)
    print(f'wrote {args.out}')
  log.close()
  return results


def print_verify(v):
  if v.error:
    print(f'  verification failed to run: {v.error}')
    return
  info = v.info
  print(f'  {"layer (jax)":<14}{"jax":>9}  {"torch":<6}{"":>9}  {"keras":<6}{"":>9}')
  for net, rows in info['param_table'].items():
    for (jn, jc), (tn, tc), (kn, kc) in rows:
      mark = '' if jc == tc == kc else '  <-- MISMATCH'
      print(f'  {net} {jn:<12}{jc:>9}  {tn:<6}{tc:>9}  {kn:<6}{kc:>9}{mark}')
    tot = info['param_totals'][net]
    print(f'  {net} {"total":<12}{tot[0]:>9}  {"":<6}{tot[1]:>9}  {"":<6}{tot[2]:>9}')
  for c in info['checks']:
    errs = ', '.join(f'{e:.1e}' for e in c['max_rel_err'])
    print(f'  [{"ok" if c["ok"] else "FAIL"}] {c["check"]}: max err {errs}'
          + (f' (tolerance {c["rtol"]:.0e})' if 'rtol' in c else ''))
  h = info['history']
  for name in ('jax', 'torch', 'keras'):
    print(f'  {name:<6} step 3 metrics: ' + ', '.join(f'{k} {x:.5f}'
                                                    for k, x in sorted(h[name][-1].items())))


def print_flops_table(results, batches):
  print('\nAnalytical FLOPs per train step by layer (forward MACs per image; step GFLOP):')
  info = {b: (results['batches'][str(b)].get('jax') or {}).get('info') or {} for b in batches}
  rows = {b: info[b].get('layer_flops') for b in batches}
  if not all(rows.values()):
    return
  print(f'  {"layer":<14}{"fwd MACs/img":>14}' + ''.join(f'{"B=" + str(b):>10}' for b in batches))
  for i, r in enumerate(rows[batches[0]]):
    print(f'  {r["net"] + " " + r["layer"]:<14}{r["fwd_macs_per_image"]:>14,}'
          + ''.join(f'{rows[b][i]["step_flops"] / 1e9:10.3f}' for b in batches))
  print(f'  {"total":<14}{"":>14}' + ''.join(
      f'{info[b]["analytic_flops_per_step"] / 1e9:10.3f}' for b in batches))
  shapes = info[batches[0]].get('param_shapes', {})
  print(f'  (checked against the built model: G kernels {shapes.get("G", {}).get("Dense_0")}, '
        f'{shapes.get("G", {}).get("UpConv2x_0")}, {shapes.get("G", {}).get("UpConv2x_1")})')


def _cpu_name():
  try:
    with open('/proc/cpuinfo') as f:
      for line in f:
        if line.startswith('model name'):
          return line.split(':', 1)[1].strip()
  except OSError:
    pass
  return platform.processor() or platform.machine()


if __name__ == '__main__':
  main()
