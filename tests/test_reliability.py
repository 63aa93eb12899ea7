"""Issue 7's proof: a run survives kills, signals, NaNs, bad input and full disks.

  pytest tests/test_reliability.py     # the file runs its children itself, 2 at a time
  (under xdist use --dist loadfile, as setup.cfg does, so that one worker runs them all; plain
  -n works, slower)

Every promise is checked on real runs of launch.py in subprocesses, except the NaN tests (two
in-process runs of train_and_evaluate with a poisoned experiment) and the grep for pickle.
The runs use the smoke config with every piece of train state switched on (FULL below: LeCam
EMAs, DiffAugment, spectral-norm power iterations, EMA generator, Adam moments, batch-norm
statistics), 12 steps, a checkpoint every 2 steps, at most 3 kept.

  ref           uninterrupted: the reference final state and metrics.jsonl
  det           the same command again: identical metrics and state (promise 2)
  kill_chain    1. SIGKILLed half-way through writing the step-2 checkpoint (no checkpoint is
                   complete yet: the rerun starts over),
                2. SIGKILLed by the test once it prints step 3,
                3. SIGKILLed with the step-8 checkpoint fully written but not yet committed
                   (orbax's final rename),
                4. run to the end: state and logged metrics bitwise equal to `ref` (promise 1)
  signal_chain  SIGTERM after the first progress line; rerun, SIGINT after its first progress
                line; rerun to the end: exit 0 each time, each rerun resumes where the last
                stopped, the end bitwise equal to `ref` (promise 3)
  bad:*         one child per bad input (promise 5): exit 2, one `error:` line on stderr, the
                workdir's files unchanged (names, sizes, mtimes, hashes)
  corrupt_*     the newest checkpoint truncated / garbled: falls back, says so, exits 0, ends
                bitwise equal to `ref`
  disk_full_*   a tmpfs too small for the second checkpoint; ENOSPC injected inside orbax's
                save: exit 2, one line, the previous checkpoint intact and restorable
  mixed_folder  an image folder of mixed sizes and modes trains

Children share a persistent XLA compilation cache (seeded by `ref`) and compile at LLVM -O0
(as tests/test_multidevice.py does), which cuts each run from ~50 s to ~10 s on 2 busy cores;
every run uses both, so comparisons are like for like. Kills use SIGKILL; hung children are
SIGKILLed at TIMEOUT_SECS. `tests/reliability_child.py` injects faults inside orbax's save.
With -s, a table of every child's wall time is printed at the end.
"""

import ast
import concurrent.futures
import dataclasses
import errno
import glob
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gan_jax import checkpoint
from gan_jax import experiment
from gan_jax import gan_experiment
from gan_jax import train
from gan_jax import writers
from tests.conftest import ROOT
from tests.conftest import load_config

LAUNCH = os.path.join(ROOT, 'launch.py')
CHILD = os.path.join(ROOT, 'tests', 'reliability_child.py')
TIMEOUT_SECS = 300  # Per child; then SIGKILL (JAX catches SIGTERM).
PARALLEL = 2  # Children at a time.
STEPS = 12
# Every piece of GAN train state exists with these; the smoke config logs every 2 steps and
# evaluates every 3; checkpoints every 2 steps keep log rows and resumes aligned. Lazy R1
# every 3rd step: two compiled steps, resumed at steps out of phase with the penalty.
FULL = {
  'loss.lecam_weight': 0.1,
  'augment.policy': 'color,translation,cutout',
  'model.spectral_norm': True,
  'train.num_steps': STEPS,
  'train.checkpoint_every': 2,
  'loss.r1_gamma': 1.0,
  'loss.penalty_every': 3,
}
SMOKE = '--config=configs/mnist_dcgan.py:smoke'
ABSL_LOG_LINE = re.compile(r'^[IW]\d{4} ')  # absl INFO/WARNING records (orbax, JAX).
PROGRESS = re.compile(r'^step (\d+)/(\d+)')
TIMINGS = []  # (seconds, command) of every child, printed at the end (pytest -s).


def all_finite(tree) -> bool:
  """Whether every float leaf of a (restored) state is finite."""
  return all(
    bool(np.all(np.isfinite(x)))
    for x in jax.tree.leaves(jax.device_get(tree))
    if np.issubdtype(np.asarray(x).dtype, np.floating)
  )


def flags(overrides=None, **more):
  merged = {**FULL, **(overrides or {}), **more}
  return [SMOKE] + [f'--config.{k}={v}' for k, v in merged.items()]


def full_config(**overrides):
  config = load_config('mnist_dcgan')
  for key, value in {**FULL, **overrides}.items():
    section, name = key.split('.')
    config[section][name] = value
  return config


# ----------------------------------------------------------------------------------------------
# Children


@dataclasses.dataclass
class Result:
  args: list
  returncode: int
  stdout: str
  stderr: str
  signalled_at: int | None = None  # The progress step on which the test sent its signal.
  seconds: float = 0.0

  @property
  def error_lines(self):
    """stderr without absl INFO/WARNING records."""
    return [l for l in self.stderr.splitlines() if l.strip() and not ABSL_LOG_LINE.match(l)]

  def resumed_from(self):
    m = re.search(r'resuming from the checkpoint at step (\d+)', self.stdout)
    return int(m.group(1)) if m else None

  def describe(self):
    tail = '\n'.join(self.error_lines[-15:])
    return (
      f'{" ".join(self.args)}\nexit {self.returncode}\n--- stdout\n{self.stdout[-3000:]}'
      f'\n--- stderr (no I/W lines), tail\n{tail}'
    )


def child_env(cache_dir, xla_flags=''):
  env = dict(os.environ)
  env.update(
    JAX_PLATFORMS='cpu',
    JAX_COMPILATION_CACHE_DIR=cache_dir,
    JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS='0',
    JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES='0',
    XLA_FLAGS=f'--xla_backend_optimization_level=0 {xla_flags}'.strip(),
  )
  return env


