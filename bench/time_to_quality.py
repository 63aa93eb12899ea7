"""Quality per second: every config's classifier-FID against its training time, on one CPU.

  python -m bench.time_to_quality --seconds 300 --out runs/time_to_quality.md \\
    --plot docs/time_to_quality.png   # the table, the figure, and .json beside each
  python -m bench.time_to_quality --configs mnist_rpgan,mnist_dcgan:model.g_width=16 --seconds 120
  python -m bench.time_to_quality --configs mnist_fast --seeds 0,1,2   # GANs vary run to run
  python -m bench.time_to_quality --configs mnist_fast --seconds 40 --snapshot_every 15 \\
    --num_samples 200   # a quick try

Each run is a fresh process: `python launch.py` for a config, bench/torch_dcgan.py for the
PyTorch DCGAN (gan_jax's default DCGAN written in torch, with its EMA generator, on the same
digits). Training time counts from the process start, imports, data loading and compilation
included, as a user waiting for the command would count; evaluation and snapshot saving are off
the clock. Every `--snapshot_every` seconds of it a run saves its generator (gan_jax:
train.snapshot_every_secs); in-loop evaluation is off and `train.num_steps` lifted (schedules
keep their configured length). Runs go one after another, nothing else running; then every
snapshot is judged with the same classifier on the same number of samples. Outputs: a table of
each run's last snapshot with the ratio of every FID to PyTorch's (--out), a PNG of
classifier-FID against training time (--plot; with several `--seeds`, each config's median and
its min-max band) and the per-snapshot numbers as JSON beside both. The CPU's name is in them:
compare figures from one machine only. Each run is appended to the JSON's `runs`, with
common.machine(): its numbers depend on the machine and its load, so no run replaces another.
"""

import argparse
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # pylint: disable=g-import-not-at-top

from bench import ablate  # pylint: disable=g-import-not-at-top
from bench import common  # pylint: disable=g-import-not-at-top
from gan_jax import evaluate  # pylint: disable=g-import-not-at-top
from gan_jax import experiment as experiment_lib

ROOT = common.REPO
CONFIGS = (
  'mnist_fast',
  'mnist_dcgan',
  'mnist_dcgan:model.g_width=16',
  'mnist_rpgan',
  'mnist_r3gan',
)
TORCH = 'pytorch_dcgan'
FLOOR = 'real test digits (floor)'
COLUMNS = ('fid', 'kid', 'precision', 'recall', 'density', 'coverage', 'class_accuracy')
NEVER = 100_000_000  # A step count no run reaches in its seconds.
TABLE = 'Every run trained for '  # How the markdown table starts.


def _run(cmd: list[str], log_path: str) -> None:
  """Runs `cmd` from the repository root, its output to `log_path`."""
  with open(log_path, 'w') as log:
    proc = subprocess.run(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, check=False)
  if proc.returncode:
    raise SystemExit(f'error: {" ".join(cmd)} exited {proc.returncode}; see {log_path}')


def _seed(spec: str) -> int:
  return int(spec.rsplit('=', 1)[1]) if ':seed=' in spec else 0


def train_jax(spec: str, seconds: float, every: float, workdir: str) -> None:
  """Trains config `spec` until it has saved its snapshot at `seconds` of training time."""
  name, overrides = common.parse_spec(spec)
  cmd = [
    sys.executable,
    'launch.py',
    f'--config=configs/{name}.py',
    f'--workdir={workdir}',
    # The budget counts training time too; a second more lets the last snapshot come first.
    f'--config.train.time_budget_s={seconds + 1}',
    f'--config.train.snapshot_every_secs={every}',
    f'--config.train.num_steps={NEVER}',
    f'--config.train.eval_every={NEVER}',  # Judged from its snapshots, after all runs.
    '--config.train.progress_every_secs=30',
  ]
  # A run spec's `field=literal` to absl's `--config.field=text`.
  cmd += [f'--config.{path}={value}' for path, value in overrides]
  os.makedirs(workdir)
  _run(cmd, os.path.join(workdir, 'train.log'))


def train_torch(seconds: float, every: float, workdir: str, seed: int) -> None:
  os.makedirs(workdir)
  cmd = [sys.executable, '-m', 'bench.torch_dcgan', f'--seconds={seconds}', f'--seed={seed}']
  cmd += [f'--snapshot_every={every}', f'--workdir={workdir}']
  _run(cmd, os.path.join(workdir, 'train.log'))


