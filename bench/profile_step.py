"""Profile gan_jax's DCGAN train step op by op (XLA:CPU thunks) and group the time by layer.

Run by hand from the repo root:  python -m bench.profile_step [--batch 256] [--steps 5] [--top 25]

Runs the default MNIST DCGAN step (jitted, donated) under jax.profiler with XLA:CPU's per-thunk
trace events on (--xla_cpu_enable_xprof_traceme=true, set here before jax starts), then maps
each thunk (a fusion, a YNNPACK library call, a copy, ...) to its HLO instruction's source
(op_name metadata) and output shape, and prints milliseconds per step:
  * by layer and pass: forward in D's update (no grad), forward under grad (jvp), backward
    (transpose(jvp)); D's batch (2B or B) tells D's update from G's;
  * by kind of thunk (library conv/dot fusions, XLA loop fusions, copies/transposes);
  * the top thunks.
Thunks may overlap (XLA runs independent thunks concurrently), so the sum can exceed the
wall time; the shares are what matter. `--dump DIR` also writes the optimized HLO there.
"""

import argparse
import collections
import functools
import glob
import gzip
import json
import os
import re
import shutil
import tempfile
import time

os.environ['XLA_FLAGS'] = (os.environ.get('XLA_FLAGS', '')
                           + ' --xla_cpu_enable_xprof_traceme=true').strip()


def instruction_table(hlo_text):
  """{instruction name: (op_name metadata, output shape, op, fusion kind)} of optimized HLO.

  A fusion whose own line has no op_name takes the first op_name inside its computation.
  """
  table, computation_meta, current = {}, {}, None
  calls = {}
  for line in hlo_text.split('\n'):
    header = re.match(r'(?:ENTRY )?%?([\w.\-]+) .*\{\s*$', line)
    if header and not line.startswith(' '):
      current = header.group(1)
      continue
    m = re.match(r'\s*(?:ROOT )?%?([\w.\-]+) = (\S+) (\w[\w\-]*)\(', line)
    if not m:
      continue
    name, shape, op = m.groups()
    meta = re.search(r'op_name="([^"]*)"', line)
    if meta and current and current not in computation_meta:
      computation_meta[current] = meta.group(1)
    kind = re.search(r'"kind":"(\w+)"', line) or re.search(r'kind=(k\w+)', line)
    called = re.search(r'calls=%?([\w.\-]+)', line)
    if called:
      calls[name] = called.group(1)
    table[name] = [meta.group(1) if meta else '', shape, op, kind.group(1) if kind else '']
  for name, row in table.items():
    if not row[0] and name in calls:
      row[0] = computation_meta.get(calls[name], '')
  return {k: tuple(v) for k, v in table.items()}


