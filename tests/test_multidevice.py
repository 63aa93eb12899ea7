"""Scale-out, proven on CPU with real runs: one code path from 1 device to a 2-process mesh.

Every run is a subprocess of launch.py (through tests/multidevice_worker.py, which only adds
counters), because the simulated device count (XLA_FLAGS) must be set before JAX starts:

  one      1 device,  steps 0..6, uninterrupted: the reference
  two      2 devices, steps 0..4
  four     4 devices, steps 0..4
  eight    8 devices, steps 0..4, then `resumed`: 1 device, steps 4..6 in the same workdir
  fsdp     8 devices on mesh (data 2, fsdp 4): the large parameters really are split
  ada_hosts  as `hosts`, with ADA's adaptive augmentation: p the same on both processes
  hosts    2 processes x 2 devices on loopback (gloo), one shared workdir; then
           `hosts_sample`: --mode=sample with the same 2 processes
  shard_hosts  as `hosts`, reading the embedded digits from ArrayRecord shards (gan_jax/prepare.py)

All use the smoke config (batch 16, checkpoints every 2 steps, an evaluation at step 3), so
step 3 follows a checkpoint save and step 4 follows an evaluation: the train step must still be
traced and compiled exactly once per process.

Tolerance. The global batch is the same whatever the device count, so every run computes the
same function; only the order of floating-point reductions differs (per-device partial sums,
cross-device all-reduces, FSDP's gathers and reduce-scatters; two processes also hold each
global batch's rows in another order). Adam divides each gradient by its running RMS, so an
element whose gradient is small and partly cancelling turns ~1e-7 reduction noise into
parameter differences of ~1e-6 (measured: up to ~2e-6 with FSDP), while every step moves almost
every parameter by ~lr = 2e-4. State (parameters, Adam moments, EMA, batch-norm statistics):
rtol 1e-4, atol 1e-5 = lr / 20; the runs use at most ~15% of it (printed with -s), and two
steps of training move ~95% of the parameters outside it (test_the_tolerance_is_far_below_two
_steps): a run that saw other data, another noise draw or lost a step fails. Logged losses and
gradient norms (means over 2 steps): rtol 1e-5, atol 1e-6; the runs use ~1% of it.
Child processes compile with --xla_backend_optimization_level=0 (LLVM -O0): the same HLO, the
same partitioning, 2-3x less compile time on these small models. It only changes rounding
(e.g. fused multiply-adds), by about as much as the device count does (measured <= 2e-6 after
4 steps vs the default -O2); every run here uses it, so the comparisons are like for like.
"""

import dataclasses
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest

from gan_jax import config_checks
from gan_jax import hardware
from gan_jax import sharding
from gan_jax.errors import UserError
from tests.conftest import ROOT
from tests.conftest import load_config

WORKER = os.path.join(ROOT, 'tests', 'multidevice_worker.py')
CONFIG = '--config=configs/mnist_dcgan.py:smoke'
STEPS, RESUMED_STEPS = 4, 6
TIMEOUT_SECS = 300  # Per run; a hung collective is killed with SIGKILL (JAX catches SIGTERM).
PARALLEL = 3  # Child processes at a time.
PARAM_TOL = dict(rtol=1e-4, atol=1e-5)
LOSS_TOL = dict(rtol=1e-5, atol=1e-6)
LOSS_KEYS = ('d_loss', 'g_loss', 'd_real', 'd_fake', 'd_grad_norm', 'g_grad_norm')
PROGRESS = re.compile(r'^(step \d+/\d+|training |first step|resuming|wrote |nothing to do)')


def free_port() -> int:
  with socket.socket() as s:
    s.bind(('127.0.0.1', 0))
    return s.getsockname()[1]


