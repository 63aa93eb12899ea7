"""Hardware settings, kept out of experiments and models: how many devices the CPU backend
shows, and on how many batch slices convolutions run.

A hardware config (`--hardware=configs/hardware/NAME.py`, read before JAX starts) has two
fields. `cpu_devices` > 0 makes JAX's CPU backend show that many devices, so the data mesh
splits each batch over the host's cores (0 = JAX's default of one). `conv_batch_slices` > 0
computes every convolution of a GAN on that many slices of its batch; 0 picks by backend and
batch (`conv_batch_slices_for`). Slicing changes speed, not results: the same numbers up to
the order of float sums (docs/performance.md).

Models never see these settings: `sliced` reads the slice count that `conv_batch_slices(n)`
sets around a model's `apply`, so the network a model describes is the same on every machine.
"""

from collections.abc import Callable
import contextlib
import contextvars
import os

from absl import logging
import jax
from jax import lax
import jax.numpy as jnp
import ml_collections


def default_config() -> ml_collections.ConfigDict:
  """The settings without a hardware file: JAX's device count, automatic slicing."""
  return ml_collections.ConfigDict(dict(cpu_devices=0, conv_batch_slices=0))


def use_cpu_devices(count: int) -> None:
  """Makes the CPU backend show `count` devices (0: leave JAX's default; checked by
  config_checks.check_hardware). An explicit
  --xla_force_host_platform_device_count in XLA_FLAGS wins; so does a backend that is already
  running (library use, tests), with a warning. Accelerator backends are unaffected."""
  if count == 0 or 'xla_force_host_platform_device_count' in os.environ.get('XLA_FLAGS', ''):
    return
  try:
    jax.config.update('jax_num_cpu_devices', count)
  except RuntimeError:
    logging.warning('hardware.cpu_devices=%d ignored: JAX has already started its backends', count)


# XLA:CPU convolutions run fastest on about 8-16 examples at a time (docs/performance.md).
_AUTO_CPU_SLICES = 4
_AUTO_MIN_EXAMPLES_PER_DEVICE = 16


def conv_batch_slices_for(hardware, examples_per_device: int) -> int:
  """The slice count for a batch of `examples_per_device` on each device: the hardware
  config's, or when it says 0, 4 on the CPU backend for 16 or more examples per device and
  1 otherwise (a few examples per slice run slower than one whole batch)."""
  if hardware.conv_batch_slices:
    return int(hardware.conv_batch_slices)
  if jax.default_backend() != 'cpu':
    return 1
  return _AUTO_CPU_SLICES if examples_per_device >= _AUTO_MIN_EXAMPLES_PER_DEVICE else 1


_SLICES = contextvars.ContextVar('gan_jax_conv_batch_slices', default=1)


@contextlib.contextmanager
def conv_batch_slices(count: int):
  """Within this context (while a model is traced), `sliced` functions run on `count` slices."""
  token = _SLICES.set(max(1, int(count)))
  try:
    yield
  finally:
    _SLICES.reset(token)


def sliced(fn: Callable) -> Callable:
  """`fn(x, *args)` computed on the batch slices of the enclosing `conv_batch_slices`.

  For per-example ops (convolutions) the result is the same up to float summation order; a
  kernel gradient becomes a sum over slices. Slice `j` holds examples `j, j + n, ...`: with the
  batch sharded over devices in contiguous blocks, every device keeps its own rows and no data
  moves. A batch that the slice count does not divide is computed whole.
  """

  def call(x, *args, **kwargs):
    count, batch = _SLICES.get(), x.shape[0]
    if count <= 1 or batch % count:
      return fn(x, *args, **kwargs)
    rows = x.reshape(batch // count, count, *x.shape[1:])
    outs = [fn(rows[:, j], *args, **kwargs) for j in range(count)]
    return jnp.stack(outs, 1).reshape(batch, *outs[0].shape[1:])

  return call


conv_general_dilated = sliced(lax.conv_general_dilated)
