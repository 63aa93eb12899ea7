"""The training loop shared by every experiment: mesh, data, checkpoints, logs, signals.

An experiment (GAN or classifier) supplies `init(rng)`, a pure
`train_step(state, batch, key) -> (state, metrics)`, a host-side
`pictures(state, step) -> {name: image}`, and optionally `step_options(step) -> dict` of
static keyword arguments for the step (one compiled step per distinct set, e.g. with and
without lazy penalties). The evaluators the config names (gan_jax/evaluators.py) judge it.
This loop compiles the step over the mesh and does everything else the same way for all.

Training time (`train_time_s` in metrics.jsonl, the x axis of curves.png, what snapshots and
the time budget count) runs from process start, imports and compilation included, less the
time spent evaluating, drawing and saving snapshots, and continues across resumes.
"""

import contextlib
import dataclasses
import functools
import json
import os
import signal
import tempfile
import time

import jax
from jax.experimental import multihost_utils
import jax.numpy as jnp
import numpy as np
import psutil

from gan_jax import checkpoint
from gan_jax import data
from gan_jax import evaluators
from gan_jax import experiment as experiment_lib
from gan_jax import input_pipeline
from gan_jax import pictures
from gan_jax import plots
from gan_jax import sharding
from gan_jax import writers
from gan_jax.errors import UserError


class NonFiniteError(UserError):
  """A loss or gradient became NaN/Inf; the last good checkpoint is kept."""


def prepare_workdir(workdir: str) -> str:
  """Creates the workdir if needed and proves it writable, before any work is done."""
  workdir = os.path.abspath(workdir)
  try:
    os.makedirs(workdir, exist_ok=True)
  except OSError as e:
    raise UserError(f'cannot create workdir {workdir!r}: {e.strerror}') from e
  if not os.path.isdir(workdir):
    raise UserError(f'workdir {workdir!r} is not a folder')
  try:  # os.access says yes to root on a read-only mount; a real write tells the truth.
    with tempfile.TemporaryFile(dir=workdir):
      pass
  except OSError as e:
    raise UserError(f'workdir {workdir!r} is not writable: {e.strerror}') from e
  return workdir


def write_config(config, workdir: str, resume_step: int | None) -> None:
  """`config.json` records the config a run started with; a resume that changes it adds a
  `config.resumed_at_step_N.json` beside it instead of overwriting the original."""
  text = config.to_json_best_effort(indent=2, sort_keys=True) + '\n'
  path = os.path.join(workdir, 'config.json')
  if os.path.exists(path):
    with open(path) as f:
      if f.read() == text:
        return
    path = os.path.join(workdir, f'config.resumed_at_step_{resume_step or 0}.json')
  with open(path, 'w') as f:
    f.write(text)


@contextlib.contextmanager
def stop_requests():
  """SIGTERM (preemption) and SIGINT set a flag that the loop checks after each step."""
  requested = {'signal': None}

  def handler(signum, frame):
    del frame
    requested['signal'] = signal.Signals(signum).name

  previous = {s: signal.signal(s, handler) for s in (signal.SIGTERM, signal.SIGINT)}
  try:
    yield requested
  finally:
    for s, h in previous.items():
      signal.signal(s, h)


def stop_agreed(stop: dict, step: int, every: int) -> bool:
  """Whether to stop after `step`. One process acts on its own signal at once; several
  processes compare flags every `every` steps, so all stop (and save, a collective) together."""
  if jax.process_count() == 1:
    return stop['signal'] is not None
  if step % every:
    return False
  flags = multihost_utils.process_allgather(np.int32(stop['signal'] is not None))
  return bool(np.any(flags))


def process_start_time() -> float:
  """When this Python process started (Unix time): a time budget counts imports, data,
  compilation and training, as a user waiting for the command experiences them."""
  return psutil.Process().create_time()


def skipping_nonfinite(train_step):
  """Wraps a train step so a step with any non-finite metric (loss, gradient norm) leaves the
  state as it was, but for the step counter, and reports `skipped` = 1."""

  def step(state, batch, key):
    new_state, metrics = train_step(state, batch, key)
    finite = jnp.all(jnp.stack([jnp.all(jnp.isfinite(v)) for v in metrics.values()]))
    kept = jax.tree.map(lambda new, old: jnp.where(finite, new, old), new_state, state)
    return kept.replace(step=new_state.step), {**metrics, 'skipped': 1.0 - finite}

  return step


