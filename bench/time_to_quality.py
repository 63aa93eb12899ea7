"""Quality per second: every config trained for the same wall time, judged by one classifier.

  python -m bench.time_to_quality --seconds 300 --out docs/time_to_quality.md
  python -m bench.time_to_quality --configs mnist_rpgan,mnist_dcgan:model.g_width=16 --seconds 120
  python -m bench.time_to_quality --configs mnist_fast --seeds 0,1,2   # GANs vary run to run

Each run is a fresh `python launch.py` process with `--config.train.time_budget_s=SECONDS`: it
stops, and saves, once the process has run that long, imports, data loading and compilation
included, as a user waiting for the command would count. `train.num_steps` is lifted so that
the budget, not the step count, ends every run (schedules keep their configured length). The
PyTorch DCGAN of bench/torch_dcgan.py (gan_jax's default DCGAN written in torch, with its EMA
generator) trains on the same digits for the same seconds, also counted from its process
start. Runs go one after another, nothing else running; each is judged with the same
classifier on the same number of samples, and the table gives the ratio of every FID to
PyTorch's. The CPU's name is in the output: compare figures from one run on one machine only.
With several `--seeds`, every run (PyTorch's too) is repeated per seed, and a median row per
config is compared with PyTorch's median.
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
COLUMNS = ('fid', 'kid', 'precision', 'recall', 'density', 'coverage', 'class_accuracy')


def _run(cmd: list[str], log_path: str) -> float:
  """Runs `cmd` from the repository root, its output to `log_path`; returns its wall time."""
  start = time.monotonic()
  with open(log_path, 'w') as log:
    proc = subprocess.run(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, check=False)
  if proc.returncode:
    raise SystemExit(f'error: {" ".join(cmd)} exited {proc.returncode}; see {log_path}')
  return time.monotonic() - start


def train_jax(spec: str, seconds: float, workdir: str) -> float:
  name, overrides = common.parse_spec(spec)
  cmd = [
    sys.executable,
    'launch.py',
    f'--config=configs/{name}.py',
    f'--workdir={workdir}',
    f'--config.train.time_budget_s={seconds}',
    '--config.train.num_steps=100000000',
    '--config.train.progress_every_secs=30',
  ]
  # A run spec's `field=literal` to absl's `--config.field=text`.
  cmd += [f'--config.{path}={value}' for path, value in overrides]
  os.makedirs(workdir)
  return _run(cmd, os.path.join(workdir, 'train.log'))


def judge_jax(spec: str, workdir: str, judge, eval_config) -> dict:
  config = common.load_config(spec)
  experiment, step, state = experiment_lib.restore_for_inference(config, workdir)
  result = evaluate.judge_generator(judge, experiment.gan, state, eval_config, config.data)
  return {**result, 'steps': step, 'images_seen': step * config.train.batch_size}


def train_and_judge_torch(
  seconds: float, workdir: str, judge, eval_config, data_config, seed: int = 0
) -> dict:
  os.makedirs(workdir)
  out = os.path.join(workdir, 'samples.npz')
  wall = _run(
    [
      sys.executable,
      '-m',
      'bench.torch_dcgan',
      f'--seconds={seconds}',
      f'--num_samples={eval_config.num_samples}',
      f'--out={out}',
      f'--seed={seed}',
    ],
    os.path.join(workdir, 'train.log'),
  )
  with open(os.path.join(workdir, 'train.log')) as f:
    facts = json.loads(f.read().strip().splitlines()[-1])
  with np.load(out, allow_pickle=False) as f:
    images = f['images']
  result = evaluate.judge_images(judge, images, eval_config, data_config)
  return {
    **result,
    'steps': facts['steps'],
    'images_seen': facts['steps'] * facts['batch_size'],
    'wall_s': wall,
  }


def median_rows(rows: dict, seeds: list[int]) -> dict:
  """rows plus, for each config run with several seeds, its median row (`name: median`)."""
  out = dict(rows)
  for spec in dict.fromkeys(name.rsplit(':seed=', 1)[0] for name in rows if ':seed=' in name):
    runs = [rows[f'{spec}:seed={s}'] for s in seeds if f'{spec}:seed={s}' in rows]
    keys = set.intersection(*(set(r) for r in runs))
    out[f'{spec}: median'] = {k: float(np.median([r[k] for r in runs])) for k in keys}
  return out


def markdown(rows: dict, seconds: float, cpu: str, judge, eval_config) -> str:
  torch_fid = rows.get(f'{TORCH}: median', rows.get(TORCH, {})).get('fid')
  lines = [
    f'Every run trained for {seconds:g} s of wall time from its process start (imports '
    f'and compilation included) on {cpu}, one after another; {eval_config.num_samples} '
    f'samples per run against the {eval_config.reference_split} split, judge '
    f'`{os.path.relpath(judge.workdir, ROOT)}` at step {judge.step}.',
    '',
    '| run | steps | images seen | ' + ' | '.join(COLUMNS) + " | FID / PyTorch's |",
    '|---' * (len(COLUMNS) + 4) + '|',
  ]
  for name, row in rows.items():
    cells = [f'{row[c]:.3f}' if c in row else '-' for c in COLUMNS]
    ratio = f'{row["fid"] / torch_fid:.2f}' if torch_fid and 'fid' in row else '-'
    steps = f'{row["steps"]:,}' if 'steps' in row else '-'
    seen = f'{row["images_seen"]:,}' if 'images_seen' in row else '-'
    lines.append(f'| {name} | {steps} | {seen} | ' + ' | '.join(cells) + f' | {ratio} |')
  return '\n'.join(lines) + '\n'


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--seconds', type=float, default=300.0)
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
  parser.add_argument('--seeds', default='0', help='comma-separated: each run once per seed')
  args = parser.parse_args(argv)
  seeds = [int(s) for s in args.seeds.split(',')]
  if args.seconds <= 0 or args.num_samples < 2:
    raise SystemExit('error: --seconds must be > 0 and --num_samples >= 2')
  workroot = args.workroot or os.path.join(
    ROOT, 'runs', 'time_to_quality', time.strftime('%Y%m%d-%H%M%S')
  )
  if os.path.exists(workroot):
    raise SystemExit(f'error: {workroot} exists; every run must start from scratch')
  cpu = common.cpu_name()
  print(f'time to quality: {args.seconds:g} s per run on {cpu}; runs in {workroot}', flush=True)
  judge = ablate.train_judge(args.classifier_workdir)  # Before any timed run.
  base = common.load_config('mnist_dcgan')
  eval_config, data_config = base.eval, base.data
  eval_config.num_samples = args.num_samples
  runs = ([] if args.no_torch else [TORCH]) + [c for c in args.configs.split(',') if c]
  if len(seeds) > 1:
    runs = [f'{spec}:seed={seed}' for seed in seeds for spec in runs]
  # Train every run first, judge after: judging never shares the machine with a timed run.
  walls = {}
  for spec in runs:
    if not spec.startswith(TORCH):
      common.load_config(spec)  # A bad spec fails now, not after an hour of training.
  for spec in runs:
    workdir = os.path.join(workroot, spec.replace(':', '__'))
    if spec.startswith(TORCH):
      continue
    print(f'training {spec} for {args.seconds:g} s', flush=True)
    walls[spec] = train_jax(spec, args.seconds, workdir)
  rows = {}
  for spec in (r for r in runs if r.startswith(TORCH)):
    print(f'training {spec} for {args.seconds:g} s', flush=True)
    seed = int(spec.rsplit('=', 1)[1]) if ':seed=' in spec else 0
    rows[spec] = train_and_judge_torch(
      args.seconds,
      os.path.join(workroot, spec.replace(':', '__')),
      judge,
      eval_config,
      data_config,
      seed,
    )
  for spec, wall in walls.items():
    rows[spec] = {
      **judge_jax(spec, os.path.join(workroot, spec.replace(':', '__')), judge, eval_config),
      'wall_s': wall,
    }
    print(spec, json.dumps(rows[spec]), flush=True)
  rows = median_rows(rows, seeds)
  rows['real test digits (floor)'] = evaluate.real_data_floor(judge, eval_config, data_config)
  table = markdown(rows, args.seconds, cpu, judge, eval_config)
  print(table)
  ablate.write_table(args.out, table, {'cpu': cpu, 'seconds': args.seconds, 'rows': rows})


if __name__ == '__main__':
  main()