def child_env(devices: int, report: str) -> dict:
  """The test's environment minus anything that steers JAX or a cluster launcher."""
  env = {
    k: v
    for k, v in os.environ.items()
    if not k.startswith(('JAX_', 'XLA_', 'SLURM_', 'TPU_', 'CUDA_VISIBLE'))
  }
  env.update(
    JAX_PLATFORMS='cpu',
    PYTHONUNBUFFERED='1',
    GAN_JAX_REPORT=report,
    XLA_FLAGS=f'--xla_force_host_platform_device_count={devices} '
    '--xla_backend_optimization_level=0',
  )
  return env


@dataclasses.dataclass
class Job:
  """One run: `processes` launch.py processes (sharing a coordinator if more than one)."""

  name: str
  logdir: str
  devices: int  # Per process.
  flags: list
  processes: int = 1
  after: str | None = None  # Starts once this run has succeeded; never if it failed.
  procs: list = dataclasses.field(default_factory=list)
  started: float = 0.0
  timed_out: bool = False

  def start(self):
    os.makedirs(self.logdir, exist_ok=True)
    distributed = []
    if self.processes > 1:
      distributed = [
        f'--coordinator_address=127.0.0.1:{free_port()}',
        f'--num_processes={self.processes}',
      ]
    for p in range(self.processes):
      argv = [sys.executable, WORKER, *self.flags, *distributed]
      argv += [f'--process_id={p}'] if distributed else []
      with open(self._path('stdout', p), 'w') as out, open(self._path('stderr', p), 'w') as err:
        self.procs.append(
          subprocess.Popen(
            argv,
            cwd=ROOT,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            env=child_env(self.devices, os.path.join(self.logdir, 'report.{process}.json')),
          )
        )
    self.started = time.monotonic()

  def poll(self) -> bool:
    """True when every process ended. A failed process takes its peers down with it."""
    codes = [p.poll() for p in self.procs]
    failed = any(c not in (None, 0) for c in codes)
    late = None in codes and time.monotonic() - self.started > TIMEOUT_SECS
    if failed or late:
      self.timed_out = late and not failed
      self.kill()
      return True
    return None not in codes

  @property
  def ok(self) -> bool:
    return bool(self.procs) and all(p.returncode == 0 for p in self.procs)

  def kill(self):
    for p in self.procs:
      if p.poll() is None:
        p.send_signal(signal.SIGKILL)
        p.wait()

  def _path(self, kind: str, process: int) -> str:
    return os.path.join(self.logdir, f'{kind}.{process}.txt')

  def stdout(self, process: int = 0) -> str:
    with open(self._path('stdout', process)) as f:
      return f.read()

  def report(self, process: int = 0) -> dict:
    with open(os.path.join(self.logdir, f'report.{process}.json')) as f:
      return json.load(f)

  def check(self):
    """Fails the calling test, with the children's stderr, unless every process exited 0."""
    codes = [p.returncode for p in self.procs]
    if not self.procs:
      pytest.fail(f'run {self.name!r} never started: run {self.after!r} failed', pytrace=False)
    if codes == [0] * self.processes:
      return
    tails = []
    for p in range(self.processes):
      with open(self._path('stderr', p)) as f:
        lines = [l for l in f.read().splitlines() if not re.match(r'^[IW]\d{4} ', l)]
      tails.append(f'--- process {p} (exit {codes[p]}):\n' + '\n'.join(lines[-25:]))
    why = f'timed out after {TIMEOUT_SECS}s' if self.timed_out else f'exit codes {codes}'
    pytest.fail(f'run {self.name!r} failed ({why}):\n' + '\n'.join(tails), pytrace=False)


def run_all(jobs, parallel: int = PARALLEL):
  """Runs `jobs` (in order, each after its `after`) with at most `parallel` child processes
  alive at once; kills every child still running if anything goes wrong here."""
  by_name = {j.name: j for j in jobs}
  waiting, running, finished = list(jobs), [], set()
  try:
    while waiting or running:
      for job in [j for j in running if j.poll()]:
        running.remove(job)
        finished.add(job.name)
      for job in list(waiting):
        if job.after is not None and job.after not in finished:
          continue
        if job.after is not None and not by_name[job.after].ok:
          waiting.remove(job)  # Never started: its check() says why.
          continue
        busy = sum(j.processes for j in running)
        if running and busy + job.processes > parallel:
          break
        waiting.remove(job)
        job.start()
        running.append(job)
      time.sleep(0.1)
  finally:
    for job in jobs:
      job.kill()