def snapshot_index(workdir: str, count: int) -> list[dict]:
  """The first `count` snapshots a run saved ({'step', 'train_time_s'}), by training time:
  those at every, 2 every, ... seconds; any saved later (past the grid) are left out."""
  path = os.path.join(workdir, 'snapshots', 'index.jsonl')
  if not os.path.exists(path):
    raise SystemExit(f'error: no snapshots in {workdir}; see its train.log')
  with open(path) as f:
    index = [json.loads(line) for line in f if line.strip()]
  index = sorted(index, key=lambda r: r['train_time_s'])[:count]
  if len(index) < count:
    print(f'warning: {workdir} saved {len(index)} of {count} snapshots', flush=True)
  return index


def judge_jax(spec: str, workdir: str, count: int, judge, eval_config) -> list[dict]:
  config = common.load_config(spec)
  rows = []
  for snap in snapshot_index(workdir, count):
    experiment, step, state = experiment_lib.restore_for_inference(
      config, workdir, checkpoints='snapshots', step=snap['step']
    )
    result = evaluate.judge_generator(judge, experiment.gan, state, eval_config, config.data)
    rows.append(
      {
        **result,
        'steps': step,
        'images_seen': step * config.train.batch_size,
        'train_time_s': snap['train_time_s'],
      }
    )
    print(f'{spec} at {snap["train_time_s"]:.0f} s: step {step}, fid {result["fid"]:.3f}')
  return rows


def judge_torch(workdir: str, count: int, seed: int, judge, eval_config, data_config):
  import torch  # pylint: disable=g-import-not-at-top

  from bench import torch_dcgan  # pylint: disable=g-import-not-at-top

  rows = []
  for snap in snapshot_index(workdir, count):
    path = os.path.join(workdir, 'snapshots', f'step_{snap["step"]}.pt')
    images = torch_dcgan.sample(torch.load(path), eval_config.num_samples, seed)
    result = evaluate.judge_images(judge, images, eval_config, data_config)
    rows.append(
      {
        **result,
        'steps': snap['step'],
        'images_seen': snap['step'] * torch_dcgan.BATCH_SIZE,
        'train_time_s': snap['train_time_s'],
      }
    )
    print(f'{TORCH} at {snap["train_time_s"]:.0f} s: step {snap["step"]}, fid {result["fid"]:.3f}')
  return rows


def _base(name: str) -> str:
  return name.rsplit(':seed=', 1)[0]


def median_rows(rows: dict, seeds: list[int]) -> dict:
  """rows plus, for each config run with several seeds, its median row (`name: median`)."""
  out = dict(rows)
  for spec in dict.fromkeys(_base(name) for name in rows if ':seed=' in name):
    runs = [rows[f'{spec}:seed={s}'] for s in seeds if f'{spec}:seed={s}' in rows]
    keys = set.intersection(*(set(r) for r in runs))
    out[f'{spec}: median'] = {k: float(np.median([r[k] for r in runs])) for k in keys}
  return out


def fid_curves(snapshots: dict[str, list[dict]]) -> dict[str, dict]:
  """{config: {'train_time_s', 'fid', 'fid_min', 'fid_max': lists}} per snapshot: with several
  seeds the median over them (and their range) at each snapshot all of them reached."""
  groups = {}
  for name, rows in snapshots.items():
    groups.setdefault(_base(name), []).append(rows)
  curves = {}
  for spec, runs in groups.items():
    count = min(len(rows) for rows in runs)
    times = [[rows[i]['train_time_s'] for rows in runs] for i in range(count)]
    fids = [[rows[i]['fid'] for rows in runs] for i in range(count)]
    curves[spec] = {
      'train_time_s': [float(np.median(t)) for t in times],
      'fid': [float(np.median(f)) for f in fids],
      'fid_min': [float(min(f)) for f in fids],
      'fid_max': [float(max(f)) for f in fids],
      'seeds': len(runs),
    }
  return curves


