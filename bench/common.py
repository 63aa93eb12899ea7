"""What the benchmarks share: run specs, a launch.py run, the CPU's name, the DCGAN's FLOPs,
the timer, and the JSON they write.

A run spec is a config name, optionally followed by `:field=value` overrides (values are Python
literals), e.g. `mnist_dcgan:model.g_width=16:loss.r1_gamma=1.0`; bench/ablate.py,
bench/time_to_quality.py and bench/train_step.py all take them.

Every bench's JSON carries `"bench": "<name>"` (the script that writes it) at its top level, and
a bench writes only over a JSON with its own name (`claim_json`). A bench of rows merges its new
rows into the file's by a key (`with_rows`); a bench of one measurement appends the run to the
file's `runs` (`with_run`). Rows and runs carry `machine()`: the CPU, its family and model, the
1-minute load average when the bench started, and the date.
"""

import ast
import datetime
import importlib
import json
import math
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys

import ml_collections

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def parse_spec(spec: str) -> tuple[str, list[tuple[str, object]]]:
  """(config name, [(dotted field, value)]) of a run spec `name[:field=value...]`; a value may
  hold ':' itself (`cifar10_r3gan:data.source=synthetic:32x32x3`)."""
  name, *overrides = re.split(r':(?=[A-Za-z_][\w.]*=)', spec)
  fields = []
  for override in overrides:
    path, _, text = override.partition('=')
    try:
      value = ast.literal_eval(text)
    except (ValueError, SyntaxError):
      value = text
    fields.append((path, value))
  return name, fields


def load_config(spec: str, variant: str | None = None) -> ml_collections.ConfigDict:
  """The config a run spec names (its `variant`, e.g. 'smoke', if given), overrides applied; an
  unknown field is an error."""
  name, fields = parse_spec(spec)
  config = importlib.import_module(f'configs.{name}').get_config(variant)
  for path, value in fields:
    *sections, field = path.split('.')
    node = config
    for section in sections:
      node = node.get(section) if isinstance(node, ml_collections.ConfigDict) else None
    if not isinstance(node, ml_collections.ConfigDict) or field not in node:
      raise SystemExit(f'error: {spec}: no config field {path}')
    node[field] = value
  return config


def launch(config: str, workdir: str, flags: list[str]) -> list[dict]:
  """Trains `configs/<config>.py` afresh in `workdir` (removed first) through launch.py with the
  extra absl `flags`, its output discarded; returns the run's metrics.jsonl rows."""
  shutil.rmtree(workdir, ignore_errors=True)
  subprocess.run(
    [
      sys.executable,
      os.path.join(REPO, 'launch.py'),
      f'--config=configs/{config}.py',
      f'--workdir={workdir}',
      *flags,
    ],
    check=True,
    cwd=REPO,
    stdout=subprocess.DEVNULL,
  )
  with open(os.path.join(workdir, 'metrics.jsonl')) as f:
    return [json.loads(line) for line in f]


def table_path(out: str, start: str = 'CPU: ') -> str:
  """The markdown table beside the JSON `out`; exits at once, before any work, when that file
  exists and is not a benchmark table (they start with `start`), e.g. a docs page of that name."""
  path = os.path.splitext(out)[0] + '.md'
  if os.path.exists(path):
    with open(path) as f:
      if f.read(len(start)) != start:
        sys.exit(f'error: {path!r} exists and is not a benchmark table; name another --out')
  return path


def claim_json(out: str, bench: str, flag: str = '--out') -> dict | None:
  """The JSON `out` as bench/`bench`.py wrote it (None if there is none yet, or `out` is ''); exits
  at once, before any work, when `out` exists and is not a JSON object with `"bench": bench`."""
  if not out or not os.path.exists(out):
    return None
  try:
    with open(out) as f:
      record = json.load(f)
  except (OSError, ValueError):
    record = None
  if not isinstance(record, dict) or record.get('bench') != bench:
    sys.exit(f'error: {out!r} exists and was not written by bench/{bench}.py; name another {flag}')
  return record