def run_child(
  args, *, env, workdir=None, fault=None, signal_at=None, sig=signal.SIGKILL, timeout=TIMEOUT_SECS
) -> Result:
  """launch.py (or, with `fault`, reliability_child.py) with `args`; waits for it to exit.

  `signal_at`: send `sig` when the child prints the progress line of that step or a later one
  (0: the first progress line).
  """
  args = list(args) + ([f'--workdir={workdir}'] if workdir else [])
  cmd = [sys.executable] + ([CHILD, fault[0], str(fault[1]), '--'] if fault else [LAUNCH]) + args
  timed_out = threading.Event()

  def on_timeout():
    timed_out.set()
    proc.kill()

  with tempfile.TemporaryFile('w+') as err:
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, text=True, cwd=ROOT, env=env)
    watchdog = threading.Timer(timeout, on_timeout)
    watchdog.start()
    lines, signalled_at = [], None
    try:
      for line in proc.stdout:
        lines.append(line)
        m = PROGRESS.match(line)
        if m and signal_at is not None and signalled_at is None and int(m.group(1)) >= signal_at:
          signalled_at = int(m.group(1))
          proc.send_signal(sig)
      returncode = proc.wait()
    finally:
      watchdog.cancel()
      if proc.poll() is None:
        proc.kill()
        proc.wait()
    err.seek(0)
    result = Result(
      cmd[1:], returncode, ''.join(lines), err.read(), signalled_at, time.monotonic() - t0
    )
  TIMINGS.append(
    (
      time.monotonic() - t0,
      ' '.join(a for a in result.args if not a.startswith(('--config.', '--config='))),
    )
  )
  if timed_out.is_set():
    raise AssertionError(f'child timed out after {timeout}s:\n{result.describe()}')
  return result


def finished_steps(workdir):
  ckpt_dir = os.path.join(workdir, 'checkpoints')
  return (
    sorted(int(n) for n in os.listdir(ckpt_dir) if n.isdigit()) if os.path.isdir(ckpt_dir) else []
  )


def snapshot(path):
  """Every file and folder under `path`: name -> (size, mtime_ns, sha256) or 'dir'."""
  out = {}
  for dirpath, dirnames, filenames in os.walk(path):
    for d in dirnames:
      out[os.path.relpath(os.path.join(dirpath, d), path)] = 'dir'
    for f in filenames:
      p = os.path.join(dirpath, f)
      with open(p, 'rb') as fh:
        digest = hashlib.sha256(fh.read()).hexdigest()
      st = os.stat(p)
      out[os.path.relpath(p, path)] = (st.st_size, st.st_mtime_ns, digest)
  return out


def metric_rows(workdir):
  with open(os.path.join(workdir, 'metrics.jsonl')) as f:
    rows = [json.loads(line) for line in f]
  # Everything the train step computed; steps_per_sec and train_time_s are wall-clock.
  clock = ('steps_per_sec', 'train_time_s')
  return [{k: v for k, v in r.items() if k not in clock} for r in rows if 'd_loss' in r]


def _mount(*args) -> bool:
  try:
    return subprocess.run(['mount', *args], capture_output=True, timeout=30).returncode == 0
  except (OSError, subprocess.TimeoutExpired):  # No mount(8) here.
    return False


def _umount(path):
  try:
    subprocess.run(['umount', '-l', path], capture_output=True, timeout=30)
  except (OSError, subprocess.TimeoutExpired):
    pass


def mount_works(scratch) -> bool:
  """Whether this sandbox lets us mount a tmpfs (root, CAP_SYS_ADMIN)."""
  target = os.path.join(scratch, 'mount_probe')
  os.makedirs(target, exist_ok=True)
  if not _mount('-t', 'tmpfs', '-o', 'size=64k', 'tmpfs', target):
    return False
  _umount(target)
  return True


# ----------------------------------------------------------------------------------------------
# Jobs: each is a function of the Jobs object; `deps` must finish first (they seed the compile
# cache or provide a trained workdir). Started together in the background as soon as the module
# starts, PARALLEL at a time; each test waits only for the jobs it reads.


class Jobs:
  def __init__(self, root, prestart: bool):
    self.root = root
    self.cache = os.path.join(root, 'xla_cache')
    self.env = child_env(self.cache)
    self.can_mount = mount_works(root)
    self.mounts = []
    self._pool = concurrent.futures.ThreadPoolExecutor(PARALLEL)
    self._futures = {}
    self._lock = threading.RLock()
    self.prestart = prestart

  def dir(self, name):
    path = os.path.join(self.root, name)
    os.makedirs(path, exist_ok=True)
    return path

  def start(self, name):
    with self._lock:
      if name in self._futures:
        return self._futures[name]
      fn, deps = JOBS[name]
      future = concurrent.futures.Future()
      self._futures[name] = future
      dep_futures = [self.start(d) for d in deps]

    def run():
      if not future.set_running_or_notify_cancel():
        return
      try:
        future.set_result(fn(self))
      except BaseException as e:  # pylint: disable=broad-except
        future.set_exception(e)

    def submit_when_ready(_=None):
      if all(f.done() for f in dep_futures):
        failed = [f.exception() for f in dep_futures if f.exception()]
        if failed:
          future.set_exception(RuntimeError(f'job {name}: a prerequisite failed: {failed[0]!r}'))
        else:
          self._pool.submit(run)

    if dep_futures:
      counter = {'left': len(dep_futures)}
      counter_lock = threading.Lock()

      def one_done(_):
        with counter_lock:
          counter['left'] -= 1
          ready = counter['left'] == 0
        if ready:
          submit_when_ready()

      for f in dep_futures:
        f.add_done_callback(one_done)
    else:
      self._pool.submit(run)
    return future

  def get(self, name):
    return self.start(name).result()

  def close(self):
    self._pool.shutdown(wait=True, cancel_futures=True)
    for path in reversed(self.mounts):
      _umount(path)


