"""gan_jax's train step against PyTorch and Keras: images/s, first-step time and MFU.

Run by hand from the repo root (not part of the test suite):

  python -m bench.train_step --out bench.json     # mnist_dcgan at batches 64 and 256
  python -m bench.train_step --quick              # sanity run at batch 64, about 2 minutes
  python -m bench.train_step --kinds jax,torch,torch_compile,keras,keras_xla,pipeline,peak
  python -m bench.train_step --configs mnist_dcgan,mnist_fast,mnist_r3gan --kinds jax,peak
  python -m bench.train_step --configs mnist_dcgan,mnist_dcgan:hardware.conv_batch_slices=1
  python -m bench.train_step --kinds jax,peak --batches 256,1024 --configs \
    mnist_dcgan,mnist_dcgan:model.dtype=bfloat16   # mixed precision, MFU vs bfloat16's peak

Each kind, for each batch in --batches, runs in its own fresh worker process (JSON lines on
stdin/stdout): compile time is a first compile in a new process, frameworks share no thread
pools. Workers are set up one at a time, then timed round-robin (bench.common.round_robin).
  jax       gan_jax.gan.train_step of each --configs run spec, jitted as gan_jax/train.py does
            it (donated state; with lazy penalties a step with them and one without, picked on
            the host by GAN.penalty_due), a host uint8 batch put on the device each step.
  torch     mnist_dcgan's model and update in eager PyTorch (bench/torch_dcgan.py); also
            torch_passive (OMP_WAIT_POLICY=PASSIVE: torch's OpenMP threads spin-wait by
            default, which a busy machine punishes) and torch_compile.
  keras     the same in Keras 3 on TensorFlow, tf.function without XLA as Keras picks on a CPU
            (bench/keras_dcgan.py); also keras_xla (jit_compile=True).
  pipeline  gan_jax.input_pipeline over the embedded MNIST train split, alone.
  peak      a 4096x4096 matmul under jax.jit in each compute dtype of the specs (float32;
            bfloat16 for specs with model.dtype=bfloat16): the peak, MFU's denominator.
jax/torch and jax/keras ratios are given for specs that build mnist_dcgan's model. MFU =
analytic FLOPs (bench.common.step_flops) x steps/s / peak, for unconditional DCGANs without
penalties; XLA's cost_analysis count (elementwise ops and padding zeros included) is shown for
all. Unless --no-verify, a first worker loads gan_jax's initial weights into torch and Keras
and compares both nets and three train steps. Each run is appended to --out's `runs`, with
common.machine(): a rate depends on the machine and its load, so no run replaces another.
"""

import argparse
import functools
import itertools
import json
import math
import os
import subprocess
import sys
import time
import traceback

from bench import common

DEFAULT_KINDS = 'jax,torch,keras,pipeline,peak'


def mnist_batches(batch, count=32, source=None):
  """`count` shuffled uint8 NHWC batches (image, label) of `source` (embedded MNIST train)."""
  import numpy as np  # pylint: disable=g-import-not-at-top

  from gan_jax import data  # pylint: disable=g-import-not-at-top

  source = data.load('embedded:mnist', 'train') if source is None else source
  rng = np.random.default_rng(0)
  order = np.concatenate(
    [rng.permutation(len(source)) for _ in range(math.ceil(count * batch / len(source)))]
  )
  # Example by example: sources index by int (data.Source); only in-memory ones take arrays.
  batches = []
  for i in range(count):
    examples = [source[int(r)] for r in order[i * batch : (i + 1) * batch]]
    batches.append({k: np.stack([e[k] for e in examples]) for k in ('image', 'label')})
  return batches


# Runners: each builds its thing in the worker process and returns (info, step, sync, units),
# where step() runs one call (maybe asynchronously), sync(last result) waits for it, and one
# call is worth `units` (images, or FLOPs for peak); worker_main times the first call. Job
# options beyond kind and batch arrive as keyword arguments (config for jax; a later dtype
# would be one more).


def hardware_spec(spec: str):
  """(config, hardware config) of a run spec whose `hardware.FIELD=value` overrides set the
  hardware layer's fields (gan_jax/hardware.py), e.g. `mnist_dcgan:hardware.cpu_devices=2`."""
  from gan_jax import hardware as hardware_lib  # pylint: disable=g-import-not-at-top

  name, fields = common.parse_spec(spec)
  hardware = hardware_lib.default_config()
  rest = [f'{path}={value!r}' for path, value in fields if not path.startswith('hardware.')]
  for path, value in fields:
    if path.startswith('hardware.'):
      hardware[path.removeprefix('hardware.')] = value
  return common.load_config(':'.join([name, *rest])), hardware