def write_json(out: str, record: dict) -> None:
  """`record` to `out` whole or not at all: written beside it, then renamed over it."""
  os.makedirs(os.path.dirname(out) or '.', exist_ok=True)
  tmp = f'{out}.{os.getpid()}.tmp'
  try:
    with open(tmp, 'w') as f:
      json.dump(record, f, indent=1, default=float)
    os.replace(tmp, out)
  finally:
    if os.path.exists(tmp):
      os.remove(tmp)


def merge_rows(old: list, new: list, key) -> list:
  """`old` with each row whose key(row) a row of `new` has replaced by that row, in place, then
  the rest of `new`; one row per key."""
  fresh = {key(row): row for row in new}
  merged, seen = [], set()
  for row in old + new:
    if key(row) not in seen:
      seen.add(key(row))
      merged.append(fresh.get(key(row), row))
  return merged


def with_rows(existing: dict | None, bench: str, rows, key=None) -> dict:
  """The record of `existing` (claim_json's) with `rows` merged into its `rows`: a list by
  key(row) (merge_rows), a dict {name: row} by name. Its other fields are kept as they are."""
  record = {'bench': bench, **(existing or {})}
  old = record.get('rows', {} if isinstance(rows, dict) else [])
  record['rows'] = {**old, **rows} if isinstance(rows, dict) else merge_rows(old, rows, key)
  return record


def with_run(existing: dict | None, bench: str, run: dict) -> dict:
  """The record of `existing` (claim_json's) with `run` appended to its `runs`."""
  record = {'bench': bench, **(existing or {})}
  record['runs'] = [*record.get('runs', []), run]
  return record


def machine() -> dict:
  """Where and when a bench ran: the CPU (cpu_name), its family and model as /proc/cpuinfo gives
  them ('' where it does not), the 1-minute load average now, and today's date. A bench takes it
  before its own work loads the machine."""
  family_model = ''
  try:
    with open('/proc/cpuinfo') as f:
      first = f.read().split('\n\n')[0].splitlines()  # The first processor's lines.
    fields = {k.strip(): v.strip() for k, _, v in (x.partition(':') for x in first)}
    family_model = f'family {fields["cpu family"]} model {fields["model"]}'
  except (OSError, KeyError):
    pass
  return {
    'cpu': cpu_name(),
    'cpu_family_model': family_model,
    'load_1min': os.getloadavg()[0],
    'date': datetime.date.today().isoformat(),
  }


def axes(figsize=(6, 4)):
  """(figure, its one axes) on an Agg canvas: no display and no pyplot state."""
  from matplotlib import figure  # pylint: disable=g-import-not-at-top
  from matplotlib.backends import backend_agg  # pylint: disable=g-import-not-at-top

  fig = figure.Figure(figsize=figsize, layout='constrained')  # Labels inside the canvas.
  backend_agg.FigureCanvasAgg(fig)
  return fig, fig.add_subplot()


def mean_se(values) -> tuple[float, float]:
  """The mean of `values` and its standard error (nan for a single value)."""
  mean = statistics.fmean(values)
  se = statistics.stdev(values) / math.sqrt(len(values)) if len(values) > 1 else float('nan')
  return mean, se


def cpu_name() -> str:
  """The processor's model name (/proc/cpuinfo on Linux) and the cores this process may use."""
  name = platform.processor() or platform.machine()
  isa = ''
  try:
    with open('/proc/cpuinfo') as f:
      lines = f.read().splitlines()
    name = next(x.split(':', 1)[1].strip() for x in lines if x.startswith('model name'))
    flags = next(x.split(':', 1)[1].split() for x in lines if x.startswith('flags'))
    isa = ', AVX-512' if 'avx512f' in flags else ', AVX2' if 'avx2' in flags else ''
  except (OSError, StopIteration):
    pass
  return f'{name}{isa}, {len(os.sched_getaffinity(0))} cores'


