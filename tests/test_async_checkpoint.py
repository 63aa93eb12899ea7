"""Checkpoints written in the background (gan_jax/checkpoint.py, background=True): what is saved
is the state at its step even though the next steps reuse its donated buffers, and a write that
fails is reported, naming its step, at the next save or at close, its half-written folder gone
and the previous checkpoint intact. The whole-run guarantees (exact resume, kills, signals, a
full disk mid-write) are proven with background saves, the default, by test_reliability.py."""

import errno
import os

import jax
import jax.numpy as jnp
import numpy as np
from orbax.checkpoint._src.path import async_path
import pytest

from gan_jax import checkpoint
from gan_jax import train
from gan_jax.errors import UserError
from tests.conftest import load_config


def _state(seed):
  key = jax.random.key(seed)
  return {'w': jax.random.normal(key, (1_000_000,)), 'step': jnp.int32(seed)}


def test_a_background_save_holds_the_state_of_its_step_though_its_buffers_are_donated(tmp_path):
  ckpt = checkpoint.Checkpointer(str(tmp_path / 'checkpoints'), background=True)
  state = _state(1)
  want = jax.tree.map(np.array, state)
  step = jax.jit(lambda s: jax.tree.map(lambda x: x * 0 + 7, s), donate_argnums=0)
  ckpt.save(1, state, {'position': 1})
  for _ in range(3):  # Overwrites the donated buffers while the save may still be writing.
    state = step(state)
  jax.block_until_ready(state)
  assert float(state['w'][0]) == 7.0
  ckpt.wait()
  restored_step, got, position = ckpt.restore(jax.eval_shape(lambda: _state(1)))
  assert restored_step == 1 and position == {'position': 1}
  for key in want:
    np.testing.assert_array_equal(got[key], want[key])
  ckpt.close()


@pytest.fixture
def failing_write(monkeypatch):
  """ENOSPC from orbax's rename of step 2's `state` item, as a disk filling up would give."""
  real = async_path.rename

  async def rename(src, dst):
    parent = os.path.basename(os.path.dirname(str(src)))
    if parent == '2.orbax-checkpoint-tmp' and os.path.basename(str(src)).startswith('state'):
      raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(src))
    return await real(src, dst)

  monkeypatch.setattr(async_path, 'rename', rename)


@pytest.mark.parametrize('noticed_at', ['next save', 'close'])
def test_a_failed_background_write_is_reported_with_its_step(tmp_path, failing_write, noticed_at):
  directory = str(tmp_path / 'checkpoints')
  ckpt = checkpoint.Checkpointer(directory, background=True)
  ckpt.save(1, _state(1), {'position': 1})
  ckpt.save(2, _state(2), {'position': 2})  # Returns; the write fails on its thread.
  with pytest.raises(checkpoint.SaveError) as info:
    if noticed_at == 'next save':
      ckpt.save(3, _state(3), {'position': 3})
    else:
      ckpt.close()
  assert info.value.step == 2 and info.value.errno == errno.ENOSPC
  assert sorted(os.listdir(directory)) == ['1']  # Nothing of 2 (or 3) left behind.
  assert ckpt.all_steps() == [1]
  step, state, _ = ckpt.restore(jax.eval_shape(lambda: _state(1)))
  assert step == 1
  np.testing.assert_array_equal(state['w'], _state(1)['w'])


def test_the_training_saver_reports_a_failed_final_save_in_one_line(tmp_path, failing_write):
  config = load_config('mnist_dcgan').train
  assert config.async_checkpointing  # The default.
  saver = train.Saver(str(tmp_path), config, log=lambda _: None)
  saver.save(1, _state(1), {}, 1.0)
  saver.save(2, _state(2), {}, 2.0)
  with pytest.raises(UserError) as info:
    saver.close()
  assert str(info.value).startswith(
    'could not save the checkpoint at step 2: No space left on device'
  )
  assert str(info.value).endswith('the previous checkpoint (step 1) is intact')


def test_a_run_failing_on_another_error_still_finishes_its_background_save(tmp_path, monkeypatch):
  """A NaN stops the run while the last good checkpoint is still being written (slowed here):
  it is committed before the error leaves train_and_evaluate."""
  import asyncio  # pylint: disable=g-import-not-at-top

  from tests.test_reliability import finished_steps  # pylint: disable=g-import-not-at-top
  from tests.test_reliability import poisoned_experiment  # pylint: disable=g-import-not-at-top

  real = async_path.rename

  async def slow_rename(src, dst):
    await asyncio.sleep(0.5)
    return await real(src, dst)

  monkeypatch.setattr(async_path, 'rename', slow_rename)
  config = load_config('mnist_dcgan')
  config.train.num_steps, config.train.log_every, config.train.checkpoint_every = 12, 1, 3
  with pytest.raises(train.NonFiniteError):
    train.train_and_evaluate(config, str(tmp_path), make_experiment=poisoned_experiment(4))
  assert finished_steps(str(tmp_path)) == [3]