def first_nonfinite(history: list[tuple[int, dict]]) -> tuple[int, str] | None:
  """The first step with non-finite metrics, and their names ('d_loss, g_loss, ...')."""
  for step, metrics in history:
    bad = [name for name, value in metrics.items() if not np.all(np.isfinite(value))]
    if bad:  # Losses first: they are what a reader looks for.
      return step, ', '.join(sorted(bad, key=lambda name: ('loss' not in name, name)))
  return None


TRAIN_TIME_KEY = 'gan_jax_train_time_s'  # Saved beside the pipeline position in checkpoints.


class TrainClock:
  """Seconds of training: this process's time since it started, less what `paused()` spans
  (evaluations, drawings, snapshots), plus what earlier processes of the run trained."""

  def __init__(self, resumed_seconds: float = 0.0):
    self.resumed, self.started, self._paused = resumed_seconds, process_start_time(), 0.0

  def this_process(self) -> float:
    return time.time() - self.started - self._paused

  def seconds(self) -> float:
    return self.resumed + self.this_process()

  @contextlib.contextmanager
  def paused(self):
    start = time.monotonic()
    try:
      yield
    finally:
      self._paused += time.monotonic() - start


class CompiledSteps:
  """The experiment's step jitted over the mesh: one compiled function per distinct set of
  static options (`experiment.step_options(step)`, e.g. with and without lazy penalties)."""

  def __init__(self, experiment, state_shardings, batch_shardings, replicated, skip_bad: bool):
    self.experiment, self.skip_bad = experiment, skip_bad
    self.shardings = (state_shardings, batch_shardings, replicated)
    self.options = getattr(experiment, 'step_options', lambda step: {})
    self.compiled = {}

  def at(self, step: int):
    """(the jitted step for `step`, whether it is new: its first call compiles)."""
    options = self.options(step)
    name = tuple(sorted(options.items()))
    fresh = name not in self.compiled
    if fresh:
      fn = functools.partial(self.experiment.train_step, **options)
      self.compiled[name] = jax.jit(
        skipping_nonfinite(fn) if self.skip_bad else fn,
        in_shardings=self.shardings,
        out_shardings=self.shardings[::2],
        donate_argnums=0,
      )
    return self.compiled[name], fresh


class MetricLog:
  """The device metrics of the steps since the last log, their checks and their rows."""

  def __init__(self, writer: writers.MetricWriter, skip_bad: bool):
    self.writer, self.skip_bad = writer, skip_bad
    self.history: list[tuple[int, dict]] = []
    self.last: dict = {}  # The latest logged means.

  def check_finite(self, last_saved) -> list:
    """Stops on a non-finite value among the steps since the last log; returns them fetched."""
    fetched = jax.device_get(self.history)
    if self.skip_bad:  # Skipped steps changed nothing; they are counted, not averaged.
      fetched = [(i, m) for i, m in fetched if not m['skipped']]
    bad = first_nonfinite(fetched)
    if bad:
      kept = f'step {last_saved}' if last_saved is not None else 'none yet'
      raise NonFiniteError(
        f'non-finite {bad[1]} at step {bad[0]}; stopping. The last good '
        f'checkpoint is kept ({kept}) and nothing after it is saved'
      )
    return fetched

  def write(self, step: int, last_saved, extra: dict) -> None:
    """Logs the means of the metrics since the last log, with `extra` (rate, time)."""
    interval, fetched = len(self.history), self.check_finite(last_saved)
    self.history = []
    if fetched:
      self.last = {k: float(np.mean([m[k] for _, m in fetched])) for k in fetched[0][1]}
    if interval:
      skipped = {'skipped': float(interval - len(fetched))} if self.skip_bad else {}
      self.writer.scalars(step, {**self.last, **skipped, **extra})

  def latest(self) -> dict:
    return jax.device_get(self.history[-1][1]) if self.history else self.last


