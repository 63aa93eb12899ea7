"""The library entry point behind launch.py: one call per --mode."""

import jax

from gan_jax import evaluate
from gan_jax import sample
from gan_jax import sharding
from gan_jax import train


def run(
  config,
  workdir: str,
  mode: str = 'train',
  *,
  num_samples: int = 64,
  sample_seed: int = 0,
  truncation: float = 0.0,
  coordinator_address=None,
  num_processes=None,
  process_id=None,
):
  """Runs `mode` ('train', 'sample' or 'eval') of the experiment `config` in `workdir`."""
  sharding.use_cpu_devices(config.get('cpu_devices', 0))
  sharding.maybe_initialize_distributed(coordinator_address, num_processes, process_id)
  if mode == 'train':
    return train.train_and_evaluate(config, workdir)
  if mode == 'sample':
    out_dir = sample.write_samples(config, workdir, num_samples, sample_seed, truncation)
    if jax.process_index() == 0:  # Only process 0 writes the files, and says so.
      print(f'wrote {num_samples} samples to {out_dir}')
    return out_dir
  if mode == 'eval':
    return evaluate.run_eval(config, workdir)
  raise ValueError(f'unknown mode {mode!r}')


def is_main_process() -> bool:
  """Whether this is process 0, the one that prints and writes shared files."""
  return jax.process_index() == 0
