"""Runs a gan_jax experiment: `python launch.py --config=configs/X.py --workdir=DIR [--mode=...]`.

Config files are Python: loading one runs its code. Override any field from the command line,
e.g. `--config.train.num_steps=5000`; the config is locked, so an unknown key is an error.
"""

import logging as std_logging
import os
import sys

# configs/*.py import `configs.common`, so the repository root must be importable.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from absl import app  # pylint: disable=g-import-not-at-top
from absl import flags
from absl import logging
from ml_collections import config_flags

_CONFIG = config_flags.DEFINE_config_file(
  'config', None, 'Experiment config file (Python).', lock_config=True
)
_HARDWARE = config_flags.DEFINE_config_file(
  'hardware',
  os.path.join(os.path.dirname(os.path.abspath(__file__)), 'configs', 'hardware', 'default.py'),
  'Hardware settings file (configs/hardware/*.py): CPU device count, convolution slicing.',
  lock_config=True,
)
_WORKDIR = flags.DEFINE_string('workdir', None, 'Where checkpoints, logs and samples go.')
_MODE = flags.DEFINE_enum(
  'mode',
  'train',
  ['train', 'sample', 'eval', 'cas', 'project', 'config'],
  'What to do (cas: gan_jax/cas.py; project: gan_jax/projection.py; config: print the '
  'resolved, checked config and exit).',
)
_NUM_SAMPLES = flags.DEFINE_integer('num_samples', 64, '--mode=sample: how many images.')
_SAMPLE_SEED = flags.DEFINE_integer('sample_seed', 0, '--mode=sample: noise seed.')
_TRUNCATION = flags.DEFINE_float('truncation', 0.0, '--mode=sample: resample |z| > this (0 = off).')
_CONDITION = flags.DEFINE_string(
  'condition', '', "--mode=sample: draw to order, e.g. 'digit=7,thickness=3.5,slant=0.3'."
)
_CONDITIONS_FILE = flags.DEFINE_string(
  'conditions_file', '', '--mode=sample: one --condition request per line.'
)
_LIKE = flags.DEFINE_string(
  'like', '', '--mode=sample: an image, a folder of images or an .npy of feature vectors.'
)
_PROMPT = flags.DEFINE_string(
  'prompt', '', "--mode=sample: a sentence, e.g. 'a thick seven leaning right' (text models)."
)
_PROMPTS_FILE = flags.DEFINE_string('prompts_file', '', '--mode=sample: one sentence per line.')
_IMAGES = flags.DEFINE_string(
  'images', '', '--mode=project: an image, a folder of images or an .npz of uint8 images.'
)
_PROJECTED = flags.DEFINE_string(
  'projected', '', '--mode=sample: a projected.npz (--mode=project) to regenerate and --edit.'
)
_EDIT = flags.DEFINE_string(
  'edit', '', "--mode=sample with --projected: e.g. 'thickness=+1sd', 'slant=0.3', 'digit=3'."
)
_EDITS_FILE = flags.DEFINE_string('edits_file', '', '--mode=sample: one --edit per line.')
_SEEDS = flags.DEFINE_string(
  'seeds',
  '',
  "--mode=sample: one image per seed, e.g. '0-63' or '0-9,42'; image k depends on seed k alone "
  '(in place of --num_samples and --sample_seed).',
)
_COORDINATOR = flags.DEFINE_string(
  'coordinator_address', None, 'Multi-process: host:port of process 0.'
)
_NUM_PROCESSES = flags.DEFINE_integer('num_processes', None, 'Multi-process: process count.')
_PROCESS_ID = flags.DEFINE_integer('process_id', None, 'Multi-process: this process index.')
flags.mark_flags_as_required(['config'])


def _one_line(error: BaseException) -> str:
  """The most telling line of an error: the last non-blank line of its message, or its type."""
  lines = [l.strip() for l in str(error).splitlines() if l.strip()]
  cause = error.__cause__ or error.__context__
  if cause is not None and (not lines or 'Traceback' in str(error)):
    return _one_line(cause)
  return lines[-1] if lines else type(error).__name__


def parse_flags(argv):
  """absl's parser, but a bad flag or config (missing, broken, unknown key, wrong type) is one
  line on stderr and exit status 2, not a traceback."""
  for i, arg in enumerate(argv):
    for name in ('config', 'hardware'):
      path = (
        arg[len(f'--{name}=') :]
        if arg.startswith(f'--{name}=')
        else (argv[i + 1] if arg == f'--{name}' and i + 1 < len(argv) else None)
      )
      if path is not None and not os.path.isfile(path.split(':', 1)[0]):
        print(f'error: {name} file {path.split(":", 1)[0]!r} not found', file=sys.stderr)
        sys.exit(2)
  try:
    remaining = flags.FLAGS(argv)
    _ = _CONFIG.value, _HARDWARE.value  # A file that failed to load raises when first read.
    return remaining
  except Exception as e:  # pylint: disable=broad-except
    message = _one_line(e)
    if isinstance(e, KeyError) or isinstance(e.__context__, KeyError):
      key, *hint = str((e if isinstance(e, KeyError) else e.__context__).args[0]).split('\n')
      key = key.strip("'")
      overrides = [
        a.split('=')[0]
        for a in argv
        if a.startswith(('--config.', '--hardware.')) and key in a.split('=')[0].split('.')
      ]
      message = f'unknown config key {key!r} in {", ".join(overrides) or "--config overrides"}'
      message += f' ({hint[0]})' if hint else ''
    print(f'error: {message}', file=sys.stderr, flush=True)
    sys.exit(2)