def dcgan_layers(g_width=32, d_width=32, latent=100, image=28, channels=1):
  """[(net, layer, forward multiply-adds per image)] of gan_jax.models.dcgan, unconditional.

  The layers are flax's names in gan_jax/models/dcgan.py: G is Dense -> s x s x (g_width *
  2^n) -> n UpConv2x halving the channels -> Conv 3x3; D is n Conv 4x4 stride 2 (d_width,
  2 d_width, ...) -> dense. At 28 px, s = 7 and n = 2. Only Dense and conv layers count: batch
  norm, activations, losses and the optimizer are O(activations) or O(params), not O(MACs).
  """
  from gan_jax.models import dcgan  # pylint: disable=g-import-not-at-top
  from gan_jax.models import layers  # pylint: disable=g-import-not-at-top

  s, n = dcgan.start_size(image)
  rows = [('G', 'Dense_0', latent * s * s * g_width * 2**n)]
  for i in range(n):  # UpConv2x: 4 of the 16 taps reach each output pixel.
    size = s * 2**i
    rows.append(
      (
        'G',
        f'UpConv2x_{i}',
        layers.upconv2x_flops(1, size, size, g_width * 2 ** (n - i), g_width * 2 ** (n - 1 - i))
        // 2,
      )
    )
  rows.append(('G', 'Conv_0', image * image * 9 * g_width * channels))
  cin = channels
  for i in range(n):
    out = image // 2 ** (i + 1)
    rows.append(('D', f'Conv_{i}', out * out * 16 * cin * d_width * 2**i))
    cin = d_width * 2**i
  rows.append(('D', 'dense', s * s * cin))
  return rows


def step_flops(batch, **widths):
  """Analytical FLOPs (2 per multiply-add) of one DCGAN train step: (total, rows per layer).

  D update: G forward on B (no gradient) + D forward and backward on 2B images; backward is
  2x forward (input and weight gradients) except for D's first conv, whose input needs no
  gradient (1x). G update: G forward and backward on B (2x, except Dense_0 whose input z needs
  no gradient: 1x) + D forward and backward-to-input only on B (1x: D's weights are frozen).
  """
  rows, total = [], 0
  for net, name, macs in dcgan_layers(**widths):
    first = (net, name) in (('G', 'Dense_0'), ('D', 'Conv_0'))  # Input needs no gradient.
    if net == 'G':
      macs_step = batch * macs * (1 + (2 if first else 3))
    else:
      macs_step = 2 * batch * macs * (2 if first else 3) + batch * macs * 2
    rows.append(
      {'net': net, 'layer': name, 'fwd_macs_per_image': macs, 'step_flops': 2 * macs_step}
    )
    total += 2 * macs_step
  return total, rows


def round_robin(runs, repeats: int, seconds: float, warmup_s: float):
  """Rates of several timed things under the same load: ({name: [rate per repeat]}, errors).

  `runs` maps a name to run(n) -> (seconds, units), which does n calls and waits for them. Each
  is called once (compilation), timed on one warm call, warmed up for `warmup_s` (which also
  calibrates the count of calls in `seconds`), then run for about `seconds` per repeat; the
  repeats go round-robin, the first runner rotating, so that load from other processes hits
  them all alike. A runner that raises RuntimeError or OSError (a dead worker)
  is dropped, its message in errors[name].
  """
  counts, rates, errors = {}, {name: [] for name in runs}, {}
  for name, run in runs.items():
    try:
      run(1)
      per_call = max(run(1)[0], 1e-4)
      warm = max(1, int(warmup_s / per_call))
      per_call = max(run(warm)[0] / warm, 1e-4)
      counts[name] = max(1, int(seconds / per_call))
    except (RuntimeError, OSError) as e:
      errors[name] = str(e)
  for r in range(repeats):
    live = [name for name in counts if name not in errors]
    for name in live[r % max(len(live), 1) :] + live[: r % max(len(live), 1)]:
      try:
        took, units = runs[name](counts[name])
        rates[name].append(units / took)
      except (RuntimeError, OSError) as e:
        errors[name] = str(e)
  return rates, errors


def median_spread(rates):
  """(median, (min / median, max / median)) of a list of rates; (None, None) if empty."""
  if not rates:
    return None, None
  med = statistics.median(rates)
  return med, (min(rates) / med, max(rates) / med)
