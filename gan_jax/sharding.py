"""The device mesh from the config, and where batches and state live on it.

One device is the degenerate mesh: the same code runs on 1 CPU, 8 simulated CPU devices,
or every accelerator of every process.
"""

import math
import os

import jax
from jax.sharding import Mesh
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P
import numpy as np

from gan_jax.errors import UserError

BATCH_AXES = ('data', 'fsdp')  # Axes the batch is split over; 'fsdp' also splits parameters.
FSDP_MIN_SIZE = 2**14  # Parameters smaller than this stay replicated: not worth a gather.


def must_wait_each_step() -> bool:
  """Whether a train loop must wait for each step before queuing the next: XLA:CPU can deadlock
  when collective steps of several CPU devices are queued back to back."""
  return jax.default_backend() == 'cpu' and jax.device_count() > 1


def maybe_initialize_distributed(
  coordinator_address: str | None = None,
  num_processes: int | None = None,
  process_id: int | None = None,
) -> None:
  """Joins a multi-process run when asked by flags or by a cluster launcher's environment."""
  asked = (
    coordinator_address
    or num_processes
    or os.environ.get('JAX_COORDINATOR_ADDRESS')
    or (int(os.environ.get('SLURM_NTASKS', '1')) > 1)
  )
  if not asked:
    return
  # Cross-process collectives of the CPU backend (a no-op for accelerators). Nothing here may
  # touch the backend (jax.default_backend(), jax.devices()): initialize() must come first.
  jax.config.update('jax_cpu_collectives_implementation', 'gloo')
  jax.distributed.initialize(
    coordinator_address=coordinator_address or None,
    num_processes=num_processes,
    process_id=process_id,
  )


def check_mesh_spec(spec) -> tuple[tuple[str, ...], list[int]]:
  """(axis names, sizes) of `((name, size), ...)`: distinct batch axes, sizes >= 1 or one -1
  (all the remaining devices). Its fit to the devices is make_mesh's to check."""
  try:
    names = tuple(name for name, _ in spec)
    sizes = [size for _, size in spec]
  except (TypeError, ValueError):
    raise UserError(f'config.mesh must be ((axis, size), ...) pairs, got {spec!r}') from None
  if not names or len(set(names)) != len(names) or not set(names) <= set(BATCH_AXES):
    raise UserError(f'config.mesh {tuple(spec)} must name distinct axes among {BATCH_AXES}')
  integers = all(isinstance(s, int) and not isinstance(s, bool) for s in sizes)
  if not integers or any(s < 1 and s != -1 for s in sizes) or sizes.count(-1) > 1:
    raise UserError(
      f'config.mesh {tuple(spec)}: sizes must be integers >= 1, or -1 (all the remaining '
      'devices) for at most one axis'
    )
  return tuple(str(n) for n in names), sizes


def make_mesh(spec) -> Mesh:
  """A mesh over all devices from `((name, size), ...)`; one size may be -1 (all the rest)."""
  names, sizes = check_mesh_spec(spec)
  count = jax.device_count()
  known = math.prod(s for s in sizes if s != -1)
  if count % known:
    raise UserError(f'config.mesh {tuple(spec)} does not fit {count} devices')
  sizes = [count // known if s == -1 else s for s in sizes]
  if math.prod(sizes) != count:
    raise UserError(f'config.mesh {tuple(spec)} has {math.prod(sizes)} devices, not {count}')
  # Auto axes: jit's in/out shardings decide placement and XLA propagates the rest (GSPMD).
  return jax.make_mesh(
    tuple(sizes),
    names,
    devices=jax.devices(),
    axis_types=(jax.sharding.AxisType.Auto,) * len(names),
  )


def batch_axes(mesh: Mesh) -> tuple[str, ...]:
  return tuple(a for a in BATCH_AXES if a in mesh.axis_names)


def batch_sharding(mesh: Mesh) -> NamedSharding:
  """Batches are split along their first axis over every batch axis of the mesh."""
  return NamedSharding(mesh, P(batch_axes(mesh)))


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P())


def check_batch_size(mesh: Mesh, global_batch_size: int) -> None:
  devices = math.prod(mesh.shape[a] for a in batch_axes(mesh))
  if global_batch_size % devices:
    raise UserError(
      f'batch size {global_batch_size} is not divisible by the {devices} devices '
      'the batch is split over'
    )


def _param_spec(shape, fsdp_size: int) -> P:
  """Splits a large parameter's largest divisible dimension over 'fsdp'; others replicate."""
  if fsdp_size <= 1 or math.prod(shape) < FSDP_MIN_SIZE:
    return P()
  for dim in sorted(range(len(shape)), key=lambda d: -shape[d]):
    if shape[dim] % fsdp_size == 0:
      return P(*([None] * dim + ['fsdp']))
  return P()


def state_sharding(mesh: Mesh, abstract_state):
  """Shardings for a train state: replicated, except large arrays split over an 'fsdp' axis."""
  fsdp_size = mesh.shape.get('fsdp', 1)
  return jax.tree.map(
    lambda x: NamedSharding(mesh, _param_spec(x.shape, fsdp_size)), abstract_state
  )


def put_batch(local_batch, sharding: NamedSharding):
  """This process's part of the global batch -> global jax.Arrays laid out by `sharding`."""
  return jax.tree.map(
    lambda x: jax.make_array_from_process_local_data(sharding, np.asarray(x)), local_batch
  )
