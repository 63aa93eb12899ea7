"""launch.py with a fault injected into orbax's checkpoint save, for tests/test_reliability.py.

  python tests/reliability_child.py FAULT STEP -- <launch.py flags>

FAULT is one of
  kill_before_commit  SIGKILL itself at step STEP's save just before orbax renames the finished
                      `STEP.orbax-checkpoint-tmp` folder to `STEP` (everything written, nothing
                      committed),
  kill_mid_write      SIGKILL itself at step STEP's save once the arrays are written but before
                      the `state` item is renamed into place (a half-written step folder),
  enospc_mid_write    make that same point raise OSError(ENOSPC), as a disk filling up would.
The marker file `<workdir>/fault_fired` is written just before the fault fires, so the test
knows the fault happened where it meant it to. Nothing here is used by gan_jax itself.
"""

import errno
import os
import runpy
import signal
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main():
  fault, step = sys.argv[1], int(sys.argv[2])
  assert sys.argv[3] == '--', sys.argv
  launch_args = sys.argv[4:]
  workdir = next(a.split('=', 1)[1] for a in launch_args if a.startswith('--workdir='))
  marker = os.path.join(os.path.abspath(workdir), 'fault_fired')

  from orbax.checkpoint._src.path import async_path  # pylint: disable=g-import-not-at-top

  real_rename = async_path.rename

  def fire(src):
    with open(marker, 'w') as f:
      f.write(f'{fault} at {src}\n')
    if fault.startswith('kill'):
      os.kill(os.getpid(), signal.SIGKILL)
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(src))

  async def rename(src, dst):
    src_name, parent = os.path.basename(str(src)), os.path.basename(os.path.dirname(str(src)))
    if fault == 'kill_before_commit' and src_name == f'{step}.orbax-checkpoint-tmp':
      fire(src)
    if (
      fault in ('kill_mid_write', 'enospc_mid_write')
      and parent == f'{step}.orbax-checkpoint-tmp'
      and src_name == 'state.orbax-checkpoint-tmp'
    ):
      fire(src)
    return await real_rename(src, dst)

  async_path.rename = rename
  sys.argv = [os.path.join(ROOT, 'launch.py'), *launch_args]
  runpy.run_path(os.path.join(ROOT, 'launch.py'), run_name='__main__')


if __name__ == '__main__':
  main()