def _not_from_orbax(record) -> bool:
  return f'{os.sep}orbax{os.sep}' not in record.pathname or record.levelno >= std_logging.CRITICAL


def quiet_libraries() -> None:
  """Hides library INFO logs (orbax's checkpoint manager, JAX's TPU probe) unless the user
  asked for them with absl's --verbosity / -v, and then orbax's errors too: a checkpoint that
  cannot be written is reported by gan_jax in one line, not by orbax's tracebacks."""
  if not flags.FLAGS['verbosity'].present:
    logging.set_verbosity(logging.WARNING)
    logging.get_absl_logger().addFilter(_not_from_orbax)


def next_commands(argv: list[str]) -> list[str]:
  """The commands that sample from and judge the run just trained: its config and model
  overrides (not the train.* ones, which sampling does not need)."""
  config = [
    a
    for a in argv[1:]
    if a.startswith(('--config', '--hardware'))
    and not a.startswith(('--config.train.', '--config.eval.'))
  ]
  base = ' '.join(['python launch.py', *config, f'--workdir={_WORKDIR.value}'])
  config_value = _CONFIG.value
  judge = config_value.eval.get('classifier_workdir') or (
    'runs/mnist_classifier' if 'mnist' in config_value.data.source else 'CLASSIFIER_WORKDIR'
  )
  return [
    f'{base} --mode=sample --num_samples=64',
    f'{base} --mode=eval --config.eval.classifier_workdir={judge}',
  ]


# The request flags of --mode=sample and what each wants.
REQUEST_FLAGS = {
  'condition': "a request such as 'digit=7,thickness=3.5'",
  'conditions_file': 'a file of requests',
  'like': 'an image, a folder or an .npy',
  'prompt': "a sentence such as 'a thick seven'",
  'prompts_file': 'a file of sentences',
  'seeds': "seeds such as '0-63'",
  'images': 'an image, a folder or an .npz of images',
  'projected': 'a projected.npz',
  'edit': "an edit such as 'thickness=+1sd'",
  'edits_file': 'a file of edits',
}


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {" ".join(argv[1:])}')
  quiet_libraries()
  from gan_jax import main as gan_main  # pylint: disable=g-import-not-at-top
  from gan_jax.errors import UserError  # pylint: disable=g-import-not-at-top

  if not _WORKDIR.value and _MODE.value != 'config':
    print('error: --workdir is required (where checkpoints, logs and samples go)', file=sys.stderr)
    sys.exit(2)
  for name in REQUEST_FLAGS:  # An empty request is refused, not read as no request.
    if flags.FLAGS[name].present and not flags.FLAGS[name].value.strip():
      print(f'error: --{name} is empty: give {REQUEST_FLAGS[name]}', file=sys.stderr)
      sys.exit(2)
  if _SEEDS.value:
    given = [f'--{n}' for n in ('num_samples', 'sample_seed') if flags.FLAGS[n].present]
    if given:
      print(f'error: give --seeds or {" and ".join(given)}, not both', file=sys.stderr)
      sys.exit(2)
  try:
    result = gan_main.run(
      _CONFIG.value,
      _WORKDIR.value,
      _MODE.value,
      hardware=_HARDWARE.value,
      num_samples=_NUM_SAMPLES.value,
      sample_seed=_SAMPLE_SEED.value,
      truncation=_TRUNCATION.value,
      request=(
        _CONDITION.value,
        _CONDITIONS_FILE.value,
        _LIKE.value,
        _PROMPT.value,
        _PROMPTS_FILE.value,
        _PROJECTED.value,
        _EDIT.value,
        _EDITS_FILE.value,
      ),
      images=_IMAGES.value,
      seeds=_SEEDS.value,
      coordinator_address=_COORDINATOR.value,
      num_processes=_NUM_PROCESSES.value,
      process_id=_PROCESS_ID.value,
    )
  except UserError as e:
    print(f'error: {e}', file=sys.stderr, flush=True)
    sys.exit(2)
  if (
    _MODE.value == 'train'
    and _CONFIG.value.experiment == 'gan'
    and result is not None
    and gan_main.is_main_process()
  ):
    print('next:\n' + '\n'.join(f'  {c}' for c in next_commands(sys.argv)), flush=True)


if __name__ == '__main__':
  app.run(main, flags_parser=parse_flags)