class Saver:
  """Checkpoints (the latest few, for resuming) and snapshots (every `snapshot_every_secs` of
  training time, all kept, for judging quality against time) of the state, the pipeline
  position and the training time."""

  def __init__(self, workdir: str, train_config, log):
    self.workdir, self.log = workdir, log
    self.background = train_config.get('async_checkpointing', False)
    self.ckpt = checkpoint.Checkpointer(
      os.path.join(workdir, 'checkpoints'),
      max_to_keep=train_config.checkpoints_to_keep,
      background=self.background,
    )
    self.snapshot_every = train_config.get('snapshot_every_secs', 0.0)
    self.snapshots = None
    self.snapshots_taken = None  # Counted from the folder at the first check (resumes too).
    self.last_saved = None

  def restore(self, abstract_with_shardings):
    """(step, state, pipeline position, training seconds) of the newest readable checkpoint,
    or None; an unreadable one is moved aside (kept), as this run will save that step again."""
    restored = self.ckpt.restore(abstract_with_shardings, self.log, set_aside_unreadable=True)
    if not restored:
      return None
    step, state, position = restored
    self.last_saved = step
    self.log(f'resuming from the checkpoint at step {step} in {self.ckpt.directory}')
    return step, state, position, float(position.pop(TRAIN_TIME_KEY, 0.0))

  def save(self, step: int, state, position: dict, seconds: float, snapshot: bool = False):
    target = self._snapshots() if snapshot else self.ckpt
    try:
      target.save(step, state, {**position, TRAIN_TIME_KEY: seconds})
    except checkpoint.SaveError as e:  # E.g. a full disk: the half-written step is never committed.
      raise self._save_error(e, snapshot) from e
    if snapshot:
      self.snapshots_taken += 1
      if jax.process_index() == 0:
        with open(os.path.join(target.directory, 'index.jsonl'), 'a') as f:
          f.write(json.dumps({'step': int(step), 'train_time_s': round(seconds, 3)}) + '\n')
    else:
      self.last_saved = step

  def snapshot_due(self, seconds: float, step: int, every_steps: int) -> bool:
    """Whether a snapshot is due at `seconds` of training (agreed by all processes)."""
    if not self.snapshot_every:
      return False
    if self.snapshots_taken is None:
      self.snapshots_taken = len(self._snapshots().all_steps())
    due = seconds >= self.snapshot_every * (1 + self.snapshots_taken)
    if jax.process_count() == 1:
      return due
    if step % every_steps:
      return False
    return bool(np.any(multihost_utils.process_allgather(np.int32(due))))

  def _save_error(self, error: checkpoint.SaveError, snapshot: bool) -> UserError:
    """One line: which step could not be saved (a background save names its own), why, and
    the newest checkpoint that is complete."""
    steps = [s for s in self.ckpt.all_steps() if s != error.step]
    kept = f'step {steps[-1]}' if steps else 'none'
    what = 'snapshot' if snapshot else 'checkpoint'
    return UserError(
      f'could not save the {what} at step {error.step}: {error.strerror or error}; the '
      f'previous checkpoint ({kept}) is intact'
    )

  def _snapshots(self) -> checkpoint.Checkpointer:
    if self.snapshots is None:
      self.snapshots = checkpoint.Checkpointer(
        os.path.join(self.workdir, 'snapshots'), max_to_keep=None, background=self.background
      )
    return self.snapshots

  def close(self, failing: bool = False) -> None:
    """Waits for background saves; a failed one is a UserError, as at the next save. While
    the run is `failing` on another error, a failed save is logged instead, so that error is
    the one reported (and the last good checkpoint is still committed before it propagates)."""
    for ckpt, snapshot in ((self.ckpt, False), (self.snapshots, True)):
      if ckpt is not None:
        try:
          ckpt.close()
        except checkpoint.SaveError as e:
          if not failing:
            raise self._save_error(e, snapshot) from e
          self.log(f'also: {self._save_error(e, snapshot)}')


