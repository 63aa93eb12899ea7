"""Orbax checkpoints of the whole train state plus the input pipeline's position.

Orbax writes each step into a temporary folder and renames it when complete, so a kill during
a save never leaves a half-written checkpoint that looks finished. A checkpoint that cannot be
read (truncated, corrupted) is skipped for the previous one, loudly; a training run moves it
aside to `STEP.unreadable` (kept, never deleted) so it can save that step again. A checkpoint
whose arrays do not match the model in the config is refused: the workdir belongs to another
experiment. A state class may name fields added after checkpoints were written
(`ZERO_IF_ABSENT`, e.g. GANState's augmentation state): a checkpoint without them restores them
as zeros, their initial value. A save that cannot complete (e.g. a full disk, checked before
writing) raises SaveError (an OSError naming the step), removes its half-written folder and
leaves the previous checkpoints as they were.

With `background=True` a save copies the arrays to host memory and returns; orbax writes them
on a thread while training goes on (the next step may reuse the donated device buffers: the
copy is taken first). A failure of that write is raised by the next save, `wait()` or `close()`
(at the latest when the run ends), as the same SaveError naming the step that failed.
No pickle anywhere: arrays go through tensorstore, the pipeline position through JSON.
"""

import dataclasses
import errno
import os
import re
import shutil

import jax
from jax.experimental import multihost_utils
import jax.numpy as jnp
import orbax.checkpoint as ocp

from gan_jax.errors import UserError


class SaveError(OSError):
  """A checkpoint that could not be written: `step` names it, `strerror` says why."""

  def __init__(self, step: int, code: int | None, reason: str):
    super().__init__(code, reason)
    self.step = step


class Checkpointer:
  """Saves and restores `(state, data_position)` pairs under `directory`; `background` saves
  write on a thread (see the module docstring)."""

  def __init__(self, directory: str, max_to_keep: int = 3, background: bool = False):
    self.directory = os.path.abspath(directory)
    self._manager = ocp.CheckpointManager(
      self.directory,
      options=ocp.CheckpointManagerOptions(
        max_to_keep=max_to_keep, create=True, enable_async_checkpointing=background
      ),
      item_handlers={'state': ocp.StandardCheckpointHandler(), 'data': ocp.JsonCheckpointHandler()},
    )
    self._writing = None  # The step a background save is writing.

  def all_steps(self) -> list[int]:
    return sorted(self._manager.all_steps())

  def save(self, step: int, state, data_position: dict) -> None:
    """Saves (in the background, if so made); SaveError, the half-written step removed, if
    this save or the background one before it cannot complete."""
    self.wait()
    needed = sum(x.nbytes for x in jax.tree.leaves(state))
    free = _free_bytes(self.directory)
    if free < needed:  # Fail before writing rather than midway through tensorstore's writes.
      raise SaveError(
        step,
        errno.ENOSPC,
        f'{os.strerror(errno.ENOSPC)}: the checkpoint needs about '
        f'{needed / 2**20:.1f} MiB, {self.directory} has {free / 2**20:.1f} MiB free',
      )
    try:
      self._manager.save(
        step,
        args=ocp.args.Composite(
          state=ocp.args.StandardSave(state), data=ocp.args.JsonSave(data_position)
        ),
        force=True,
      )
    except Exception as e:  # pylint: disable=broad-except
      self._raise_failed(step, e)
    self._writing = step

  def wait(self) -> None:
    """Returns once no save is being written; SaveError if the one being written failed."""
    step, self._writing = self._writing, None
    try:
      self._manager.wait_until_finished()
    except Exception as e:  # pylint: disable=broad-except
      self._raise_failed(step, e)

  def _raise_failed(self, step, error: BaseException):
    """Removes `step`'s half-written folder; raises SaveError if `error` is an I/O failure (an
    OSError in its chain, or tensorstore's os_error_code), else `error` itself."""
    if step is not None and jax.process_index() == 0:  # Orbax would only remove it on a retry.
      shutil.rmtree(
        os.path.join(self.directory, f'{step}.orbax-checkpoint-tmp'), ignore_errors=True
      )
    cause = error
    while cause is not None and not isinstance(cause, OSError):
      cause = cause.__cause__ or cause.__context__
    if cause is not None:
      raise SaveError(step, cause.errno, cause.strerror or str(cause)) from error
    # Tensorstore reports I/O failures as ValueError("... [os_error_code='28']").
    code = re.search(r"os_error_code='?(\d+)", str(error))
    if code:
      raise SaveError(step, int(code.group(1)), os.strerror(int(code.group(1)))) from error
    raise error

  def _absent(self, step: int, abstract_state) -> dict:
    """The fields of `abstract_state` that may be absent from the checkpoint and are: not saved,
    or saved empty (as a state without them saves them) where arrays are wanted; name -> the
    empty value saved, or None where the name is not saved at all."""
    optional = getattr(type(abstract_state), 'ZERO_IF_ABSENT', ())
    saved = self._manager.item_metadata(step)['state'].tree
    if not isinstance(saved, dict):
      return {}
    return {
      name: saved.get(name)
      for name in optional
      if name not in saved
      or (_shapes_by_path(getattr(abstract_state, name)) and not _shapes_by_path(saved[name]))
    }

  def _check_matches(self, step: int, abstract_state, absent=()) -> None:
    saved = _shapes_by_path(self._manager.item_metadata(step)['state'].tree)
    wanted = ocp.tree.serialize_tree(abstract_state, keep_empty_nodes=True)
    wanted = _shapes_by_path({k: v for k, v in wanted.items() if k not in absent})
    if saved != wanted:
      differing = sorted(set(saved.items()) ^ set(wanted.items()))[0][0]
      raise UserError(
        f'the checkpoint at step {step} in {self.directory} holds a different model '
        f'({differing} differs from this config); refusing to overwrite it: use a new --workdir'
      )

  def restore(
    self, abstract_state, log=print, set_aside_unreadable: bool = False, step: int | None = None
  ):
    """The newest readable checkpoint (only the one at `step`, when given) as
    `(step, state, data_position)`, or None if none.

    `set_aside_unreadable` (for training, which will save those steps again): an unreadable
    checkpoint is renamed to `STEP.unreadable`, which orbax ignores, instead of left in place.
    """
    steps = self.all_steps() if step is None else [s for s in self.all_steps() if s == step]
    for i, step in reversed(list(enumerate(steps))):
      try:
        absent = self._absent(step, abstract_state)
        self._check_matches(step, abstract_state, absent)
        target = _without(abstract_state, absent)
        restored = self._manager.restore(
          step,
          args=ocp.args.Composite(
            state=ocp.args.StandardRestore(target), data=ocp.args.JsonRestore()
          ),
        )
      except UserError:
        raise
      except Exception as e:  # Orbax/tensorstore raise many types for unreadable data.
        reason = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
        older = f'falling back to step {steps[i - 1]}' if i else 'no older checkpoint left'
        moved = f'; moved it to {self._set_aside(step)}' if set_aside_unreadable else ''
        log(f'checkpoint at step {step} is unreadable ({reason}){moved}; {older}')
        continue
      state = _with_zeros(abstract_state, restored['state'], absent)
      return step, state, dict(restored['data'])
    return None

  def _set_aside(self, step: int) -> str:
    """Renames step `step`'s folder out of orbax's sight (kept for inspection); the new path."""
    target = os.path.join(self.directory, f'{step}.unreadable')
    n = 1
    while os.path.exists(target):
      n += 1
      target = os.path.join(self.directory, f'{step}.unreadable.{n}')
    if jax.process_index() == 0:
      os.rename(os.path.join(self.directory, str(step)), target)
    if jax.process_count() > 1:
      multihost_utils.sync_global_devices(f'gan_jax_set_aside_{step}')
    self._manager.reload()
    return target

  def close(self) -> None:
    """Waits for a background save (SaveError if it failed), then closes."""
    try:
      self.wait()
    finally:
      self._manager.close()