def embedded_mnist_shards(base) -> str:
  """The embedded training digits, in their order, as `python -m gan_jax.prepare` writes them
  from a folder of PNGs and a dataset.json."""
  from PIL import Image  # pylint: disable=g-import-not-at-top

  from gan_jax import data  # pylint: disable=g-import-not-at-top
  from gan_jax import prepare  # pylint: disable=g-import-not-at-top

  train = data.embedded_mnist('train')
  folder = base / 'digits'
  folder.mkdir()
  labels = []
  for i, (image, label) in enumerate(zip(train.images, train.labels)):
    Image.fromarray(image[..., 0]).save(folder / f'{i:05d}.png')
    labels.append([f'{i:05d}.png', int(label)])
  (folder / 'dataset.json').write_text(json.dumps({'labels': labels}))
  dest = str(base / 'shards')
  prepare.prepare(str(folder), dest, size=28, channels=1, show_progress=False, workers=1)
  return dest


@pytest.fixture(scope='module')
def runs(tmp_path_factory):
  base = tmp_path_factory.mktemp('multidevice')
  names = ('one', 'two', 'four', 'eight', 'fsdp', 'hosts', 'shard_hosts', 'ada_hosts')
  workdirs = {name: str(base / name) for name in names}
  shards = embedded_mnist_shards(base)

  def job(name, devices, workdir, *flags, processes=1, steps=STEPS, after=None):
    return Job(
      name,
      str(base / 'logs' / name),
      devices,
      [
        CONFIG,
        f'--workdir={workdir}',
        '--config.train.checkpoint_every=2',
        f'--config.train.num_steps={steps}',
        *flags,
      ],
      processes,
      after,
    )

  jobs = [  # The slowest first.
    job('hosts', 2, workdirs['hosts'], processes=2),
    job(
      'shard_hosts',
      2,
      workdirs['shard_hosts'],
      f'--config.data.source=arrayrecord:{shards}',
      processes=2,
    ),
    job(
      'ada_hosts',
      2,
      workdirs['ada_hosts'],
      '--config.augment.ada_target=0.05',  # Low: p moves up from the first steps.
      '--config.augment.ada_kimg=0.02',
      '--config.augment.ada_interval=1',
      processes=2,
    ),
    job('fsdp', 8, workdirs['fsdp'], "--config.mesh=(('data', 2), ('fsdp', 4))"),
    job('eight', 8, workdirs['eight']),
    job('four', 4, workdirs['four']),
    job('two', 2, workdirs['two']),
    job('one', 1, workdirs['one'], steps=RESUMED_STEPS),
    # The 8-device checkpoint continued on 1 device, in the same workdir.
    job('resumed', 1, workdirs['eight'], steps=RESUMED_STEPS, after='eight'),
    job(
      'hosts_sample',
      2,
      workdirs['hosts'],
      '--mode=sample',
      '--num_samples=5',
      processes=2,
      after='hosts',
    ),
  ]
  t0 = time.monotonic()
  run_all(jobs)
  print(f'multi-device runs took {time.monotonic() - t0:.0f}s')
  return {j.name: j for j in jobs}, workdirs


def need(runs, *names):
  """The named runs, failing the calling test with the reason if one of them failed."""
  jobs, _ = runs
  for name in names:
    jobs[name].check()
  return [jobs[name] for name in names]


def metrics(workdir: str) -> dict[int, dict]:
  """Training rows of metrics.jsonl by step; each step must appear once."""
  with open(os.path.join(workdir, 'metrics.jsonl')) as f:
    rows = [json.loads(line) for line in f]
  rows = [r for r in rows if 'd_loss' in r]
  steps = [r['step'] for r in rows]
  assert len(steps) == len(set(steps)), f'steps logged more than once: {steps}'
  return {r['step']: r for r in rows}


