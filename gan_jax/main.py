"""The library entry point behind launch.py: one call per --mode."""

import jax

from gan_jax import cas
from gan_jax import config_checks
from gan_jax import evaluators
from gan_jax import hardware as hardware_lib
from gan_jax import projection
from gan_jax import sample
from gan_jax import sharding
from gan_jax import train
from gan_jax.errors import UserError


def run(
  config,
  workdir: str,
  mode: str = 'train',
  *,
  hardware=None,
  num_samples: int = 64,
  sample_seed: int = 0,
  truncation: float = 0.0,
  request: tuple[str, ...] = (),
  seeds: str = '',
  images: str = '',
  coordinator_address=None,
  num_processes=None,
  process_id=None,
):
  """Runs `mode` ('train', 'sample', 'eval', 'cas', 'project' or 'config') of the experiment
  `config` in `workdir`, on the `hardware` settings (gan_jax/hardware.py; None: its
  defaults). `request` is --mode=sample's (condition, conditions_file, like, prompt,
  prompts_file, projected, edit, edits_file), as sample.Request's fields; `seeds` its
  --seeds ('0-63,99': one image per seed, in place of num_samples and sample_seed); `images`
  --mode=project's."""
  if mode != 'sample' and (any(request) or seeds):
    given = [f'--{f}' for f, v in zip(sample.Request.fields(), request) if v]
    given += ['--seeds'] if seeds else []
    raise UserError(f'{", ".join(given)}: for --mode=sample only')
  if mode != 'project' and images:
    raise UserError('--images is for --mode=project (--like draws new images like given ones)')
  seed_list = sample.parse_seeds(seeds) if seeds else None
  hardware = hardware or hardware_lib.default_config()
  config_checks.check_hardware(hardware)
  if mode == 'config':
    return show_config(config, hardware)
  hardware_lib.use_cpu_devices(hardware.cpu_devices)  # Before anything starts JAX's backends.
  sharding.maybe_initialize_distributed(coordinator_address, num_processes, process_id)
  if mode == 'train':
    return train.train_and_evaluate(config, workdir, hardware=hardware)
  if mode == 'sample':
    out_dir = sample.write_samples(
      config,
      workdir,
      num_samples,
      sample_seed,
      truncation,
      hardware=hardware,
      request=sample.Request(*request),
      seeds=seed_list,
    )
    if jax.process_index() == 0:  # Only process 0 writes the files, and says so.
      if sample.Request(*request).projected:
        print(f'wrote the projected images, remade and edited, to {out_dir}')
      else:
        per = ' per request' if any(request) else ''
        count = num_samples if seed_list is None else len(seed_list)
        print(f'wrote {count} samples{per} to {out_dir}')
    return out_dir
  if mode == 'eval':
    return evaluators.run_eval(config, workdir, hardware=hardware)
  if mode == 'project':
    return projection.project(config, workdir, images, hardware=hardware)
  if mode == 'cas':
    return cas.run_cas(config, workdir, train.train_and_evaluate, hardware=hardware)
  raise ValueError(f'unknown mode {mode!r}')


def show_config(config, hardware) -> str:
  """--mode=config: the config as a run would resolve it (automatic counts filled in), checked
  as a run checks it, printed with the hardware settings; nothing is trained, written or read
  (no data, no checkpoint). Returns the printed text."""
  config_checks.check(config, evaluators.REGISTRY)
  evaluators.resolve_counts(config)
  text = (
    config.to_json_best_effort(indent=2, sort_keys=True)
    + '\nhardware: '
    + hardware.to_json_best_effort(sort_keys=True)
  )
  print(text)
  return text


def is_main_process() -> bool:
  """Whether this is process 0, the one that prints and writes shared files."""
  return jax.process_index() == 0