def _without(abstract_state, absent: dict):
  """The restore target: the state itself, or as a dict with the absent fields as saved."""
  if not absent:
    return abstract_state
  target = {f.name: getattr(abstract_state, f.name) for f in dataclasses.fields(abstract_state)}
  for name, saved in absent.items():
    if saved is None:
      del target[name]
    else:
      target[name] = saved
  return target


def _zeros(abstract):
  sharding = getattr(abstract, 'sharding', None)
  make = lambda: jnp.zeros(abstract.shape, abstract.dtype)
  return jax.jit(make, out_shardings=sharding)() if sharding is not None else make()


def _with_zeros(abstract_state, restored, absent):
  """The restored state with each absent field's arrays as zeros of their abstract shape."""
  if not absent:
    return restored
  zeros = {name: jax.tree.map(_zeros, getattr(abstract_state, name)) for name in absent}
  kept = {k: v for k, v in restored.items() if k not in absent}
  return type(abstract_state)(**kept, **zeros)


def _shapes_by_path(tree) -> dict[str, tuple[int, ...]]:
  leaves = jax.tree_util.tree_flatten_with_path(tree, is_leaf=lambda x: hasattr(x, 'shape'))[0]
  return {jax.tree_util.keystr(path): tuple(leaf.shape) for path, leaf in leaves}


def _free_bytes(directory: str) -> int:
  """Free bytes on the file system holding `directory` (or its nearest existing parent)."""
  while not os.path.exists(directory) and os.path.dirname(directory) != directory:
    directory = os.path.dirname(directory)
  return shutil.disk_usage(directory).free


def abstract_with_sharding(abstract_state, shardings):
  return jax.tree.map(
    lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s), abstract_state, shardings
  )