def load_state(workdir: str, step: int) -> dict[str, np.ndarray]:
  """The train state checkpointed at `step`, as {leaf path: numpy array}, whatever its layout."""
  path = os.path.join(workdir, 'checkpoints', str(step), 'state')
  with ocp.PyTreeCheckpointer() as checkpointer:
    tree = checkpointer.metadata(path).item_metadata.tree
    restore_args = jax.tree.map(lambda _: ocp.RestoreArgs(restore_type=np.ndarray), tree)
    state = checkpointer.restore(path, args=ocp.args.PyTreeRestore(restore_args=restore_args))
  return {
    jax.tree_util.keystr(p): np.asarray(x)
    for p, x in jax.tree_util.tree_flatten_with_path(state)[0]
  }


def assert_states_close(got: dict, want: dict) -> float:
  """Every leaf (parameters, optimizer moments, EMA, batch-norm statistics, step) within
  PARAM_TOL; returns the largest |got - want| / (atol + rtol |want|), i.e. how much of it used."""
  assert sorted(got) == sorted(want)
  used = 0.0
  for key in sorted(want):
    np.testing.assert_allclose(got[key], want[key], err_msg=key, **PARAM_TOL)
    gap = np.abs(got[key].astype(np.float64) - want[key])
    used = max(
      used,
      float(
        np.max(
          gap / (PARAM_TOL['atol'] + PARAM_TOL['rtol'] * np.abs(want[key].astype(np.float64))),
          initial=0.0,
        )
      ),
    )
  return used


def assert_losses_close(got: dict, want: dict, steps):
  for step in steps:
    assert step in got, f'step {step} not logged: {sorted(got)}'
    for key in LOSS_KEYS:
      np.testing.assert_allclose(
        got[step][key], want[step][key], err_msg=f'{key} at {step}', **LOSS_TOL
      )


def test_step_counter_notices_a_retrace_and_a_recompile():
  """The instrument the runs use can see what it is meant to catch."""
  from tests.multidevice_worker import StepCounter  # pylint: disable=g-import-not-at-top

  counter = StepCounter()
  try:
    f = jax.jit(counter.wrap(lambda state, batch, key: (state + batch.sum(), key)))
    for _ in range(3):
      f(1.0, np.ones(2, np.float32), 0)
    assert (counter.traces, counter.step_compiles) == (1, 1)
    f(1.0, np.ones(3, np.float32), 0)  # A new batch shape: traced and compiled again.
    assert (counter.traces, counter.step_compiles) == (2, 2)
  finally:
    counter.close()


@pytest.mark.parametrize('name', ['two', 'eight', 'fsdp'])
def test_same_losses_and_parameters_on_1_2_and_8_devices(runs, name):
  one, other = need(runs, 'one', name)
  _, workdirs = runs
  assert other.report()['device_count'] == {'two': 2, 'eight': 8, 'fsdp': 8}[name]
  assert one.report()['device_count'] == 1
  assert_losses_close(metrics(workdirs[name]), metrics(workdirs['one']), steps=(2, STEPS))
  used = assert_states_close(load_state(workdirs[name], STEPS), load_state(workdirs['one'], STEPS))
  print(f'{name}: the state differs from 1 device by {used:.1%} of the tolerance at most')


def test_the_tolerance_is_far_below_two_steps(runs):
  """Two steps of training move almost every parameter far outside the tolerance."""
  need(runs, 'one')
  _, workdirs = runs
  two, four = load_state(workdirs['one'], 2), load_state(workdirs['one'], STEPS)
  params = [k for k in four if k.startswith(("['g_params']", "['d_params']"))]
  moved = np.concatenate([np.abs(four[k] - two[k]).ravel() for k in params])
  outside = np.concatenate(
    [
      (np.abs(four[k] - two[k]) > PARAM_TOL['atol'] + PARAM_TOL['rtol'] * np.abs(two[k])).ravel()
      for k in params
    ]
  )
  assert np.median(moved) > 10 * PARAM_TOL['atol'], np.median(moved)
  assert outside.mean() > 0.8, outside.mean()
  with pytest.raises(AssertionError):
    assert_states_close(two, four)