@dataclasses.dataclass
class Loop:
  """What the steps of one training process share."""

  config: object
  experiment: object
  scheduled: list
  workdir: str
  log: object
  saver: Saver
  metrics: MetricLog
  progress: writers.Progress
  clock: TrainClock
  is_main: bool
  last_eval: str = ''  # The latest evaluation's headline, for the closing line.
  drawn_at: int = -1  # The step of the latest curves.png.

  def evaluate(self, state, step: int, last: bool) -> None:
    """The evaluators due at `step` (each on its own schedule), the experiment's pictures
    every `train.eval_every` steps, and curves.png after either; off the training clock."""
    eval_every = self.config.train.eval_every
    draw = step % eval_every == 0 or last
    if not draw and not any(s.due(step, eval_every, last) for s in self.scheduled):
      return
    self.metrics.check_finite(self.saver.last_saved)  # Never judge a state gone non-finite.
    seconds = self.clock.seconds()  # The state's training time, before judging it.
    with self.clock.paused():
      scalars, summary = evaluators.run_due(self.scheduled, state, step, eval_every, last)
      if scalars:
        self.metrics.writer.scalars(step, {**scalars, 'train_time_s': seconds})
        self.log(f'eval at step {step}: {summary}')
        self.last_eval = summary
      for name, picture in (self.experiment.pictures(state, step) if draw else {}).items():
        if self.is_main:
          pictures.save_png(os.path.join(self.workdir, name, f'step_{step:06d}.png'), picture)
        self.metrics.writer.image(step, name, picture)
      self.draw_curves(step)

  def draw_curves(self, step: int) -> None:
    if self.is_main and self.drawn_at != step:
      plots.write_curves(self.workdir)
    self.drawn_at = step

  def after_step(self, state, step: int, batches, stop) -> bool:
    """Logs, progress, evaluation and saves after `step`; whether to stop now."""
    train, total = self.config.train, self.config.train.num_steps
    last = step == total
    if step % train.log_every == 0 or last:
      extra = {'steps_per_sec': self.progress.steps_per_sec(step)}
      self.metrics.write(
        step, self.saver.last_saved, {**extra, 'train_time_s': self.clock.seconds()}
      )
    budget = train.get('time_budget_s', 0.0)
    if self.progress.due() or last:
      latest = self.metrics.latest()
      keys = self.experiment.progress_keys
      left = budget - self.clock.this_process() if budget else None
      shown = {k: float(latest[k]) for k in keys if k in latest}
      self.progress.show(step, shown, force=True, seconds_left=left)
    self.evaluate(state, step, last)
    if step % train.checkpoint_every == 0 or last:
      self.save(state, step, batches)
    if self.saver.snapshot_due(self.clock.seconds(), step, train.log_every):
      with self.clock.paused():
        self.metrics.check_finite(self.saver.last_saved)
        self.saver.save(step, state, batches.get_state(), self.clock.seconds(), snapshot=True)
    if budget and stop['signal'] is None and self.clock.this_process() >= budget:
      stop['signal'] = f'the time budget ({budget:g} s)'
    if not stop_agreed(stop, step, train.log_every):
      return False
    if self.saver.last_saved != step:
      self.save(state, step, batches)
    signal_name = stop['signal'] or 'a stop signal on another process'
    self.log(f'stopping on {signal_name}: saved the checkpoint at step {step}; exiting')
    return True

  def finish(self, step: int) -> None:
    """The last curves.png and the closing lines: final losses, evaluation, artefacts."""
    self.draw_curves(step)
    final = {k: v for k, v in self.metrics.last.items() if k in self.experiment.progress_keys}
    summary = '  '.join(f'{k} {v:.4f}' for k, v in final.items())
    self.log(f'finished at step {step}: {"  ".join(x for x in (summary, self.last_eval) if x)}')
    path = functools.partial(os.path.join, self.workdir)
    grids = f', sample grids {path("samples")}' if os.path.isdir(path('samples')) else ''
    self.log(
      f'  checkpoints {path("checkpoints")}, metrics {path("metrics.jsonl")}, '
      f'curves {path("curves.png")}{grids}'
    )

  def save(self, state, step: int, batches) -> None:
    self.metrics.check_finite(self.saver.last_saved)  # Never checkpoint a non-finite state.
    self.saver.save(step, state, batches.get_state(), self.clock.seconds())