def describe(op_name, shape, batch):
  """(part, layer, pass) of an instruction from its op_name path and output shape."""
  layer = 'other'
  for net in ('Generator', 'Discriminator'):
    if net in op_name:
      sub = re.search(net + r'[)]*/([A-Za-z0-9]+_\d+|dense)', op_name)
      layer = f'{net[0]} {sub.group(1) if sub else "(net)"}'
  if op_name.endswith('/kernel_grad'):
    pas = 'backward: kernel gradient'
  elif 'transpose(jvp(' in op_name:
    pas = 'backward'
  elif 'jvp(' in op_name:
    pas = 'forward (under grad)'
  else:
    pas = 'forward'
  dims = re.match(r'\w+\[(\d+)', shape)
  lead = int(dims.group(1)) if dims else 0
  if layer.startswith('D'):
    part = 'D update (D on 2B)' if lead == 2 * batch else 'G update (D on B)'
    if lead not in (batch, 2 * batch):  # e.g. a kernel gradient: in G's update D has none
      part = 'D update (D on 2B)'
  elif layer.startswith('G'):
    part = 'D update (G fwd on B)' if pas == 'forward' else 'G update (G on B)'
  else:
    part = 'optimizer, EMA, loss, misc'
    if 'adam' in op_name or 'scale_by' in op_name:
      layer = 'adam'
  return part, layer, pas


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--batch', type=int, default=256)
  parser.add_argument('--steps', type=int, default=5)
  parser.add_argument('--top', type=int, default=25)
  parser.add_argument('--dump', help='write the optimized HLO of the step to this folder')
  args = parser.parse_args()

  import jax  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  from configs import mnist_dcgan  # pylint: disable=g-import-not-at-top
  from gan_jax import gan as gan_lib  # pylint: disable=g-import-not-at-top

  gan = gan_lib.build(mnist_dcgan.get_config(), (28, 28, 1), 10)
  state = gan.init(jax.random.key(0))
  batch = {'image': np.random.default_rng(0).integers(0, 256, (args.batch, 28, 28, 1),
                                                       dtype=np.uint8),
           'label': np.zeros(args.batch, np.int32)}
  key = jax.random.key(0)
  step = jax.jit(functools.partial(gan_lib.train_step, gan), donate_argnums=0)
  compiled = step.lower(state, batch, key).compile()
  hlo = compiled.as_text()
  if args.dump:
    os.makedirs(args.dump, exist_ok=True)
    with open(os.path.join(args.dump, f'train_step_b{args.batch}.hlo.txt'), 'w') as f:
      f.write(hlo)
  table = instruction_table(hlo)
  # Kernel-gradient convolutions carry no op_name: recognise them by their output shape,
  # (cin, kh, kw, cout) for a kernel (kh, kw, cin, cout); UpConv2x phases are 2x2.
  kernel_grads = {}
  for net, params in (('Generator', state.g_params), ('Discriminator', state.d_params)):
    for layer, p in params.items():
      k = p.get('kernel')
      if k is None or k.ndim != 4:
        continue
      kh, kw, ci, co = k.shape
      for h, w in ((kh, kw), (2, 2)) if layer.startswith('UpConv') else ((kh, kw),):
        kernel_grads[f'f32[{ci},{h},{w},{co}]'] = f'transpose(jvp({net}))/{layer}/kernel_grad'
  for name, (op_name, shape, op, kind) in list(table.items()):
    if not op_name and shape.split('{')[0] in kernel_grads:
      table[name] = (kernel_grads[shape.split('{')[0]], shape, op, kind)
  for _ in range(3):
    state, metrics = compiled(state, batch, key)
  jax.block_until_ready(state)

  trace_dir = tempfile.mkdtemp(prefix='gan_jax_trace_')
  with jax.profiler.trace(trace_dir, create_perfetto_trace=True):
    t = time.perf_counter()
    for _ in range(args.steps):
      state, metrics = compiled(state, batch, key)
    jax.block_until_ready((state, metrics))
    wall = (time.perf_counter() - t) / args.steps
  path = glob.glob(os.path.join(trace_dir, '**', '*.trace.json.gz'), recursive=True)[0]
  with gzip.open(path) as f:
    trace = json.load(f)
  shutil.rmtree(trace_dir, ignore_errors=True)
  events = trace['traceEvents'] if isinstance(trace, dict) else trace

  per_thunk = collections.Counter()
  for e in events:
    if e.get('ph') == 'X' and e.get('name') in table:
      per_thunk[e['name']] += e.get('dur', 0) / 1e3 / args.steps  # ms per step
  total = sum(per_thunk.values())
  by_layer, by_kind = collections.Counter(), collections.Counter()
  for name, ms in per_thunk.items():
    op_name, shape, op, kind = table[name]
    by_layer[describe(op_name, shape, args.batch)] += ms
    label = kind if kind.startswith('__') else (name.rstrip('.0123456789') if op == 'fusion'
                                                else op)
    by_kind[label] += ms

  print(f'batch {args.batch}: wall {1e3 * wall:.1f} ms/step ({args.batch / wall:.0f} img/s), '
        f'sum of thunk times {total:.1f} ms/step, {len(per_thunk)} thunks, load average '
        f'{os.getloadavg()[0]:.1f}')
  print('\nBy layer and pass (ms/step, share of thunk time):')
  for (part, layer, pas), ms in sorted(by_layer.items(), key=lambda kv: -kv[1]):
    print(f'  {ms:8.1f} {100 * ms / total:5.1f}%  {part:<32}{layer:<18}{pas}')
  print('\nBy kind of thunk:')
  for label, ms in by_kind.most_common(15):
    print(f'  {ms:8.1f} {100 * ms / total:5.1f}%  {label}')
  print(f'\nTop {args.top} thunks:')
  for name, ms in per_thunk.most_common(args.top):
    op_name, shape, op, kind = table[name]
    print(f'  {ms:8.1f}  {name:<28}{shape:<26}{op_name[len("jit(train_step)/"):][:90]}')


if __name__ == '__main__':
  main()