def test_fsdp_splits_the_large_parameters(runs):
  (fsdp,) = need(runs, 'fsdp')
  layout = fsdp.report()['layout']
  split = {k: v for k, v in layout.items() if not v['replicated']}
  assert any(k.startswith('.g_params') for k in split), layout
  for leaf in split.values():
    assert 'fsdp' in leaf['spec']
    assert np.prod(leaf['shard_shape']) * 4 == np.prod(leaf['shape'])  # fsdp axis of size 4.
  # Everything small stays whole on every device.
  assert all(
    v['replicated'] for v in layout.values() if np.prod(v['shape']) < sharding.FSDP_MIN_SIZE
  )


def test_two_processes_train_like_one_process_with_four_devices(runs):
  four, hosts = need(runs, 'four', 'hosts')
  _, workdirs = runs
  for p in (0, 1):
    report = hosts.report(p)
    assert (report['process_index'], report['process_count'], report['device_count']) == (p, 2, 4)
  assert four.report()['device_count'] == 4
  assert_losses_close(metrics(workdirs['hosts']), metrics(workdirs['four']), steps=(2, STEPS))
  assert_states_close(load_state(workdirs['hosts'], STEPS), load_state(workdirs['four'], STEPS))
  assert_states_close(load_state(workdirs['four'], STEPS), load_state(workdirs['one'], STEPS))


def test_two_processes_reading_shards_train_like_one_process(runs):
  """The embedded digits prepared as ArrayRecord shards and read by two processes (each its own
  share) train as one process reading them from memory."""
  four, _ = need(runs, 'four', 'shard_hosts')
  _, workdirs = runs
  del four
  got, want = workdirs['shard_hosts'], workdirs['four']
  assert_losses_close(metrics(got), metrics(want), steps=(2, STEPS))
  assert_states_close(load_state(got, STEPS), load_state(want, STEPS))


def test_adas_p_is_the_same_on_both_processes(runs):
  (ada,) = need(runs, 'ada_hosts')
  reports = [ada.report(p) for p in range(2)]
  assert reports[0]['augment'] == reports[1]['augment'], reports
  p = np.frombuffer(bytes.fromhex(reports[0]['augment']['p']), np.float32)[0]
  logged = metrics(runs[1]['ada_hosts'])[STEPS]['augment_p']
  assert p == np.float32(logged) and p > 0, (p, logged)


def test_only_process_zero_logs_and_both_share_the_checkpoints(runs):
  (hosts,) = need(runs, 'hosts')
  _, workdirs = runs
  workdir = workdirs['hosts']
  train = load_config('mnist_dcgan').train
  assert sorted(metrics(workdir)) == [
    s for s in range(1, STEPS + 1) if s % train.log_every == 0 or s == STEPS
  ]
  assert len(os.listdir(os.path.join(workdir, 'tensorboard'))) == 1  # One writer, one file.
  evaluated = [s for s in range(1, STEPS + 1) if s % train.eval_every == 0 or s == STEPS]
  assert sorted(os.listdir(os.path.join(workdir, 'samples'))) == [
    f'step_{s:06d}.png' for s in evaluated
  ]
  assert sorted(os.listdir(os.path.join(workdir, 'checkpoints'))) == ['2', '4']
  state_dir = os.path.join(workdir, 'checkpoints', str(STEPS), 'state')
  assert {'ocdbt.process_0', 'ocdbt.process_1'} <= set(os.listdir(state_dir))  # Both wrote.
  assert 'step 4/4' in hosts.stdout(0)
  talk = [l for l in hosts.stdout(1).splitlines() if PROGRESS.match(l.strip())]
  assert not talk, f'process 1 printed progress: {talk}'