def plot(path: str, curves: dict, floor_fid: float | None, seconds: float, cpu: str) -> None:
  """Classifier-FID (log scale) against training seconds, one line per config."""
  from matplotlib import figure  # pylint: disable=g-import-not-at-top
  from matplotlib.backends import backend_agg  # pylint: disable=g-import-not-at-top

  fig = figure.Figure(figsize=(8, 5), dpi=120)
  backend_agg.FigureCanvasAgg(fig)
  ax = fig.subplots()
  for spec, curve in curves.items():
    seeds = curve['seeds']
    label = spec if seeds == 1 else f'{spec} (median of {seeds} seeds)'
    (line,) = ax.plot(
      curve['train_time_s'],
      curve['fid'],
      marker='o',
      markersize=3,
      color='black' if spec == TORCH else None,
      label=label,
    )
    if seeds > 1:
      ax.fill_between(
        curve['train_time_s'],
        curve['fid_min'],
        curve['fid_max'],
        color=line.get_color(),
        alpha=0.15,
        linewidth=0,
      )
  if floor_fid:
    ax.axhline(floor_fid, color='gray', linestyle='--', label=f'{FLOOR}: {floor_fid:.2f}')
  ax.set_yscale('log')
  latest = max([seconds] + [t for curve in curves.values() for t in curve['train_time_s']])
  ax.set_xlim(0, latest * 1.02)
  ax.set_xlabel('training seconds (from process start; judging and snapshot saving excluded)')
  ax.set_ylabel('classifier-FID (lower is better)')
  ax.set_title(f'Quality per second on {cpu}', fontsize='medium')
  ax.grid(True, which='both', alpha=0.3)
  ax.legend(fontsize='small')
  fig.tight_layout()
  os.makedirs(os.path.dirname(path) or '.', exist_ok=True)
  fig.savefig(path)


def markdown(rows: dict, seconds: float, every: float, cpu: str, judge, eval_config) -> str:
  torch_fid = rows.get(f'{TORCH}: median', rows.get(TORCH, {})).get('fid')
  lines = [
    f'Every run trained for {seconds:g} s of training time from its process start (imports '
    f'and compilation included, evaluation and snapshot saving excluded) on {cpu}, one after '
    f'another; each row is its last snapshot (snapshots every {every:g} s, at the training '
    'time shown). '
    f'{eval_config.num_samples} samples per snapshot against the '
    f'{eval_config.reference_split} split, judge `{os.path.relpath(judge.workdir, ROOT)}` '
    f'at step {judge.step}.',
    '',
    '| run | training s | steps | images seen | ' + ' | '.join(COLUMNS) + " | FID / PyTorch's |",
    '|---' * (len(COLUMNS) + 5) + '|',
  ]
  for name, row in rows.items():
    cells = [f'{row[c]:.3f}' if c in row else '-' for c in COLUMNS]
    ratio = f'{row["fid"] / torch_fid:.2f}' if torch_fid and 'fid' in row else '-'
    trained = f'{row["train_time_s"]:.0f}' if 'train_time_s' in row else '-'
    steps = f'{row["steps"]:,.0f}' if 'steps' in row else '-'
    seen = f'{row["images_seen"]:,.0f}' if 'images_seen' in row else '-'
    lines.append(
      f'| {name} | {trained} | {steps} | {seen} | ' + ' | '.join(cells) + f' | {ratio} |'
    )
  return '\n'.join(lines) + '\n'


