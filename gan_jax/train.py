"""The training loop shared by every experiment: mesh, data, checkpoints, logs, signals.

An experiment (GAN or classifier) supplies `init(rng)`, a pure
`train_step(state, batch, key) -> (state, metrics)` and a host-side
`evaluate(state, step) -> (scalars, images)`, and optionally `step_options(step) -> dict` of
static keyword arguments for the step (one compiled step per distinct set, e.g. with and
without lazy penalties); this loop compiles the step over the mesh and does everything else
the same way for all of them.
"""

import contextlib
import functools
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
from gan_jax import evaluate
from gan_jax import experiment as experiment_lib
from gan_jax import images as image_lib
from gan_jax import input_pipeline
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


def train_and_evaluate(config, workdir: str, make_experiment=None):
  """Trains the experiment `config` describes in `workdir`, resuming from its checkpoints.

  Returns the final train state (a pytree of jax.Arrays).
  """
  is_main = jax.process_index() == 0
  # Everything that can be wrong with the config or data fails here, before the workdir is
  # touched, so a bad command leaves the workdir exactly as it was.
  judge = None  # The classifier that scores a GAN's samples at each evaluation, if named.
  if config.experiment == 'gan' and config.eval.classifier_workdir:
    judge = evaluate.load_judge(config.eval.classifier_workdir)
  run, experiment, abstract, state_shardings = experiment_lib.setup(
    config, workdir, make_experiment, config.train.batch_size, judge
  )
  workdir, mesh, source, log = run.workdir, run.mesh, run.source, run.log
  prepare_workdir(workdir)

  key = jax.random.key(config.seed)
  batch_shardings = sharding.batch_sharding(mesh)
  replicated = sharding.replicated(mesh)

  ckpt = checkpoint.Checkpointer(
    os.path.join(workdir, 'checkpoints'), max_to_keep=config.train.checkpoints_to_keep
  )
  # An unreadable checkpoint is moved aside (kept): this run will save its step again.
  restored = ckpt.restore(
    checkpoint.abstract_with_sharding(abstract, state_shardings), log, set_aside_unreadable=True
  )
  if restored:
    start, state, data_position = restored
    log(f'resuming from the checkpoint at step {start} in {ckpt.directory}')
  else:
    start, data_position = 0, None
    state = jax.jit(experiment.init, out_shardings=state_shardings)(key)
  if is_main:
    write_config(config, workdir, start)

  total = config.train.num_steps
  if start >= total:
    log(f'nothing to do: the checkpoint is at step {start}, config.train.num_steps is {total}')
    ckpt.close()
    return state

  ds = input_pipeline.make_dataset(
    source,
    seed=config.seed,
    global_batch_size=config.train.batch_size,
    process_index=jax.process_index(),
    process_count=jax.process_count(),
  )
  batches = input_pipeline.iterate(ds, data_position)
  skip_bad = config.train.skip_nonfinite
  # An experiment may compile several steps (static options chosen by the step number on the
  # host, e.g. lazy penalties); one jitted function per distinct set of options.
  step_options = getattr(experiment, 'step_options', lambda step: {})
  compiled = {}

  def step_fn_at(step):
    """(the jitted step for `step`, whether it is new: its first call compiles)."""
    options = step_options(step)
    name = tuple(sorted(options.items()))
    fresh = name not in compiled
    if fresh:
      fn = functools.partial(experiment.train_step, **options)
      compiled[name] = jax.jit(
        skipping_nonfinite(fn) if skip_bad else fn,
        in_shardings=(state_shardings, batch_shardings, replicated),
        out_shardings=(state_shardings, replicated),
        donate_argnums=0,
      )
    return compiled[name], fresh

  sync_each_step = sharding.must_wait_each_step()

  # Rows after `start` belong to a lost timeline (a kill before the first checkpoint included).
  writer = writers.MetricWriter(workdir, enabled=is_main, resume_step=start)
  progress = writers.Progress(total, start, config.train.progress_every_secs, enabled=is_main)
  log(
    f'training {config.experiment} on {data.describe(source)}, {jax.device_count()} devices, '
    f'mesh {dict(mesh.shape)}, steps {start}..{total}'
  )
  history: list[tuple[int, dict]] = []  # Device metrics of the steps since the last log.
  last_saved, last_metrics, last_eval = start if restored else None, {}, {}

  def check_finite():
    """Stops on a non-finite value among the steps since the last log; returns them fetched."""
    fetched = jax.device_get(history)
    if skip_bad:  # Skipped steps changed nothing; they are counted, not averaged.
      fetched = [(i, m) for i, m in fetched if not m['skipped']]
    bad = first_nonfinite(fetched)
    if bad:
      kept = f'step {last_saved}' if last_saved is not None else 'none yet'
      raise NonFiniteError(
        f'non-finite {bad[1]} at step {bad[0]}; stopping. The last good '
        f'checkpoint is kept ({kept}) and nothing after it is saved'
      )
    return fetched

  def log_metrics(step):
    """Logs the mean of the metrics since the last log."""
    nonlocal history, last_metrics
    interval = len(history)
    fetched = check_finite()
    history = []
    if fetched:
      last_metrics = {k: float(np.mean([m[k] for _, m in fetched])) for k in fetched[0][1]}
    if interval:
      extra = {'skipped': float(interval - len(fetched))} if skip_bad else {}
      writer.scalars(step, {**last_metrics, **extra, 'steps_per_sec': progress.steps_per_sec(step)})

  def save(step):
    nonlocal last_saved
    check_finite()  # Never checkpoint a state whose losses went non-finite.
    try:
      ckpt.save(step, state, batches.get_state())
    except OSError as e:  # E.g. a full disk: the half-written step is never committed.
      kept = f'step {last_saved}' if last_saved is not None else 'none'
      raise UserError(
        f'could not save the checkpoint at step {step}: {e.strerror or e}; the '
        f'previous checkpoint ({kept}) is intact'
      ) from e
    last_saved = step

  # train.time_budget_s > 0: stop (and save) once the process has run that long.
  budget = config.train.get('time_budget_s', 0.0)
  deadline = process_start_time() + budget  # Read once: the loop only compares clocks.
  step = start
  with stop_requests() as stop:
    t_step = time.monotonic()
    while step < total:
      batch = sharding.put_batch(next(batches), batch_shardings)
      step_fn, fresh = step_fn_at(step)
      state, metrics = step_fn(state, batch, key)
      step += 1
      if sync_each_step or fresh:
        jax.block_until_ready(metrics)
      if fresh:  # The rate and ETA count training, not compilation.
        log(
          f'{"first step" if step == start + 1 else f"step {step}"} compiled and ran in '
          f'{time.monotonic() - t_step:.1f}s'
        )
        progress.restart(step)
      t_step = time.monotonic()
      history.append((step, metrics))
      if step % config.train.log_every == 0 or step == total:
        log_metrics(step)
      if progress.due() or step == total:
        latest = jax.device_get(history[-1][1]) if history else last_metrics
        progress.show(
          step, {k: float(latest[k]) for k in experiment.progress_keys if k in latest}, force=True
        )
      if step % config.train.eval_every == 0 or step == total:
        check_finite()  # Never evaluate (or publish samples of) a state gone non-finite.
        scalars, pictures = experiment.evaluate(state, step)
        if scalars:
          writer.scalars(step, scalars)
          shown = [
            k
            for k in (
              'fid',
              'precision',
              'recall',
              'class_accuracy',
              'modes',
              'mode_kl',
              'test_accuracy',
            )
            if k in scalars
          ]
          log(f'eval at step {step}: ' + '  '.join(f'{k} {scalars[k]:.4f}' for k in shown))
          last_eval = {k: scalars[k] for k in shown}
        for name, picture in pictures.items():
          if is_main:
            image_lib.save_png(os.path.join(workdir, name, f'step_{step:06d}.png'), picture)
          writer.image(step, name, picture)
      if step % config.train.checkpoint_every == 0 or step == total:
        save(step)
      if budget and stop['signal'] is None and time.time() >= deadline:
        stop['signal'] = f'the time budget ({budget:g} s)'
      if stop_agreed(stop, step, config.train.log_every):
        if last_saved != step:
          save(step)
        log(
          f'stopping on {stop["signal"] or "a stop signal on another process"}: saved the '
          f'checkpoint at step {step}; exiting'
        )
        break
  ckpt.wait()
  ckpt.close()
  writer.close()
  final = {k: v for k, v in last_metrics.items() if k in experiment.progress_keys}
  log(
    f'finished at step {step}: '
    + '  '.join(f'{k} {v:.4f}' for k, v in {**final, **last_eval}.items())
  )
  log(
    f'  checkpoints {os.path.join(workdir, "checkpoints")}, metrics '
    f'{os.path.join(workdir, "metrics.jsonl")}'
    + (
      f', sample grids {os.path.join(workdir, "samples")}'
      if os.path.isdir(os.path.join(workdir, 'samples'))
      else ''
    )
  )
  return state
