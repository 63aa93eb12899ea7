"""Orbax checkpoints of the whole train state plus the input pipeline's position.

Orbax writes each step into a temporary folder and renames it when complete, so a kill during
a save never leaves a half-written checkpoint that looks finished. A checkpoint that cannot be
read (truncated, corrupted) is skipped for the previous one, loudly. A checkpoint whose arrays
do not match the model in the config is refused: the workdir belongs to another experiment.
No pickle anywhere: arrays go through tensorstore, the pipeline position through JSON.
"""

import os

import jax
import numpy as np
import orbax.checkpoint as ocp

from gan_jax.errors import UserError


class Checkpointer:
  """Saves and restores `(state, data_position)` pairs under `directory`."""

  def __init__(self, directory: str, max_to_keep: int = 3):
    self.directory = os.path.abspath(directory)
    self._manager = ocp.CheckpointManager(
        self.directory,
        # Synchronous saves: a failure (e.g. a full disk) surfaces at the step that caused it.
        options=ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True,
                                             enable_async_checkpointing=False),
        item_handlers={'state': ocp.StandardCheckpointHandler(),
                       'data': ocp.JsonCheckpointHandler()})

  def all_steps(self) -> list[int]:
    return sorted(self._manager.all_steps())

  def latest_step(self) -> int | None:
    return self._manager.latest_step()

  def save(self, step: int, state, data_position: dict) -> None:
    self._manager.save(step, args=ocp.args.Composite(
        state=ocp.args.StandardSave(state), data=ocp.args.JsonSave(data_position)), force=True)

  def _check_matches(self, step: int, abstract_state) -> None:
    saved = _shapes_by_path(self._manager.item_metadata(step)['state'].tree)
    wanted = _shapes_by_path(ocp.tree.serialize_tree(abstract_state, keep_empty_nodes=True))
    if saved != wanted:
      differing = sorted(set(saved.items()) ^ set(wanted.items()))[0][0]
      raise UserError(
          f'the checkpoint at step {step} in {self.directory} holds a different model '
          f'({differing} differs from this config); refusing to overwrite it: use a new --workdir')

  def restore(self, abstract_state, log=print):
    """The newest readable checkpoint as `(step, state, data_position)`, or None if none."""
    steps = self.all_steps()
    for i, step in reversed(list(enumerate(steps))):
      try:
        self._check_matches(step, abstract_state)
        restored = self._manager.restore(step, args=ocp.args.Composite(
            state=ocp.args.StandardRestore(abstract_state), data=ocp.args.JsonRestore()))
      except UserError:
        raise
      except Exception as e:  # Orbax/tensorstore raise many types for unreadable data.
        reason = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
        older = f'falling back to step {steps[i - 1]}' if i else 'no older checkpoint left'
        log(f'checkpoint at step {step} is unreadable ({reason}); {older}')
        continue
      return step, restored['state'], dict(restored['data'])
    return None

  def wait(self) -> None:
    self._manager.wait_until_finished()

  def close(self) -> None:
    self._manager.close()


def _shapes_by_path(tree) -> dict[str, tuple[int, ...]]:
  leaves = jax.tree_util.tree_flatten_with_path(tree, is_leaf=lambda x: hasattr(x, 'shape'))[0]
  return {jax.tree_util.keystr(path): tuple(leaf.shape) for path, leaf in leaves}


def abstract_with_sharding(abstract_state, shardings):
  return jax.tree.map(lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s),
                      abstract_state, shardings)


def all_finite(tree) -> bool:
  return all(bool(np.all(np.isfinite(x))) for x in jax.tree.leaves(jax.device_get(tree))
             if np.issubdtype(np.asarray(x).dtype, np.floating))