def job_ref(jobs):
  return run_child(flags(), env=jobs.env, workdir=jobs.dir('ref'))


def job_det(jobs):
  return run_child(flags(), env=jobs.env, workdir=jobs.dir('det'))


def job_kill_chain(jobs):
  workdir = jobs.dir('kill_chain')
  out = {}
  # 1. Killed while writing the first checkpoint: nothing is finished yet.
  out['mid_write'] = run_child(flags(), env=jobs.env, workdir=workdir, fault=('kill_mid_write', 2))
  out['after_mid_write'] = (
    finished_steps(workdir),
    sorted(os.listdir(os.path.join(workdir, 'checkpoints'))),
    metric_rows(workdir),
  )
  # 2. Killed by us at an arbitrary step (whatever step it has reached when the signal lands),
  # from step 5 on: checkpoints are written in the background, and step 2's is sure to be
  # finished once step 4's save has begun (a save first waits for the one before).
  out['at_step'] = run_child(flags(), env=jobs.env, workdir=workdir, signal_at=5)
  out['after_at_step'] = finished_steps(workdir)
  # 3. Killed with the step-8 checkpoint written in full but not yet committed.
  out['before_commit'] = run_child(
    flags(), env=jobs.env, workdir=workdir, fault=('kill_before_commit', 8)
  )
  tmp = os.path.join(workdir, 'checkpoints', '8.orbax-checkpoint-tmp')
  out['after_before_commit'] = (
    finished_steps(workdir),
    sorted(os.listdir(tmp)) if os.path.isdir(tmp) else None,
  )
  # 4. To the end.
  out['final'] = run_child(flags(), env=jobs.env, workdir=workdir)
  out['workdir'] = workdir
  return out


def job_signal_chain(jobs):
  workdir = jobs.dir('signal_chain')
  out = {'workdir': workdir}
  out['term'] = run_child(flags(), env=jobs.env, workdir=workdir, signal_at=0, sig=signal.SIGTERM)
  out['after_term'] = finished_steps(workdir)
  out['int'] = run_child(flags(), env=jobs.env, workdir=workdir, signal_at=0, sig=signal.SIGINT)
  out['after_int'] = finished_steps(workdir)
  out['final'] = run_child(flags(), env=jobs.env, workdir=workdir)
  return out


_IMAGES_LOCK = threading.Lock()


def _image_folders(root):
  """Image folders for the data cases: 'empty', 'corrupt', 'mixed' (sizes, modes)."""
  with _IMAGES_LOCK:
    folders = {k: os.path.join(root, k) for k in ('empty', 'corrupt', 'mixed')}
    if not os.path.isdir(folders['mixed']):
      _write_image_folders(folders)
    return folders


def _write_image_folders(folders):
  from PIL import Image  # pylint: disable=g-import-not-at-top

  rng = np.random.default_rng(0)
  os.makedirs(folders['empty'])
  with open(os.path.join(folders['empty'], 'notes.txt'), 'w') as f:
    f.write('no images here\n')
  os.makedirs(folders['corrupt'])
  for i in range(20):
    Image.fromarray(rng.integers(0, 256, (28, 28), dtype=np.uint8), 'L').save(
      os.path.join(folders['corrupt'], f'{i:02d}.png')
    )
  with open(os.path.join(folders['corrupt'], 'broken.png'), 'wb') as f:
    f.write(b'\x89PNG\r\n\x1a\n' + b'\x00' * 40)  # A PNG signature, then garbage.
  for cls, mode in (('rgb', 'RGB'), ('grey', 'L')):  # Mixed sizes, modes; two classes.
    os.makedirs(os.path.join(folders['mixed'], cls))
    for i in range(12):
      shape = (20 + 3 * i, 31 - i) + ((3,) if mode == 'RGB' else ())
      Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode).save(
        os.path.join(folders['mixed'], cls, f'{i:02d}.png')
      )


BROKEN_CONFIG = 'from configs import common\n\ndef get_config(:\n  return common.gan_config()\n'