def test_eight_device_checkpoint_continues_on_one_device(runs):
  one, eight, resumed = need(runs, 'one', 'eight', 'resumed')
  _, workdirs = runs
  del one, eight
  assert f'resuming from the checkpoint at step {STEPS}' in resumed.stdout()
  assert resumed.report()['device_count'] == 1 and resumed.report()['step'] == RESUMED_STEPS
  assert_losses_close(
    metrics(workdirs['eight']), metrics(workdirs['one']), steps=(2, STEPS, RESUMED_STEPS)
  )
  assert_states_close(
    load_state(workdirs['eight'], RESUMED_STEPS), load_state(workdirs['one'], RESUMED_STEPS)
  )


@pytest.mark.parametrize(
  'name', ['one', 'two', 'four', 'eight', 'fsdp', 'hosts', 'shard_hosts', 'resumed']
)
def test_the_train_step_is_traced_and_compiled_once(runs, name):
  (job,) = need(runs, name)
  # Steps follow a checkpoint save (every 2 steps) and an evaluation, not just other steps.
  assert load_config('mnist_dcgan').train.eval_every < STEPS
  for p in range(job.processes):
    report = job.report(p)
    assert report['traces'] == 1, report
    assert report['step_compiles'] == 1, report


def test_sample_mode_with_two_processes(runs, tmp_path):
  (sample,) = need(runs, 'hosts_sample')
  _, workdirs = runs
  generated = os.path.join(workdirs['hosts'], 'generated')
  assert os.listdir(generated) == [f'step_{STEPS:06d}_seed_0_n5']
  with np.load(os.path.join(generated, os.listdir(generated)[0], 'samples.npz')) as f:
    images = f['images']
  assert images.shape == (5, 28, 28, 1)
  talk = [l for l in sample.stdout(1).splitlines() if PROGRESS.match(l.strip())]
  assert not talk, f'process 1 printed: {talk}'
  # The same checkpoint sampled here, on one device, gives the same images (to rounding).
  from gan_jax import main  # pylint: disable=g-import-not-at-top

  shutil.copytree(os.path.join(workdirs['hosts'], 'checkpoints'), tmp_path / 'checkpoints')
  out_dir = main.run(load_config('mnist_dcgan'), str(tmp_path), 'sample', num_samples=5)
  with np.load(os.path.join(out_dir, 'samples.npz')) as f:
    np.testing.assert_allclose(f['images'].astype(int), images.astype(int), atol=1)


def _device_count_after(count: int, xla_flags: str) -> int:
  """jax.device_count() in a fresh process that calls use_cpu_devices(count) first."""
  code = (
    'from gan_jax import hardware; import jax; '
    f'hardware.use_cpu_devices({count}); print(jax.device_count())'
  )
  env = dict(os.environ, JAX_PLATFORMS='cpu', XLA_FLAGS=xla_flags)
  env.pop('JAX_NUM_CPU_DEVICES', None)
  out = subprocess.run(
    [sys.executable, '-c', code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
  )
  assert out.returncode == 0, out.stderr[-2000:]
  return int(out.stdout.split()[-1])


def test_hardware_cpu_devices_splits_the_host():
  """hardware.cpu_devices sets the CPU device count before JAX starts; 0 leaves JAX's default
  (one), and an explicit XLA_FLAGS device count wins over the hardware file."""
  assert _device_count_after(3, '') == 3
  assert _device_count_after(0, '') == 1
  assert _device_count_after(3, '--xla_force_host_platform_device_count=2') == 2


def test_hardware_cpu_devices_after_start_warns_and_refuses_bad_counts(caplog):
  before = jax.device_count()  # The backend is running in this process now.
  hardware.use_cpu_devices(before + 1)
  assert jax.device_count() == before
  assert 'ignored' in caplog.text
  bad = hardware.default_config()
  bad.cpu_devices = -1
  with pytest.raises(UserError, match='cpu_devices must be an integer >= 0'):
    config_checks.check_hardware(bad)