def jax_runner(batch, config):
  """gan_jax.gan.train_step of the run spec `config`, jitted and fed as gan_jax/train.py does."""
  t0 = time.perf_counter()
  import jax  # pylint: disable=g-import-not-at-top

  from gan_jax import data  # pylint: disable=g-import-not-at-top
  from gan_jax import gan as gan_lib  # pylint: disable=g-import-not-at-top
  from gan_jax import gan_builder  # pylint: disable=g-import-not-at-top
  from gan_jax import hardware as hardware_lib  # pylint: disable=g-import-not-at-top
  from gan_jax import sharding  # pylint: disable=g-import-not-at-top

  spec, (config, hardware) = config, hardware_spec(config)
  config.train.batch_size = batch
  hardware_lib.use_cpu_devices(hardware.cpu_devices)  # A fresh worker: JAX has not started yet.
  source = data.load(config.data.source, 'train', config.data)
  mesh = sharding.make_mesh(config.mesh)
  slices = hardware_lib.conv_batch_slices_for(hardware, batch // jax.device_count())
  gan = gan_builder.build(config, source.image_shape, source.num_classes, slices)
  key = jax.random.key(config.seed)
  state_sh = sharding.state_sharding(mesh, jax.eval_shape(gan.init, key))
  batch_sh, replicated = sharding.batch_sharding(mesh), sharding.replicated(mesh)
  state = jax.block_until_ready(jax.jit(gan.init, out_shardings=state_sh)(key))
  host = mnist_batches(batch, source=source)
  t_built = time.perf_counter()

  # As gan_jax/train.py: with lazy penalties, a compiled step with them and one without, picked
  # on the host (penalize=None: the one step of a config without lazy penalties).
  due = lambda step: gan.penalty_due(step) if gan.penalty_every > 1 else None
  compiled, first, xla_flops = {}, {}, {}
  for step in range(2 if gan.penalty_every > 1 else 1):  # Steps 0 and 1 compile both.
    t, device_batch = time.perf_counter(), sharding.put_batch(host[step], batch_sh)
    compiled[due(step)] = (
      jax.jit(
        functools.partial(gan_lib.train_step, gan, penalize=due(step)),
        in_shardings=(state_sh, batch_sh, replicated),
        out_shardings=(state_sh, replicated),
        donate_argnums=0,
      )
      .lower(state, device_batch, key)
      .compile()
    )
    t_compile = time.perf_counter()
    state, metrics = jax.block_until_ready(compiled[due(step)](state, device_batch, key))
    t_first = time.perf_counter() - t
    first[f'penalize={due(step)}'] = {'compile_s': t_compile - t, 'first_step_s': t_first}
    cost = compiled[due(step)].cost_analysis()
    cost = cost[0] if isinstance(cost, (list, tuple)) else cost
    xla_flops[due(step)] = float((cost or {}).get('flops', math.nan))

  m = config.model
  plain = (
    m.generator == m.discriminator == 'dcgan'
    and not m.conditional
    and not m.spectral_norm
    and not config.augment.policy
    and not gan.loss.paired
    and not any(config.loss[k] for k in ('r1_gamma', 'r2_gamma', 'gp_weight', 'lecam_weight'))
  )
  size, _, channels = source.image_shape
  shape = dict(g_width=m.g_width, d_width=m.d_width, latent=m.latent_dim, image=size)
  flops, rows = common.step_flops(batch, **shape, channels=channels) if plain else (None, None)
  nets = (('G', state.g_params), ('D', state.d_params))
  built = {(net, name) for net, p in nets for name in p if not name.startswith('BatchNorm')}
  if plain and {(r['net'], r['layer']) for r in rows} != built:
    raise RuntimeError(f'bench.common.dcgan_layers does not match the built DCGAN: {built}')
  cycle = [due(step) for step in range(gan.penalty_every)]
  info = {
    'spec': spec,
    'jax': jax.__version__,
    'devices': jax.device_count(),
    'setup_s': t_built - t0,
    'compiled_steps': first,
    'first_step_s': first[f'penalize={due(0)}']['first_step_s'],
    'compile_s': sum(f['compile_s'] for f in first.values()),
    'xla_flops_per_step': sum(xla_flops[c] for c in cycle) / len(cycle),
    'analytic_flops_per_step': flops,
    'layer_flops': rows,
    'same_model_as_torch': plain
    and config.loss.name == 'non_saturating'
    and (m.g_width, m.d_width, m.latent_dim, source.image_shape) == (32, 32, 100, (28, 28, 1)),
    'first_metrics': {k: float(v) for k, v in metrics.items()},
  }
  steps, batches = itertools.count(len(first)), itertools.cycle(host)  # step = state.step

  sync_each_step = sharding.must_wait_each_step()  # As gan_jax/train.py.

  def one_step():
    nonlocal state
    step = next(steps)
    state, metrics = compiled[due(step)](state, sharding.put_batch(next(batches), batch_sh), key)
    if sync_each_step:
      jax.block_until_ready(metrics)
    return state, metrics

  return info, one_step, jax.block_until_ready, batch


def torch_runner(batch, compile=False):  # pylint: disable=redefined-builtin
  import torch  # pylint: disable=g-import-not-at-top

  from bench import torch_dcgan  # pylint: disable=g-import-not-at-top

  model, batches = torch_dcgan.TorchDCGAN(compile=compile), itertools.cycle(mnist_batches(batch))
  info = {
    'torch': torch.__version__,
    'threads': torch.get_num_threads(),
    'omp_wait_policy': os.environ.get('OMP_WAIT_POLICY'),
  }
  return info, lambda: model.step(next(batches)['image']), lambda _: None, batch


def keras_runner(batch, jit_compile=False):
  from bench import keras_dcgan  # pylint: disable=g-import-not-at-top

  model = keras_dcgan.KerasDCGAN(jit_compile=jit_compile)
  batches = itertools.cycle(mnist_batches(batch))
  step = lambda: model.step(keras_dcgan.tf.convert_to_tensor(next(batches)['image']))
  info = {'keras': keras_dcgan.keras.__version__, 'tensorflow': keras_dcgan.tf.__version__}
  return info, step, lambda metrics: metrics['d_loss'].numpy(), batch


def pipeline_runner(batch):
  from gan_jax import data  # pylint: disable=g-import-not-at-top
  from gan_jax import input_pipeline  # pylint: disable=g-import-not-at-top

  batches = input_pipeline.iterate(
    input_pipeline.make_dataset(
      data.load('embedded:mnist', 'train'), seed=0, global_batch_size=batch
    )
  )
  return {}, lambda: next(batches), lambda _: None, batch


def peak_runner(batch, size=4096, dtype='float32'):
  """A size x size matmul in `dtype` (float32 accumulation for bfloat16): MFU's denominator."""
  del batch
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top

  a, b = (jax.random.normal(jax.random.key(i), (size, size), dtype) for i in (0, 1))
  matmul = jax.jit(jnp.matmul)
  return {'size': size}, lambda: matmul(a, b), jax.block_until_ready, 2 * size**3


def verify(batch):
  """Same model? gan_jax's initial weights in torch and Keras: both nets and 3 steps agree."""
  import jax  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  import torch  # pylint: disable=g-import-not-at-top

  from bench import keras_dcgan  # pylint: disable=g-import-not-at-top
  from bench import torch_dcgan  # pylint: disable=g-import-not-at-top
  from gan_jax import gan as gan_lib  # pylint: disable=g-import-not-at-top
  from gan_jax import gan_builder  # pylint: disable=g-import-not-at-top

  gan = gan_builder.build(common.load_config('mnist_dcgan'), (28, 28, 1), 10)
  state = gan.init(jax.random.key(0))
  tm, km = torch_dcgan.TorchDCGAN(), keras_dcgan.KerasDCGAN()
  for model in (tm, km):
    model.load_flax(*(jax.tree.map(np.asarray, p) for p in (state.g_params, state.d_params)))
  checks = []

  def check(name, tolerance, ref, *others):  # Max |other - ref| / max |ref|: torch, keras.
    ref = np.asarray(ref, np.float64)
    scale = max(float(np.max(np.abs(ref))), 1e-12)
    errs = [float(np.max(np.abs(np.asarray(o, np.float64) - ref))) / scale for o in others]
    checks.append({'check': name, 'max_rel_err': errs, 'ok': max(errs) <= tolerance})

  images = mnist_batches(batch, count=3)
  z = np.asarray(jax.random.normal(jax.random.key(5), (batch, 100)))
  real = images[0]['image'].astype(np.float32) * (2 / 255) - 1
  with torch.no_grad():
    check(
      'G forward (train-mode BN)',
      2e-4,
      gan.apply_generator(state.g_params, state.g_stats, z, None, train=True)[0],
      tm.G(torch.from_numpy(z)).permute(0, 2, 3, 1).numpy(),
      km.G(z, training=True),
    )
    check(
      'D forward',
      1e-4,
      gan.discriminate(state.d_params, state.d_stats, real, None, True)[0],
      tm.D(torch.from_numpy(real).permute(0, 3, 1, 2)).numpy(),
      np.asarray(km.D(real, training=True))[:, 0],
    )
  key, history = jax.random.key(1), {'jax': [], 'torch': [], 'keras': []}
  step = jax.jit(lambda s, b: gan_lib.train_step(gan, s, b, key))
  for i in range(3):  # train_step's noise: rngs[0] for D's update, rngs[3] for G's.
    rngs = jax.random.split(jax.random.fold_in(key, i), 5)
    z1, z2 = (np.asarray(gan.sample_noise(rngs[j], batch)[0]) for j in (0, 3))
    state, metrics = step(state, images[i])
    history['jax'].append({k: float(v) for k, v in metrics.items()})
    history['torch'].append(
      tm.step(images[i]['image'], torch.from_numpy(z1), torch.from_numpy(z2), metrics=True)
    )
    keras_metrics = km.step(keras_dcgan.tf.convert_to_tensor(images[i]['image']), z1, z2)
    history['keras'].append({k: float(v) for k, v in keras_metrics.items()})
  keys = sorted(history['torch'][0])
  check(
    '3 train steps, same noise: losses, logits, grad norms',
    1e-3,
    *([[s[k] for k in keys] for s in history[name]] for name in history),
  )
  return {'checks': checks, 'history': history}, None, None, 0


KINDS = {  # kind: (runner, its options, the worker's extra environment)
  'jax': (jax_runner, {}, {}),
  'torch': (torch_runner, {}, {}),
  'torch_passive': (torch_runner, {}, {'OMP_WAIT_POLICY': 'PASSIVE'}),
  'torch_compile': (torch_runner, {'compile': True}, {}),
  'keras': (keras_runner, {}, {}),
  'keras_xla': (keras_runner, {'jit_compile': True}, {}),
  'pipeline': (pipeline_runner, {}, {}),
  'peak': (peak_runner, {}, {}),
  'verify': (verify, {}, {}),
}  # Not timed: run first unless --no-verify.


def worker_main(job):
  """Serves one job: JSON lines on the real stdout; library chatter goes to stderr (the log)."""
  out = os.fdopen(os.dup(1), 'w', buffering=1)
  os.dup2(2, 1)
  sys.stdout = sys.stderr
  send = lambda obj: out.write(json.dumps(obj, default=float) + '\n')
  runner, options, _ = KINDS[job.pop('kind')]
  try:
    info, step, sync, units = runner(job.pop('batch'), **options, **job)
    if step:  # The first call; jax_runner has timed its compiling first step already.
      t = time.perf_counter()
      sync(step())
      info.setdefault('first_step_s', time.perf_counter() - t)
  except Exception as e:  # pylint: disable=broad-except  # Reported: the driver records null.
    traceback.print_exc()
    send({'error': f'{type(e).__name__}: {(str(e).strip().splitlines() or [""])[0]}'})
    return
  send({'info': info})
  for line in sys.stdin:
    n = json.loads(line)['n']
    try:
      t = time.perf_counter()
      for _ in range(n):
        result = step()
      sync(result)
      send({'seconds': time.perf_counter() - t, 'units': n * units})
    except Exception as e:  # pylint: disable=broad-except
      traceback.print_exc()
      send({'error': f'{type(e).__name__}: {e}'})


class Worker:
  """A worker process, set up (to its first step) in the constructor; run(n) times n calls."""

  def __init__(self, job, log):
    self.label = label(job)
    env = {
      **os.environ,
      'PYTHONPATH': common.REPO + os.pathsep + os.environ.get('PYTHONPATH', ''),
      'TF_CPP_MIN_LOG_LEVEL': os.environ.get('TF_CPP_MIN_LOG_LEVEL', '2'),
      **KINDS[job['kind']][2],
    }
    log.write(f'\n===== worker {json.dumps(job)} =====\n')
    log.flush()
    t = time.perf_counter()
    self.proc = subprocess.Popen(
      [sys.executable, '-m', 'bench.train_step', '--worker', json.dumps(job)],
      cwd=common.REPO,
      env=env,
      stdin=subprocess.PIPE,
      stdout=subprocess.PIPE,
      stderr=log,
      text=True,
      bufsize=1,
    )
    reply = self._read()
    self.ready_s = time.perf_counter() - t  # Process start to first step done.
    self.error, self.info = reply.get('error'), reply.get('info', {})

  def _read(self):
    line = self.proc.stdout.readline()
    if not line:
      self.proc.wait()
      return {'error': f'worker exited with code {self.proc.returncode} (see the worker log)'}
    return json.loads(line)

  def run(self, n):
    self.proc.stdin.write(json.dumps({'n': n}) + '\n')
    self.proc.stdin.flush()
    reply = self._read()
    if 'error' in reply:
      raise RuntimeError(reply['error'])
    return reply['seconds'], reply['units']

  def close(self):
    try:
      self.proc.stdin.close()  # End of input: the worker returns.
      self.proc.wait(timeout=60)
    except (OSError, subprocess.TimeoutExpired):
      self.proc.kill()
      self.proc.wait()


def fmt(x, spec='.1f'):
  return 'null' if x is None else format(x, spec)


def label(job) -> str:
  """A worker's name in the output: 'jax SPEC', 'peak' (float32), 'peak bfloat16', 'torch'..."""
  if job['kind'] == 'jax':
    return f'jax {job["config"]}'
  dtype = job.get('dtype', 'float32')
  return job['kind'] if dtype == 'float32' else f'{job["kind"]} {dtype}'


def time_batch(batch, kinds, specs, timing, log):
  """Sets up this batch's workers one at a time, times them round-robin; returns its row."""
  jobs = [{'kind': 'jax', 'batch': batch, 'config': s} for s in specs] if 'jax' in kinds else []
  dtypes = {s: common.load_config(s).model.get('dtype', 'float32') for s in specs}
  others = [{'kind': k, 'batch': batch} for k in kinds if k not in ('jax', 'peak')]
  if 'peak' in kinds:  # One peak per compute dtype of the specs: MFU against its own dtype.
    others += [{'kind': 'peak', 'batch': batch, 'dtype': d} for d in sorted(set(dtypes.values()))]
  workers = []
  print(f'\n== batch {batch}: setting up workers (fresh processes) ==', flush=True)
  for job in jobs + others:
    w = Worker(job, log)
    workers.append(w)
    print(
      f'  {w.label:<28} '
      + (
        f'ERROR {w.error}'
        if w.error
        else f'first step '
        f'{fmt(w.info.get("first_step_s"))} s, process start to ready {w.ready_s:.1f} s'
      ),
      flush=True,
    )
  rates, errors = common.round_robin({w.label: w.run for w in workers if not w.error}, *timing)
  runs = {}
  print(f'\n  {"run":<28}{"median":>12}  {"min/med":>8}{"max/med":>8}')
  for w in workers:
    w.close()
    error = w.error or errors.get(w.label)
    med, spread = (None, None) if error else common.median_spread(rates[w.label])
    unit, scale = ('GFLOP/s', 1e-9) if w.label.startswith('peak') else ('images/s', 1.0)
    runs[w.label] = {
      'rate': med,
      'unit': unit,
      'repeats': rates.get(w.label),
      'spread': spread,
      'info': w.info,
      'error': error,
    }
    print(
      f'  {w.label:<28}'
      + (
        f'{"null":>12}  ({error})'
        if error
        else f'{med * scale:12.1f}  {spread[0]:8.2f}{spread[1]:8.2f}  {unit}'
      )
    )
  rate = lambda label: (runs.get(label) or {}).get('rate')
  ratio = lambda a, b: a / b if a and b else None
  row = {'batch': batch, 'load_avg': os.getloadavg()[0], 'runs': runs, 'jax': {}}
  for job in jobs:
    img_s, info = rate(f'jax {job["config"]}'), runs[f'jax {job["config"]}']['info']
    flops, same = info.get('analytic_flops_per_step'), info.get('same_model_as_torch')
    basis = 'analytic' if flops else 'xla'  # XLA's count where no layer table exists (r3gan).
    counted = flops or info.get('xla_flops_per_step')
    j = row['jax'][job['config']] = {
      'img_s': img_s,
      'first_step_s': info.get('first_step_s'),
      'compile_s': info.get('compile_s'),
      'xla_flops_per_step': info.get('xla_flops_per_step'),
      'analytic_flops_per_step': flops,
      'dtype': dtypes[job['config']],
      'mfu': ratio(
        img_s and counted and img_s / batch * counted,
        rate(label({'kind': 'peak', 'dtype': dtypes[job['config']]})),
      ),
      'mfu_flops': basis,
      'over_torch': ratio(img_s, rate('torch')) if same else None,
      'over_keras': ratio(img_s, rate('keras')) if same else None,
      'pipeline_over_training': ratio(rate('pipeline'), img_s),
    }
    gflop = lambda x: fmt(x and x / 1e9, '.2f')
    print(
      f'  jax {job["config"]}: {fmt(img_s)} img/s, first step {fmt(j["first_step_s"])} s '
      f'(compiling {fmt(j["compile_s"])} s), GFLOP/step analytic '
      f'{gflop(flops)} XLA {gflop(j["xla_flops_per_step"])}, MFU ({basis} FLOPs) '
      f'{fmt(j["mfu"] and 100 * j["mfu"])}%, pipeline/training '
      f'{fmt(j["pipeline_over_training"])}x'
      + (
        f', jax/torch {fmt(j["over_torch"], ".2f")}, jax/keras {fmt(j["over_keras"], ".2f")}'
        if same
        else ' (not the torch/Keras model)'
      )
    )
  return row


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  add = parser.add_argument
  add('--batches', help='comma-separated batch sizes (default 64,256; 64 with --quick)')
  add('--configs', default='mnist_dcgan', help='comma-separated run specs for the jax kind')
  add(
    '--kinds',
    default=DEFAULT_KINDS,
    help=f'comma-separated, of '
    f'{", ".join(k for k in KINDS if k != "verify")} (default {DEFAULT_KINDS})',
  )
  add('--repeats', type=int, help='timed repeats (default 5; 2 with --quick)')
  add('--seconds', type=float, help='seconds per repeat per worker (default 2; 0.4 --quick)')
  add('--quick', action='store_true', help='batch 64, 2 repeats of ~0.4 s, short warm-up')
  add('--no-verify', action='store_true', help='skip the same-weights check against torch/Keras')
  add('--out', help='write the results as JSON to this file')
  add('--log', default='/tmp/bench_train_step_workers.log', help="the workers' stderr")
  add('--worker', help=argparse.SUPPRESS)
  args = parser.parse_args(argv)
  if args.worker:
    return worker_main(json.loads(args.worker))
  existing = common.claim_json(args.out, 'train_step')
  machine = common.machine()
  batches = [int(b) for b in (args.batches or ('64' if args.quick else '64,256')).split(',') if b]
  kinds, specs = [k for k in args.kinds.split(',') if k], [s for s in args.configs.split(',') if s]
  for kind in kinds:
    if kind not in KINDS or kind == 'verify':
      parser.error(f'unknown kind {kind!r}')
  for spec in specs:
    common.load_config(spec)  # A bad spec fails now, not after the other workers.
  timing = (
    args.repeats or (2 if args.quick else 5),
    args.seconds or (0.4 if args.quick else 2.0),
    0.5 if args.quick else 3.0,
  )  # Repeats, seconds per repeat, warm-up seconds.
  results = {
    **machine,
    'batches': {},
    'args': {
      'batches': batches,
      'configs': specs,
      'kinds': kinds,
      'repeats': timing[0],
      'seconds_per_repeat': timing[1],
      'load_avg_start': machine['load_1min'],
    },
  }
  print(
    f'gan_jax train step on {results["cpu"]}: {timing[0]} repeats of ~{timing[1]:g} s, '
    f'load average {machine["load_1min"]:.1f}; worker log {args.log}',
    flush=True,
  )
  with open(args.log, 'w') as log:
    if not args.no_verify:
      print('\n== Same model? gan_jax initial weights in torch and Keras ==', flush=True)
      w = Worker({'kind': 'verify', 'batch': 64}, log)
      w.close()
      results['verify'] = w.info or {'error': w.error}
      for c in w.info.get('checks', []):
        print(
          f'  [{"ok" if c["ok"] else "FAIL"}] {c["check"]}: max relative error torch '
          f'{c["max_rel_err"][0]:.1e}, keras {c["max_rel_err"][1]:.1e}'
        )
      print(f'  could not run: {w.error}' if w.error else '', end='')
    for batch in batches:
      results['batches'][str(batch)] = time_batch(batch, kinds, specs, timing, log)
  if args.out:
    common.write_json(args.out, common.with_run(existing, 'train_step', results))
    print(f'\nwrote {args.out}')
  return results


if __name__ == '__main__':
  main()