# Bad input, name: (extra launch.py args, workdir kind, pattern for the one error line, extra
# XLA_FLAGS). Workdir kinds: 'fresh' (a folder holding one bystander file), 'trained' (a copy
# of ref's workdir), 'read_only' (a read-only bind mount of such a copy).
BAD_INPUT = {
  'unknown_config_key': (
    ['--config.train.num_stepz=3'],
    'fresh',
    r"unknown config key 'num_stepz'",
    None,
  ),
  'wrong_type': (['--config.train.num_steps=many'], 'fresh', r'num_steps.*many', None),
  'missing_config_file': (
    ['--config=configs/no_such_config.py'],
    'fresh',
    r"config file 'configs/no_such_config\.py' not found",
    None,
  ),
  'broken_config_file': (
    ['--config={broken_config}'],
    'fresh',
    r'broken_config\.py.*line 3|line 3.*broken_config\.py',
    None,
  ),
  'unknown_model': (
    ['--config.model.generator=stylegan9'],
    'fresh',
    r"unknown generator 'stylegan9'",
    None,
  ),
  'unknown_loss': (
    ['--config.loss.name=wasserstain'],
    'fresh',
    r"unknown loss 'wasserstain'",
    None,
  ),
  'unknown_dataset': (
    ['--config.data.source=embedded:cifar99'],
    'fresh',
    r"unknown embedded data set 'cifar99'",
    None,
  ),
  'unknown_source_kind': (
    ['--config.data.source=s3://bucket/x'],
    'fresh',
    r"unknown data source 's3://bucket/x'",
    None,
  ),
  'missing_image_folder': (
    ['--config.data.source=folder:/nonexistent/images'],
    'fresh',
    r"image folder '/nonexistent/images' does not exist",
    None,
  ),
  'image_folder_without_images': (
    ['--config.data.source=folder:{images}/empty'],
    'fresh',
    r'image folder .*empty.* holds no images',
    None,
  ),
  'image_folder_with_corrupt_image': (
    [
      '--config.data.source=folder:{images}/corrupt',
      '--config.data.channels=1',
      '--config.data.image_size=28',
    ],
    'fresh',
    r'corrupt or unreadable image .*broken\.png',
    None,
  ),
  'batch_not_divisible_by_devices': (
    [],
    'fresh',
    r'batch size 16 is not divisible by the 3 devices',
    '--xla_force_host_platform_device_count=3',
  ),
  'different_architecture': (
    ['--config.model.g_width=16'],
    'trained',
    r'holds a different model.*refusing to overwrite.*new --workdir',
    None,
  ),
  'read_only_workdir': (
    [],
    'read_only',
    r"workdir '.*' is not writable: Read-only file "
    r'system|cannot create workdir .*',
    None,
  ),
  'negative_steps': (
    ['--config.train.num_steps=-5'],
    'fresh',
    r'config\.train\.num_steps must be >= 1, got -5',
    None,
  ),
  'ema_decay_out_of_range': (
    ['--config.train.ema_decay=1.5'],
    'fresh',
    r'config\.train\.ema_decay must be in \[0, 1\), got 1\.5',
    None,
  ),
  'zero_eval_samples': (
    ['--config.eval.num_samples=0'],
    'trained',
    r'config\.eval\.num_samples must be >= 2, got 0',
    None,
  ),
  'negative_penalty': (
    ['--config.loss.r2_gamma=-1.0'],
    'trained',
    r'config\.loss\.r2_gamma must be >= 0, got -1\.0',
    None,
  ),
  'zero_penalty_interval': (
    ['--config.loss.penalty_every=0'],
    'fresh',
    r'config\.loss\.penalty_every must be >= 1, got 0',
    None,
  ),
}


def _bad_input_job(name):
  extra, kind, _, xla_flags = BAD_INPUT[name]

  def job(jobs):
    scratch = jobs.dir(f'bad_{name}')
    images = _image_folders(jobs.dir('images'))
    broken = os.path.join(scratch, 'broken_config.py')
    with open(broken, 'w') as f:
      f.write(BROKEN_CONFIG)
    workdir = os.path.join(scratch, 'workdir')
    if kind == 'fresh':
      os.makedirs(workdir)
      with open(os.path.join(workdir, 'notes.txt'), 'w') as f:
        f.write('a file that must survive\n')
    elif kind == 'trained':
      shutil.copytree(jobs.dir('ref'), workdir)
    elif kind == 'read_only':
      if jobs.can_mount:  # A read-only bind mount of a trained workdir: root cannot write it.
        source = os.path.join(scratch, 'source')
        shutil.copytree(jobs.dir('ref'), source)
        os.makedirs(workdir)
        assert _mount('--bind', source, workdir)
        jobs.mounts.append(workdir)
        assert _mount('-o', 'remount,ro,bind', workdir)
      else:  # No mount here: sysfs refuses new folders even to root.
        workdir = '/sys/gan_jax_reliability_workdir'
    args = [
      a.format(images=os.path.dirname(images['mixed']), broken_config=broken)
      for a in flags() + extra
    ]
    before = snapshot(workdir) if os.path.isdir(workdir) else None
    result = run_child(args, env=child_env(jobs.cache, xla_flags or ''), workdir=workdir)
    after = snapshot(workdir) if os.path.isdir(workdir) else None
    return result, before, after, workdir

  return job, (('ref',) if kind in ('trained', 'read_only') else ())


