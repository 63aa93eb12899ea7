"""Deterministic, resumable, per-process input pipeline on grain.

The stream is one seeded shuffle of the source per epoch, repeated forever, cut into local
batches of B/P elements; process p of P takes the local batches p, p+P, p+2P, ... So at
global step k process p holds rows [p*B/P, (p+1)*B/P) of global batch k of a one-process
run, in the same order: the data a step sees, row by row, does not depend on how many
processes read it, and each process reads only its own elements. The iterator's position
(`get_state`) is saved with every checkpoint, so a resumed run sees the batches an
uninterrupted run would have seen.
"""

from collections.abc import Iterator
from typing import Any

import grain
import numpy as np

from gan_jax.errors import UserError


def local_batch_size(global_batch_size: int, process_count: int) -> int:
  if global_batch_size % process_count:
    raise UserError(
      f'batch size {global_batch_size} is not divisible by the number of processes {process_count}'
    )
  return global_batch_size // process_count


def make_dataset(
  source,
  *,
  seed: int,
  global_batch_size: int,
  process_index: int = 0,
  process_count: int = 1,
  num_epochs: int | None = None,
) -> grain.MapDataset:
  """An endless (or `num_epochs`-long) stream of this process's local batches. The endless
  stream takes a set smaller than a batch too (a batch then spans epochs, each shuffled anew);
  a finite one needs at least one whole batch."""
  if not len(source):
    raise UserError('the data set is empty')
  if num_epochs is not None and len(source) * num_epochs < global_batch_size:
    raise UserError(
      f'{num_epochs} epoch(s) of {len(source)} examples are fewer than one batch '
      f'({global_batch_size})'
    )
  batch = local_batch_size(global_batch_size, process_count)
  ds = grain.MapDataset.source(source).seed(seed).shuffle().repeat(num_epochs)
  return ds.batch(batch, drop_remainder=True)[process_index::process_count]


def make_eval_dataset(
  source, *, batch_size: int, process_index: int = 0, process_count: int = 1
) -> grain.MapDataset:
  """One pass over the source in order, this process's share, last batch kept (may be short)."""
  ds = grain.MapDataset.source(source)[process_index::process_count]
  return ds.batch(max(1, batch_size // process_count), drop_remainder=False)


def iterate(
  ds: grain.MapDataset, state: dict[str, Any] | None = None, num_threads: int = 2, prefetch: int = 4
) -> Iterator[dict[str, np.ndarray]]:
  """A checkpointable iterator over `ds`, positioned at `state` when given."""
  it = ds.to_iter_dataset(
    grain.ReadOptions(num_threads=num_threads, prefetch_buffer_size=prefetch)
  ).__iter__()
  if state is not None:
    it.set_state(state)
  return it