def json_outputs(out: str, plot_path: str) -> dict[str, str]:
  """{JSON path: the flag naming it}: the JSON beside --out and the one beside the plot (one
  file when they are the same)."""
  paths = {ablate.json_beside(out): '--out'} if out else {}
  paths.setdefault(os.path.splitext(plot_path)[0] + '.json', '--plot')
  return paths


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--seconds', type=float, default=300.0, help='training time per run')
  parser.add_argument(
    '--snapshot_every', type=float, default=30.0, help='judge each run every this many seconds'
  )
  parser.add_argument(
    '--configs', default=','.join(CONFIGS), help='comma-separated runs: config[:field=value...]'
  )
  parser.add_argument('--no_torch', action='store_true', help='skip the PyTorch DCGAN')
  parser.add_argument('--num_samples', type=int, default=2000)
  parser.add_argument(
    '--workroot', default='', help='a new folder for the runs (default runs/time_to_quality/<time>)'
  )
  parser.add_argument('--classifier_workdir', default='runs/mnist_classifier')
  parser.add_argument('--out', default='', help='write the table here (.md) and .json beside')
  parser.add_argument(
    '--plot',
    default='',
    help='the PNG, .json beside (default: --out with .png, else in the workroot)',
  )
  parser.add_argument('--seeds', default='0', help='comma-separated: each run once per seed')
  args = parser.parse_args(argv)
  seeds = [int(s) for s in args.seeds.split(',')]
  if args.snapshot_every <= 0 or args.seconds < args.snapshot_every or args.num_samples < 2:
    raise SystemExit(
      'error: --snapshot_every must be > 0, --seconds >= --snapshot_every, --num_samples >= 2'
    )
  count = int(args.seconds // args.snapshot_every)
  seconds = count * args.snapshot_every  # The last snapshot's time: a whole number of them.
  workroot = args.workroot or os.path.join(
    ROOT, 'runs', 'time_to_quality', time.strftime('%Y%m%d-%H%M%S')
  )
  if os.path.exists(workroot):
    raise SystemExit(f'error: {workroot} exists; every run must start from scratch')
  plot_path = args.plot or (
    os.path.splitext(args.out)[0] + '.png'
    if args.out
    else os.path.join(workroot, 'time_to_quality.png')
  )
  if args.out:
    common.table_path(args.out, TABLE)
  claimed = {
    path: common.claim_json(path, 'time_to_quality', flag)
    for path, flag in json_outputs(args.out, plot_path).items()
  }
  runs = ([] if args.no_torch else [TORCH]) + [c for c in args.configs.split(',') if c]
  if len(seeds) > 1:
    runs = [f'{spec}:seed={seed}' for seed in seeds for spec in runs]
  for spec in runs:  # A bad spec fails now, not after an hour of training.
    if not spec.startswith(TORCH) and 'snapshot_every_secs' not in common.load_config(spec).train:
      raise SystemExit(f'error: {spec}: this gan_jax has no config.train.snapshot_every_secs')
  machine = common.machine()
  cpu = machine['cpu']
  print(
    f'time to quality: {seconds:g} s per run, snapshots every {args.snapshot_every:g} s, on '
    f'{cpu}; runs in {workroot}',
    flush=True,
  )
  judge = ablate.train_judge(args.classifier_workdir)  # Before any timed run.
  base = common.load_config('mnist_dcgan')
  eval_config, data_config = base.eval, base.data
  eval_config.num_samples = args.num_samples
  workdirs = {spec: os.path.join(workroot, spec.replace(':', '__')) for spec in runs}
  # Train every run first, judge after: judging never shares the machine with a timed run.
  for spec in runs:
    print(f'training {spec} for {seconds:g} s', flush=True)
    if spec.startswith(TORCH):
      train_torch(seconds, args.snapshot_every, workdirs[spec], _seed(spec))
    else:
      train_jax(spec, seconds, args.snapshot_every, workdirs[spec])
  snapshots = {}
  for spec in runs:
    if spec.startswith(TORCH):
      snapshots[spec] = judge_torch(
        workdirs[spec], count, _seed(spec), judge, eval_config, data_config
      )
    else:
      snapshots[spec] = judge_jax(spec, workdirs[spec], count, judge, eval_config)
  rows = median_rows({spec: snaps[-1] for spec, snaps in snapshots.items() if snaps}, seeds)
  rows[FLOOR] = evaluate.real_data_floor(judge, eval_config, data_config)
  table = markdown(rows, seconds, args.snapshot_every, cpu, judge, eval_config)
  print(table)
  curves = fid_curves({spec: snaps for spec, snaps in snapshots.items() if snaps})
  record = {
    **machine,
    'seconds': seconds,
    'snapshot_every': args.snapshot_every,
    'num_samples': args.num_samples,
    'judge': judge.name,
    'rows': rows,
    'curves': curves,
    'snapshots': snapshots,
  }
  ablate.write_table(args.out, table)
  for path, existing in claimed.items():
    common.write_json(path, common.with_run(existing, 'time_to_quality', record))
  plot(plot_path, curves, rows[FLOOR].get('fid'), seconds, cpu)
  print(f'plot {plot_path}, numbers per snapshot {", ".join(claimed)}', flush=True)


if __name__ == '__main__':
  main()