def _corrupt_files(paths, how):
  for path in paths:
    size = os.path.getsize(path)
    if how == 'truncated':
      with open(path, 'r+b') as f:
        f.truncate(size // 2)
    else:
      with open(path, 'r+b') as f:
        f.write(bytes(np.random.default_rng(1).integers(0, 256, size, dtype=np.uint8)))


def _corrupt_checkpoint_job(how):
  def job(jobs):
    workdir = os.path.join(jobs.dir(f'corrupt_{how}'), 'workdir')
    shutil.copytree(jobs.dir('ref'), workdir)
    newest = os.path.join(workdir, 'checkpoints', str(STEPS))
    arrays = [
      p
      for p in glob.glob(os.path.join(newest, 'state', '**', '*'), recursive=True)
      if os.path.isfile(p) and os.sep + 'd' + os.sep in p
    ]
    assert arrays, os.listdir(os.path.join(newest, 'state'))
    _corrupt_files(arrays, how)
    return run_child(flags(), env=jobs.env, workdir=workdir), workdir

  return job, ('ref',)


def job_mixed_folder(jobs):
  images = _image_folders(jobs.dir('images'))
  workdir = jobs.dir('mixed_folder')
  return run_child(
    flags({'train.num_steps': 2})
    + [
      f'--config.data.source=folder:{images["mixed"]}',
      '--config.data.image_size=28',
      '--config.data.channels=1',
    ],
    env=jobs.env,
    workdir=workdir,
  ), workdir


def job_disk_full_tmpfs(jobs):
  """The workdir on a tmpfs of 1.5 checkpoints (and room for logs): step 2's fits, 4's not."""
  if not jobs.can_mount:
    pytest.skip('cannot mount a tmpfs here (job_disk_full_mid_write covers a full disk)')
  one_checkpoint = sum(
    os.path.getsize(p)
    for p in glob.glob(
      os.path.join(jobs.dir('ref'), 'checkpoints', str(STEPS), '**'), recursive=True
    )
    if os.path.isfile(p)
  )
  mount_point = jobs.dir('disk_full_tmpfs')
  size_kib = int(1.5 * one_checkpoint) // 1024 + 512
  assert _mount('-t', 'tmpfs', '-o', f'size={size_kib}k', 'tmpfs', mount_point)
  jobs.mounts.append(mount_point)
  workdir = os.path.join(mount_point, 'workdir')
  return run_child(flags(), env=jobs.env, workdir=workdir), workdir


def job_disk_full_mid_write(jobs):
  """ENOSPC raised inside orbax's save of step 4, after the arrays are written."""
  workdir = jobs.dir('disk_full_mid_write')
  return run_child(flags(), env=jobs.env, workdir=workdir, fault=('enospc_mid_write', 4)), workdir


JOBS = {
  'ref': (job_ref, ()),
  'det': (job_det, ('ref',)),
  'kill_chain': (job_kill_chain, ('ref',)),
  'signal_chain': (job_signal_chain, ('ref',)),
  'mixed_folder': (job_mixed_folder, ('ref',)),
  'disk_full_tmpfs': (job_disk_full_tmpfs, ('ref',)),
  'disk_full_mid_write': (job_disk_full_mid_write, ('ref',)),
  'corrupt_truncated': _corrupt_checkpoint_job('truncated'),
  'corrupt_garbled': _corrupt_checkpoint_job('garbled'),
  **{f'bad:{name}': _bad_input_job(name) for name in BAD_INPUT},
}
# Which jobs each test reads (for starting only what the selected tests need).
NEEDS = {
  'test_exact_resume_after_sigkill_at_any_moment': ['ref', 'kill_chain'],
  'test_same_seed_same_losses': ['ref', 'det'],
  'test_sigterm_and_sigint_save_exit_0_and_resume_exactly': ['ref', 'signal_chain'],
  'test_bad_input_is_one_clear_line_and_touches_nothing': [f'bad:{n}' for n in BAD_INPUT],
  'test_mixed_size_and_mode_image_folder_trains': ['mixed_folder'],
  'test_unreadable_newest_checkpoint_falls_back_and_resumes_exactly': [
    'ref',
    'corrupt_truncated',
    'corrupt_garbled',
  ],
  'test_disk_full_keeps_the_previous_checkpoint': ['disk_full_tmpfs', 'disk_full_mid_write'],
}
# Start order: the reference first (it seeds the compile cache); quick failures fill the other
# slot meanwhile; then the long chains.
ORDER = (
  ['ref']
  + [f'bad:{n}' for n, c in BAD_INPUT.items() if c[1] == 'fresh']
  + [
    'kill_chain',
    'signal_chain',
    'det',
    'corrupt_truncated',
    'corrupt_garbled',
    'disk_full_tmpfs',
    'disk_full_mid_write',
    'mixed_folder',
  ]
  + [f'bad:{n}' for n, c in BAD_INPUT.items() if c[1] != 'fresh']
)
assert sorted(ORDER) == sorted(JOBS)


@pytest.fixture(scope='module', autouse=True)
def jobs(request, tmp_path_factory):
  # Under xdist, start only on demand unless all of this file's tests share a worker.
  xdist = os.environ.get('PYTEST_XDIST_WORKER')
  grouped = request.config.getoption('dist', 'no') in ('loadfile', 'loadscope')
  j = Jobs(str(tmp_path_factory.mktemp('reliability')), prestart=not xdist or grouped)
  if j.prestart:
    selected = {
      item.originalname for item in request.session.items if item.module is request.module
    }
    wanted = {job for test in selected for job in NEEDS.get(test, ())}
    for name in ORDER:
      if name in wanted:
        j.start(name)
  t0 = time.monotonic()
  yield j
  j.close()
  print(
    f'\n{len(TIMINGS)} children, {sum(t for t, _ in TIMINGS):.0f} s in total, module '
    f'{time.monotonic() - t0:.0f} s:'
  )
  for seconds, command in sorted(TIMINGS, reverse=True):
    print(f'  {seconds:5.1f} s  {command}')


@pytest.fixture(scope='module')
def ref(jobs):
  result = jobs.get('ref')
  assert result.returncode == 0, result.describe()
  step, state = final_state(jobs.dir('ref'))
  assert step == STEPS
  return {'workdir': jobs.dir('ref'), 'state': state, 'metrics': metric_rows(jobs.dir('ref'))}


def test_the_terminal_a_person_reads(ref, jobs):
  """The smoke run prints what trains, progress with an ETA, a closing summary and the next
  commands; no library log records (orbax, JAX), and at most ~40 lines."""
  result = jobs.get('ref')
  lines = [l for l in (result.stdout + result.stderr).splitlines() if l.strip()]
  assert not [l for l in lines if ABSL_LOG_LINE.match(l)], result.describe()
  assert len(lines) <= 40, '\n'.join(lines)
  assert any(l.startswith('training gan on ') and 'devices' in l for l in lines)
  assert any(PROGRESS.match(l) and 'ETA' in l for l in lines)
  assert any(l.startswith(f'finished at step {STEPS}: d_loss ') for l in lines)
  commands = result.stdout.split('next:\n', 1)[1].split('\n')
  assert '--mode=sample' in commands[0] and '--mode=eval' in commands[1]
  assert SMOKE in commands[0] and '--config.model.spectral_norm=True' in commands[0]
  assert '--config.train.' not in commands[0]


def test_progress_eta_stops_at_the_time_budget(capsys):
  """A run stopping on `train.time_budget_s` shows the time left to it, not to num_steps."""
  progress = writers.Progress(total=100_000, start=0, every_secs=0.0)
  progress.restart(0)
  time.sleep(0.01)
  progress.show(1, {}, force=True)
  progress.show(2, {}, force=True, seconds_left=125.4)
  unbounded, capped = capsys.readouterr().out.splitlines()
  assert int(unbounded.split('ETA ')[1].split('m')[0]) > 2
  assert capped.endswith('ETA 2m05s')


def final_state(workdir, **overrides):
  _, step, state = experiment.restore_for_inference(full_config(**overrides), workdir)
  return step, jax.device_get(state)


def assert_bitwise_equal(expected, actual):
  want = jax.tree_util.tree_flatten_with_path(expected)
  got = jax.tree_util.tree_flatten_with_path(actual)
  assert want[1] == got[1], 'different tree structure'
  differing = [
    jax.tree_util.keystr(path)
    for (path, x), (_, y) in zip(want[0], got[0])
    if np.asarray(x).dtype != np.asarray(y).dtype or not np.array_equal(x, y)
  ]
  assert not differing, f'{len(differing)} of {len(want[0])} leaves differ, e.g. {differing[:5]}'


# ----------------------------------------------------------------------------------------------
# 4. Non-finite values (in-process, first: they overlap with the children started above).


def poisoned_experiment(bad_step):
  """A GAN whose D parameters turn NaN going into step `bad_step` (1-based, as logged)."""

  def make(run):
    experiment = gan_experiment.Experiment(run)
    clean_step = experiment.train_step

    def train_step(state, batch, key):
      factor = jnp.where(state.step + 1 == bad_step, jnp.nan, 1.0)
      poisoned = state.replace(d_params=jax.tree.map(lambda p: p * factor, state.d_params))
      return clean_step(poisoned, batch, key)

    experiment.train_step = train_step
    return experiment

  return make


def progress_steps(text):
  return [int(m.group(1)) for m in map(PROGRESS.match, text.splitlines()) if m]


def test_nan_stops_within_one_log_interval_keeping_the_last_good_checkpoint(tmp_path, capsys):
  config = load_config('mnist_dcgan')
  config.train.num_steps, config.train.log_every, config.train.checkpoint_every = 12, 4, 3
  bad = 5  # Checkpoint at 3; a log at 4 (clean); NaN at 5; the step-6 checkpoint must not be.
  with pytest.raises(train.NonFiniteError) as info:
    train.train_and_evaluate(config, str(tmp_path), make_experiment=poisoned_experiment(bad))
  message = str(info.value)
  quantities = re.search(rf'non-finite (.+) at step {bad}\b', message)
  assert quantities, message
  assert quantities.group(1).startswith('d_loss, g_loss'), message  # What went bad, named.
  assert 'step 3' in message  # The last good checkpoint, named.
  shown = progress_steps(capsys.readouterr().out)
  assert bad in shown and max(shown) < bad + config.train.log_every, shown
  assert finished_steps(str(tmp_path)) == [3]
  assert not [n for n in os.listdir(tmp_path / 'checkpoints') if n != '3'], 'partial saves'
  assert all(r['step'] < bad and np.isfinite(r['d_loss']) for r in metric_rows(str(tmp_path)))
  # Nor is the bad state evaluated: no sample grid at or after the NaN.
  assert sorted(os.listdir(tmp_path / 'samples')) == ['step_000003.png']
  # What is kept is the good state, and readable.
  _, step, state = experiment.restore_for_inference(config, str(tmp_path))
  assert step == 3 and all_finite(state)


def test_skip_nonfinite_skips_the_bad_step_and_carries_on(tmp_path, capsys):
  config = load_config('mnist_dcgan')
  config.train.num_steps, config.train.checkpoint_every = 8, 4
  config.train.skip_nonfinite = True
  bad = 5
  state = train.train_and_evaluate(config, str(tmp_path), make_experiment=poisoned_experiment(bad))
  assert int(state.step) == 8
  assert all_finite(state)
  rows = metric_rows(str(tmp_path))
  assert [(r['step'], r['skipped']) for r in rows] == [(2, 0), (4, 0), (6, 1), (8, 0)]
  assert all(np.isfinite(r['d_loss']) and np.isfinite(r['g_loss']) for r in rows)
  assert max(progress_steps(capsys.readouterr().out)) == 8
  _, step, saved = experiment.restore_for_inference(config, str(tmp_path))
  assert step == 8 and all_finite(saved)


# ----------------------------------------------------------------------------------------------
# 6. Nothing executes from a checkpoint or a cache.

UNSAFE_MODULES = {
  'pickle',
  '_pickle',
  'cPickle',
  'cloudpickle',
  'dill',
  'joblib',
  'shelve',
  'marshal',
  'torch',
}


# The one sanctioned unpickler: PyTorch weights files are pickles, so gan_jax/torch_weights.py
# reads them through a `find_class` allow-list (tests/test_inception.py proves a code payload
# is refused with nothing run). Here: it unpickles only through that subclass.
SANCTIONED_UNPICKLER = os.path.join('gan_jax', 'torch_weights.py')


def _sanctioned_unpickler_problems(tree) -> list[str]:
  classes = [
    n
    for n in ast.walk(tree)
    if isinstance(n, ast.ClassDef) and any(ast.unparse(b) == 'pickle.Unpickler' for b in n.bases)
  ]
  names = {c.name for c in classes}
  problems = [] if classes else ['no pickle.Unpickler subclass']
  for c in classes:
    if not any(isinstance(f, ast.FunctionDef) and f.name == 'find_class' for f in c.body):
      problems.append(f'{c.name} does not override find_class')
  for node in ast.walk(tree):
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
      owner = node.func.value
      if node.func.attr in ('load', 'loads') and ast.unparse(owner).startswith('pickle'):
        problems.append(f'line {node.lineno}: {ast.unparse(node.func)}')
      if node.func.attr == 'load' and isinstance(owner, ast.Call):
        if ast.unparse(owner.func) not in names:
          problems.append(f'line {node.lineno}: load() on {ast.unparse(owner.func)}')
  return [f'{SANCTIONED_UNPICKLER}: {p}' for p in problems]


def test_no_pickle_anywhere_in_gan_jax():
  sources = glob.glob(os.path.join(ROOT, 'gan_jax', '**', '*.py'), recursive=True) + [LAUNCH]
  assert len(sources) > 10
  problems = []
  for path in sources:
    with open(path) as f:
      text = f.read()
    tree = ast.parse(text, path)
    if os.path.relpath(path, ROOT) == SANCTIONED_UNPICKLER:
      problems += _sanctioned_unpickler_problems(tree)
      continue
    for node in ast.walk(tree):
      where = f'{os.path.relpath(path, ROOT)}:{getattr(node, "lineno", "?")}'
      if isinstance(node, ast.Import):
        problems += [
          f'{where} imports {a.name}' for a in node.names if a.name.split('.')[0] in UNSAFE_MODULES
        ]
      elif isinstance(node, ast.ImportFrom) and (node.module or '').split('.')[0] in UNSAFE_MODULES:
        problems.append(f'{where} imports from {node.module}')
      elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
        if node.func.attr == 'load' and ast.unparse(node.func.value) in ('np', 'numpy', 'jnp'):
          kwargs = {k.arg: k.value for k in node.keywords}
          if not (
            isinstance(kwargs.get('allow_pickle'), ast.Constant)
            and kwargs['allow_pickle'].value is False
          ):
            problems.append(f'{where} np.load without allow_pickle=False')
        if node.func.attr in ('loads', 'load') and 'pickle' in ast.unparse(node.func.value):
          problems.append(f'{where} {ast.unparse(node.func)}')
    if re.search(r'allow_pickle\s*=\s*True', text):
      problems.append(f'{os.path.relpath(path, ROOT)} allow_pickle=True')
  assert not problems, problems


class _Payload:
  """Unpickling this would create `path`: the proof that code ran."""

  def __init__(self, path):
    self.path = path

  def __reduce__(self):
    return (open, (self.path, 'w'))


def test_cached_reference_stats_never_unpickle(tmp_path):
  from gan_jax import evaluate  # pylint: disable=g-import-not-at-top

  judge = evaluate.Judge(model=None, params=None, workdir=str(tmp_path), step=7)
  marker = tmp_path / 'code_ran'
  key = 'embedded_mnist_train_step7'
  os.makedirs(tmp_path / 'reference_stats')
  payload = np.empty(1, dtype=object)
  payload[0] = _Payload(str(marker))
  np.savez(
    tmp_path / 'reference_stats' / f'{key}.npz', features=payload, probs=payload, labels=payload
  )
  with pytest.raises(ValueError, match='allow_pickle'):
    evaluate.reference_features(judge, 'embedded:mnist', 'train')
  assert not marker.exists()


# ----------------------------------------------------------------------------------------------
# 1. Exact resume after SIGKILL at any moment; 2. determinism.


def test_exact_resume_after_sigkill_at_any_moment(jobs, ref):
  chain = jobs.get('kill_chain')
  # 1. Killed half-way through writing checkpoint 2: only its temporary folder exists.
  r = chain['mid_write']
  assert r.returncode == -signal.SIGKILL, r.describe()
  assert os.path.exists(os.path.join(chain['workdir'], 'fault_fired'))
  finished, names, rows = chain['after_mid_write']
  assert finished == [] and names == ['2.orbax-checkpoint-tmp'], names
  assert [row['step'] for row in rows] == [2]  # Logged just before the save began.
  # 2. ... so the rerun starts over, and is killed by the test mid-run.
  r = chain['at_step']
  assert r.resumed_from() is None and 'steps 0..12' in r.stdout, r.describe()
  assert r.returncode == -signal.SIGKILL and r.signalled_at >= 5, r.describe()
  kept = chain['after_at_step']
  assert kept and max(kept) < 8, kept  # (If the kill landed after 8, step 3 has nothing to do.)
  # 3. Resumes from the newest finished checkpoint; killed just before committing step 8.
  r = chain['before_commit']
  assert r.resumed_from() == max(kept), r.describe()
  assert r.returncode == -signal.SIGKILL, r.describe()
  finished, tmp_contents = chain['after_before_commit']
  assert max(finished) == 6, finished
  assert tmp_contents and 'state' in tmp_contents and 'data' in tmp_contents, tmp_contents
  # 4. The complete-looking but uncommitted step 8 is never restored.
  r = chain['final']
  assert r.returncode == 0, r.describe()
  assert r.resumed_from() == 6, r.describe()
  assert finished_steps(chain['workdir']) == [8, 10, 12]
  assert not glob.glob(os.path.join(chain['workdir'], 'checkpoints', '*tmp*'))
  # Parameters, optimizer moments, EMA, batch-norm and spectral-norm statistics, LeCam EMAs
  # and the step: bitwise equal to the uninterrupted run.
  step, state = final_state(chain['workdir'])
  assert step == STEPS
  assert_bitwise_equal(ref['state'], state)
  assert float(state.lecam.ema_real) != 0.0  # The regulariser state really exists.
  # The data order too: every logged loss equals the reference's, each step logged once.
  assert metric_rows(chain['workdir']) == ref['metrics']


def test_same_seed_same_losses(jobs, ref):
  det = jobs.get('det')
  assert det.returncode == 0, det.describe()
  rows = metric_rows(jobs.dir('det'))
  assert [r['step'] for r in rows] == list(range(2, STEPS + 1, 2))
  assert rows == ref['metrics']  # d_loss, g_loss, lecam, d_real, ...: exactly equal.
  with (
    open(os.path.join(jobs.dir('det'), 'metrics.jsonl')) as f1,
    open(os.path.join(ref['workdir'], 'metrics.jsonl')) as f2,
  ):
    losses = lambda f: [re.findall(r'"[dg]_loss": [^,}]+', line) for line in f]
    assert losses(f1) == losses(f2)  # The very bytes of the loss values.
  _, state = final_state(jobs.dir('det'))
  assert_bitwise_equal(ref['state'], state)


# ----------------------------------------------------------------------------------------------
# 3. SIGTERM / SIGINT.


def test_sigterm_and_sigint_save_exit_0_and_resume_exactly(jobs, ref):
  chain = jobs.get('signal_chain')
  term, intr, final = chain['term'], chain['int'], chain['final']
  m = re.search(r'stopping on SIGTERM: saved the checkpoint at step (\d+); exiting', term.stdout)
  assert term.returncode == 0 and m, term.describe()
  s1 = int(m.group(1))
  assert term.signalled_at <= s1 < STEPS, f'signal at {term.signalled_at}, stop at {s1}'
  assert max(chain['after_term']) == s1
  assert intr.resumed_from() == s1, intr.describe()
  m = re.search(r'stopping on SIGINT: saved the checkpoint at step (\d+); exiting', intr.stdout)
  assert intr.returncode == 0 and m, intr.describe()
  s2 = int(m.group(1))
  assert s1 < s2 < STEPS and max(chain['after_int']) == s2
  assert final.returncode == 0 and final.resumed_from() == s2, final.describe()
  _, state = final_state(chain['workdir'])
  assert_bitwise_equal(ref['state'], state)


# ----------------------------------------------------------------------------------------------
# 5. Bad input: exit 2, one clear line, nothing touched.


@pytest.mark.parametrize('case', sorted(BAD_INPUT))
def test_bad_input_is_one_clear_line_and_touches_nothing(jobs, case):
  result, before, after, workdir = jobs.get(f'bad:{case}')
  pattern = BAD_INPUT[case][2]
  assert result.returncode == 2, result.describe()
  lines = result.error_lines
  assert len(lines) == 1 and lines[0].startswith('error: '), result.describe()
  assert re.search(pattern, lines[0]), (pattern, lines[0])
  assert 'Traceback' not in result.stderr
  assert before == after, 'the workdir changed'
  if before is None:
    assert not os.path.exists(workdir)


def test_mixed_size_and_mode_image_folder_trains(jobs):
  result, workdir = jobs.get('mixed_folder')
  assert result.returncode == 0, result.describe()
  assert '24 examples of shape (28, 28, 1), 2 classes' in result.stdout, result.stdout
  assert 'step 2/2' in result.stdout
  assert finished_steps(workdir) == [2]


@pytest.mark.parametrize('how', ['truncated', 'garbled'])
def test_unreadable_newest_checkpoint_falls_back_and_resumes_exactly(jobs, ref, how):
  result, workdir = jobs.get(f'corrupt_{how}')
  assert result.returncode == 0, result.describe()
  assert re.search(
    rf'checkpoint at step {STEPS} is unreadable \(.+\); moved it to '
    rf'\S+/{STEPS}\.unreadable; falling back to step {STEPS - 2}',
    result.stdout,
  ), result.describe()
  assert result.resumed_from() == STEPS - 2
  assert os.path.isdir(os.path.join(workdir, 'checkpoints', f'{STEPS}.unreadable'))  # Kept.
  _, state = final_state(workdir)
  assert_bitwise_equal(ref['state'], state)


def _assert_clean_disk_full_failure(result, workdir, failed_step, kept_step):
  assert result.returncode == 2, result.describe()
  lines = result.error_lines
  assert len(lines) == 1, result.describe()
  assert re.fullmatch(
    rf'error: could not save the checkpoint at step {failed_step}: No space '
    rf'left on device.*; the previous checkpoint \(step {kept_step}\) is '
    r'intact',
    lines[0],
  ), lines[0]
  assert finished_steps(workdir) == [kept_step]
  assert os.listdir(os.path.join(workdir, 'checkpoints')) == [str(kept_step)], 'leftovers'
  step, state = final_state(workdir)
  assert step == kept_step and all_finite(state)


def test_disk_full_keeps_the_previous_checkpoint(jobs):
  result, workdir = jobs.get('disk_full_mid_write')
  assert os.path.exists(os.path.join(workdir, 'fault_fired'))
  _assert_clean_disk_full_failure(result, workdir, failed_step=4, kept_step=2)
  if jobs.can_mount:
    result, workdir = jobs.get('disk_full_tmpfs')
    _assert_clean_disk_full_failure(result, workdir, failed_step=4, kept_step=2)


def test_disk_filling_inside_tensorstore_is_an_oserror(jobs, tmp_path, monkeypatch):
  """Past the free-space check (disabled here), tensorstore's own ENOSPC becomes OSError."""
  if not jobs.can_mount:
    pytest.skip('cannot mount a tmpfs here')
  mount_point = str(tmp_path / 'tiny')
  os.makedirs(mount_point)
  assert _mount('-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', mount_point)
  try:
    monkeypatch.setattr(checkpoint, '_free_bytes', lambda _: 1 << 40)
    ckpt = checkpoint.Checkpointer(os.path.join(mount_point, 'checkpoints'))
    noise = lambda seed: {'w': jax.random.normal(jax.random.key(seed), (150_000,))}  # 600 kB.
    ckpt.save(1, noise(0), {'position': 1})
    with pytest.raises(OSError) as info:
      ckpt.save(2, noise(1), {'position': 2})
    assert info.value.errno == errno.ENOSPC
    assert os.listdir(os.path.join(mount_point, 'checkpoints')) == ['1']  # No half-written 2.
    step, state, position = ckpt.restore(jax.eval_shape(lambda: noise(0)))
    assert step == 1 and position == {'position': 1}
    np.testing.assert_array_equal(state['w'], noise(0)['w'])
    ckpt.close()
  finally:
    _umount(mount_point)