def train_and_evaluate(config, workdir: str, make_experiment=None, hardware=None):
  """Trains the experiment `config` describes in `workdir`, resuming from its checkpoints;
  `hardware` (gan_jax/hardware.py) sets how convolutions are sliced.

  Returns the final train state (a pytree of jax.Arrays).
  """
  is_main = jax.process_index() == 0
  # Everything that can be wrong with the config, the data or a judge fails here, before the
  # workdir is touched, so a bad command leaves the workdir exactly as it was.
  run, experiment, abstract, state_shardings = experiment_lib.setup(
    config, workdir, make_experiment, config.train.batch_size, hardware
  )
  scheduled = evaluators.build(config, experiment)
  workdir, mesh, log = run.workdir, run.mesh, run.log
  prepare_workdir(workdir)
  saver = Saver(workdir, config.train, log)
  restored = saver.restore(checkpoint.abstract_with_sharding(abstract, state_shardings))
  if restored:
    start, state, data_position, seconds = restored
  else:
    start, data_position, seconds = 0, None, 0.0
    state = jax.jit(experiment.init, out_shardings=state_shardings)(jax.random.key(config.seed))
  evaluators.resolve_counts(config)
  if is_main:
    write_config(config, workdir, start)
    if hasattr(experiment, 'save_files'):  # What the experiment keeps beside its checkpoints.
      experiment.save_files(workdir)
  total = config.train.num_steps
  if start >= total:
    log(f'nothing to do: the checkpoint is at step {start}, config.train.num_steps is {total}')
    saver.close()
    return state

  ds = input_pipeline.make_dataset(
    run.source,
    seed=config.seed,
    global_batch_size=config.train.batch_size,
    process_index=jax.process_index(),
    process_count=jax.process_count(),
  )
  batches = input_pipeline.iterate(ds, data_position)
  batch_shardings = sharding.batch_sharding(mesh)
  steps = CompiledSteps(
    experiment,
    state_shardings,
    batch_shardings,
    sharding.replicated(mesh),
    config.train.skip_nonfinite,
  )
  # Rows after `start` belong to a lost timeline (a kill before the first checkpoint included).
  writer = writers.MetricWriter(workdir, enabled=is_main, resume_step=start)
  progress = writers.Progress(total, start, config.train.progress_every_secs, enabled=is_main)
  loop = Loop(
    config,
    experiment,
    scheduled,
    workdir,
    log,
    saver,
    MetricLog(writer, config.train.skip_nonfinite),
    progress,
    TrainClock(seconds),
    is_main,
  )
  log(
    f'training {config.experiment} on {data.describe(run.source)}, {jax.device_count()} '
    f'devices, mesh {dict(mesh.shape)}, conv batch slices {run.conv_batch_slices}, '
    f'steps {start}..{total}'
  )
  try:
    state, step = run_steps(loop, state, start, steps, batches, batch_shardings)
  except BaseException:  # A background save still writing is finished before the error leaves.
    saver.close(failing=True)
    raise
  saver.close()
  writer.close()
  loop.finish(step)
  return state


def run_steps(loop: Loop, state, start: int, steps: CompiledSteps, batches, batch_shardings):
  """The steps from `start` to the end, a stop signal or the time budget: (state, last step)."""
  key = jax.random.key(loop.config.seed)
  sync_each_step = sharding.must_wait_each_step()
  step = start
  with stop_requests() as stop:
    t_step = time.monotonic()
    while step < loop.config.train.num_steps:
      batch = sharding.put_batch(next(batches), batch_shardings)
      step_fn, fresh = steps.at(step)
      state, metrics = step_fn(state, batch, key)
      step += 1
      if sync_each_step or fresh:
        jax.block_until_ready(metrics)
      if fresh:  # The rate and ETA count training, not compilation.
        which = 'first step' if step == start + 1 else f'step {step}'
        loop.log(f'{which} compiled and ran in {time.monotonic() - t_step:.1f}s')
        loop.progress.restart(step)
      t_step = time.monotonic()
      loop.metrics.history.append((step, metrics))
      if loop.after_step(state, step, batches, stop):
        break
  return state, step
