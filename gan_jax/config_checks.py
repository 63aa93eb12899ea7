"""Config checks: every section of an experiment config validated in one place, before the mesh,
the data or a model exists. A bad value is one `UserError` line that names the field, the value
and what is allowed, e.g. `config.loss.r1_gamma must be a finite number >= 0, got nan`.

`check(config)` validates a whole experiment config; `check_evals` its `config.evals` against
the evaluator registry; `check_data_fits` what depends on the data (image size, class count)
once the source is open; `check_hardware` a hardware config (gan_jax/hardware.py).
A section a config does not have (a classifier has no loss, schedule or eval) is skipped, and
so is a field a section does not have.
"""

from collections.abc import Mapping
import math
import numbers

from gan_jax import augment
from gan_jax import augmentations
from gan_jax import captions
from gan_jax import conditions
from gan_jax import losses
from gan_jax import models
from gan_jax import sharding
from gan_jax.errors import UserError
from gan_jax.models import dcgan
from gan_jax.models import layers
from gan_jax.models import r3gan

EXPERIMENTS = ('classifier', 'gan')
CONDITIONINGS = ('projection', 'acgan')
EVAL_SPEC_FIELDS = ('type', 'every', 'num_samples')
# Models whose smallest feature map is `dcgan.start_size` of the image size.
_START_SIZE_MODELS = ('dcgan', 'resnet', 'r3gan')


def _is_int(value) -> bool:
  return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_number(value) -> bool:
  return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _is_section(value) -> bool:
  return isinstance(value, Mapping) or hasattr(value, 'items')


def _interval(low, high, low_open: bool, high_open: bool) -> str:
  """'>= 0', '> 0' or 'in [0, 1)'; '' when unbounded."""
  if high is None:
    return '' if low is None else f'{">" if low_open else ">="} {low}'
  if low is None:
    return f'{"<" if high_open else "<="} {high}'
  return f'in {"(" if low_open else "["}{low}, {high}{")" if high_open else "]"}'


def _integer(section, where: str, name: str, least=None, note: str = '', say_integer=False):
  """`section[name]`, when present, is an int (not a bool) >= `least`."""
  if name not in section:
    return
  value = section[name]
  bound = '' if least is None else f' >= {least}'
  if not _is_int(value):
    raise UserError(f'{where}.{name} must be an integer{bound}{note}, got {value!r}')
  if least is not None and value < least:
    kind = ' an integer' if say_integer else ''
    raise UserError(f'{where}.{name} must be{kind}{bound}{note}, got {value!r}')


def _number(
  section,
  where: str,
  name: str,
  low=None,
  high=None,
  low_open: bool = False,
  high_open: bool = False,
  note: str = '',
):
  """`section[name]`, when present, is a finite int or float in the interval given."""
  if name not in section:
    return
  value = section[name]
  allowed = _interval(low, high, low_open, high_open)
  if not _is_number(value) or not math.isfinite(value):
    allowed = f' {allowed}' if allowed else ''
    raise UserError(f'{where}.{name} must be a finite number{allowed}{note}, got {value!r}')
  below = low is not None and (value <= low if low_open else value < low)
  above = high is not None and (value >= high if high_open else value > high)
  if below or above:
    raise UserError(f'{where}.{name} must be {allowed}{note}, got {value!r}')


def _choice(section, where: str, name: str, choices, kind: str = ''):
  """`section[name]`, when present, is one of `choices`; `kind` names what it is (e.g. 'loss')
  for the error: "unknown loss 'x' (config.loss.name): choose from [...]"."""
  if name in section and section[name] not in choices:
    value = section[name]
    if kind:
      raise UserError(f'unknown {kind} {value!r} ({where}.{name}): choose from {sorted(choices)}')
    raise UserError(f'{where}.{name} {value!r} is not one of {sorted(choices)}')


def _boolean(section, where: str, name: str):
  if name in section and not isinstance(section[name], bool):
    raise UserError(f'{where}.{name} must be True or False, got {section[name]!r}')


def _string(section, where: str, name: str, nonempty: bool = False):
  if name not in section:
    return
  value = section[name]
  if not isinstance(value, str) or (nonempty and not value):
    what = 'a non-empty string' if nonempty else 'a string'
    raise UserError(f'{where}.{name} must be {what}, got {value!r}')


def _check_top(config) -> None:
  """The experiment kind, the seed and the mesh's shape (its fit to the devices is checked
  by sharding.make_mesh, which knows them)."""
  if config.get('experiment') not in EXPERIMENTS:
    raise UserError(
      f'config.experiment {config.get("experiment")!r} is not one of {list(EXPERIMENTS)}'
    )
  _integer(config, 'config', 'seed')
  if 'mesh' in config:
    sharding.check_mesh_spec(config.mesh)


def _check_train(config) -> None:
  """Step counts, intervals and sizes, time limits and the EMA."""
  train = config.get('train')
  if train is None:
    return
  where = 'config.train'
  for name in (
    'num_steps',
    'batch_size',
    'log_every',
    'eval_every',
    'checkpoint_every',
    'checkpoints_to_keep',
  ):
    _integer(train, where, name, 1)
  _number(train, where, 'time_budget_s', 0, note=' (0 = none)')
  _number(train, where, 'progress_every_secs', 0)
  _number(train, where, 'snapshot_every_secs', 0, note=' (0 = none)')
  _number(train, where, 'ema_decay', 0, 1, high_open=True)
  _boolean(train, where, 'ema_warmup')
  _boolean(train, where, 'skip_nonfinite')
  _boolean(train, where, 'async_checkpointing')


def _check_eval(config) -> None:
  """Sample counts, seeds and the truncation of the judged samples."""
  ev = config.get('eval')
  if ev is None:
    return
  where = 'config.eval'
  _integer(ev, where, 'num_samples', 2)
  _integer(ev, where, 'num_grid_samples', 1)
  _integer(ev, where, 'grid_seed')
  _integer(ev, where, 'sample_seed')
  _number(ev, where, 'truncation', 0, note=' (0 = off)')
  _integer(ev, where, 'inception_num_samples', 0, ' (0 = 50,000 on an accelerator, 10,000 on CPU)')
  if ev.get('inception_num_samples') == 1:
    raise UserError(f'{where}.inception_num_samples must be 0 (automatic) or at least 2, got 1')
  _integer(ev, where, 'inception_reference_samples', 0, ' (0 = all)')
  _integer(ev, where, 'cas_num_samples', 0, " (0 = the real training split's size)")
  _integer(ev, where, 'cas_seed')
  for name in (
    'cas_classifier_config',
    'classifier_workdir',
    'reference_split',
    'floor_split',
    'inception_weights',
    'inception_cache_dir',
  ):
    _string(ev, where, name)


def check_evals(config, registry: Mapping | None = None) -> None:
  """`config.evals` (may be absent): NAME -> (type, every, num_samples). `type` must be a key
  of `registry` (unchecked when None) whose class judges `config.experiment`; `every` an
  integer (> 0: every that many steps, 0: at train.eval_every, < 0: only at --mode=eval);
  `num_samples` an integer >= 0 (0 = the eval section's default). Other fields are refused:
  nothing would read them."""
  evals = config.get('evals')
  if evals is None:
    return
  if not _is_section(evals):
    raise UserError(f'config.evals must map names to evaluator settings, got {evals!r}')
  for name, spec in evals.items():
    where = f'config.evals.{name}'
    if not _is_section(spec):
      raise UserError(f'{where} must be a dict of {", ".join(EVAL_SPEC_FIELDS)}, got {spec!r}')
    if 'type' not in spec:
      raise UserError(f'{where} needs a type (the evaluator to run)')
    _string(spec, where, 'type', nonempty=True)
    options = getattr(registry.get(spec.type), 'options', {}) if registry is not None else {}
    allowed = (*EVAL_SPEC_FIELDS, *options)
    unknown = sorted(set(spec.keys()) - set(allowed))
    if unknown and registry is not None:  # Without one, an option cannot be told from a typo.
      raise UserError(
        f'{where}: unknown field(s) {", ".join(unknown)}; allowed: {", ".join(allowed)}'
      )
    for option, default in options.items():
      if option not in spec:
        continue
      if isinstance(default, int):
        _integer(spec, where, option, 1)
      else:
        _string(spec, where, option)
    if registry is not None:
      if spec.type not in registry:
        raise UserError(
          f'{where}: unknown evaluator type {spec.type!r}; '
          f'registered: {", ".join(sorted(registry))}'
        )
      judges = getattr(registry[spec.type], 'experiments', None)
      if judges is not None and config.get('experiment') not in judges:
        raise UserError(
          f'{where}: type {spec.type!r} judges {", ".join(judges)} runs, '
          f'not {config.get("experiment")}'
        )
    _integer(spec, where, 'every', note=' (> 0: steps, 0: train.eval_every, < 0: --mode=eval)')
    _integer(spec, where, 'num_samples', 0, " (0 = the eval section's default)")


def _check_evals(config, registry: Mapping | None = None) -> None:
  check_evals(config, registry)


def _widths(section, where: str, name: str) -> tuple[int, ...]:
  """A tuple of stage widths (ints >= 1; empty = one width for every stage)."""
  widths = section.get(name, ())
  if not isinstance(widths, (tuple, list)) or not all(_is_int(w) and w >= 1 for w in widths):
    raise UserError(f'{where}.{name} must be a tuple of integers >= 1, got {widths!r}')
  return tuple(widths)


def _check_r3gan(model) -> None:
  """R3GAN's options (config.model.r3gan; the module defaults where absent). Each residual
  block expands its stage's width by `expansion` and splits that into groups of
  min(group_size, expanded) channels for its 3x3 conv, as gan_jax/models/r3gan.py does."""
  section = model.get('r3gan') or {}
  where = 'config.model.r3gan'
  _integer(section, where, 'blocks_per_stage', 1)
  _integer(section, where, 'expansion', 1)
  _integer(section, where, 'group_size', 1)
  _integer(section, where, 'd_head_width', 0, ' (0 = none)')
  expansion = section.get('expansion', r3gan.Generator.expansion)
  group_size = section.get('group_size', r3gan.Generator.group_size)
  g_widths = _widths(section, where, 'stage_widths')
  d_widths = _widths(section, where, 'd_stage_widths') or g_widths
  roles = []
  if model.get('generator') == 'r3gan':
    roles.append(('generator', g_widths or (model.get('g_width', r3gan.Generator.width),)))
  if model.get('discriminator') == 'r3gan':
    roles.append(('discriminator', d_widths or (model.get('d_width', r3gan.Discriminator.width),)))
  for role, widths in roles:
    for width in widths:
      expanded = width * expansion
      if expanded % min(group_size, expanded):
        raise UserError(
          f'config.model.r3gan.group_size={group_size} must divide the {expanded} expanded '
          f'channels ({width} x expansion {expansion}) of every {role} stage (or exceed them)'
        )


def _check_model(config) -> None:
  """Model names, widths, precision, conditioning, PacGAN packs and model-specific options."""
  model = config.get('model')
  if model is None:
    return
  where = 'config.model'
  _choice(model, where, 'dtype', tuple(layers.COMPUTE_DTYPES))
  if config.experiment == 'classifier':
    _choice(model, where, 'name', models.CLASSIFIERS, 'classifier')
    return
  _choice(model, where, 'generator', models.GENERATORS, 'generator')
  _choice(model, where, 'discriminator', models.DISCRIMINATORS, 'discriminator')
  for name in ('latent_dim', 'g_width', 'd_width'):
    _integer(model, where, name, 1)
  _boolean(model, where, 'conditional')
  _boolean(model, where, 'spectral_norm')
  _choice(model, where, 'conditioning', CONDITIONINGS)
  _integer(model, where, 'pack', 1, ' (1 = no packing)', say_integer=True)
  _string(model, where, 'features')
  _boolean(model, where, 'vector_modulation')
  conditions.check(model, where)
  if model.get('vector_modulation') and model.get('generator') != 'dcgan':
    raise UserError(
      f'{where}.vector_modulation is for the dcgan generator, not {model.get("generator")!r}'
    )
  pack = model.get('pack', 1)
  if pack > 1 and conditions.names(model):
    raise UserError(
      f'config.model.pack={pack} (PacGAN) is for unconditional models only; '
      'set config.model.conditional=False (and condition=()) or pack=1'
    )
  batch_size = config.get('train', {}).get('batch_size')
  if _is_int(batch_size) and batch_size % pack:
    raise UserError(
      f'config.train.batch_size {batch_size} does not split into packs of {pack} '
      '(config.model.pack)'
    )
  if 'r3gan' in (model.get('generator'), model.get('discriminator')):
    _check_r3gan(model)


def _check_loss(config) -> None:
  """The loss name, penalty weights and their interval, LeCam and AC-GAN settings."""
  loss = config.get('loss')
  if loss is None:
    return
  where = 'config.loss'
  _choice(loss, where, 'name', losses.LOSSES, 'loss')
  for name in ('r1_gamma', 'r2_gamma', 'gp_weight', 'lecam_weight', 'acgan_weight'):
    _number(loss, where, name, 0)
  _number(loss, where, 'regression_weight', 0, low_open=True)
  _number(loss, where, 'mismatch_weight', 0)
  _number(loss, where, 'text_aux_weight', 0)
  _integer(loss, where, 'penalty_every', 1)
  _number(loss, where, 'lecam_decay', 0, 1, high_open=True)


def _check_text(config) -> None:
  """Sentences (gan_jax/captions.py): the held-out compositions, the captions per digit, the
  encoder's sizes; a model conditioned on 'text' needs this section and a projection D."""
  text = config.get('text')
  model = config.get('model') or {}
  parts = conditions.names(model) if config.get('experiment') == 'gan' else ()
  if text is None:
    if conditions.TEXT in parts:
      raise UserError("config.model.condition has 'text' but the config has no text section")
    return
  where = 'config.text'
  if not isinstance(text.get('held_out', ()), (tuple, list)):
    raise UserError(f'{where}.held_out must be a tuple of sentences, got {text.held_out!r}')
  captions.held_out(text.get('held_out', ()))
  _integer(text, where, 'captions_per_image', 1)
  _number(text, where, 'omit_probability', 0, 1, high_open=True)
  _integer(text, where, 'caption_seed')
  for name in ('encoder_width', 'encoder_depth', 'encoder_heads', 'encoder_features'):
    _integer(text, where, name, 1)
  width, heads = text.get('encoder_width', 1), text.get('encoder_heads', 1)
  if _is_int(width) and _is_int(heads) and width % heads:
    raise UserError(f'{where}.encoder_width {width} must split into encoder_heads {heads}')
  _integer(text, where, 'pretrain_steps', 0)
  _boolean(text, where, 'freeze_generator_encoder')
  _number(text, where, 'code_noise', 0, None)
  features, latent = text.get('encoder_features', 1), model.get('latent_dim', 0)
  if text.get('code_noise', 0) and _is_int(features) and _is_int(latent) and features >= latent:
    raise UserError(
      f'{where}.code_noise takes its noise from z: model.latent_dim {latent} must exceed '
      f'encoder_features {features}'
    )
  if conditions.TEXT in parts:
    if model.get('vector_conditioning', 'projection') != 'projection':
      raise UserError(
        "config.model.vector_conditioning: a text model's D judges sentences by 'projection'"
      )


def _check_schedule(config) -> None:
  """The cosine ramps: their length, end fractions and Adam's beta2 start."""
  schedule = config.get('schedule')
  if schedule is None:
    return
  where = 'config.schedule'
  _integer(schedule, where, 'steps', 0, ' (0 = constant)')
  for name in ('learning_rate_final', 'gamma_final'):
    _number(
      schedule,
      where,
      name,
      0,
      note=' (learning_rate_final and gamma_final are fractions of the start values)',
    )
  _number(schedule, where, 'b2_start', 0, 1, high_open=True, note=' (0 = no ramp)')


def _check_optim(config) -> None:
  """Adam's settings: one optimizer (a classifier) or one per network (config.optim.g, .d)."""
  optim = config.get('optim')
  if optim is None:
    return
  if 'learning_rate' in optim:
    groups = {'config.optim': optim}
  else:
    groups = {f'config.optim.{k}': v for k, v in optim.items() if _is_section(v)}
  for where, group in groups.items():
    _number(group, where, 'learning_rate', 0, low_open=True)
    _number(group, where, 'b1', 0, 1, high_open=True)
    _number(group, where, 'b2', 0, 1, high_open=True)


def _check_project(config) -> None:
  """--mode=project's settings (gan_jax/projection.py)."""
  project = config.get('project')
  if project is None:
    return
  where = 'config.project'
  _string(project, where, 'classifier_workdir')
  for name in ('steps', 'restarts', 'candidates', 'batch_size'):
    _integer(project, where, name, 1)
  if project.get('restarts', 1) > project.get('candidates', 1):
    raise UserError('config.project.restarts must be at most config.project.candidates')
  _number(project, where, 'learning_rate', 0, None, low_open=True)
  for name in ('pixel_weight', 'perceptual_weight', 'prior_weight'):
    _number(project, where, name, 0, None)
  _integer(project, where, 'seed', 0)


def _check_augment(config) -> None:
  """The DiffAugment policy names; ADA's settings; a classifier's shift and rotation ranges;
  then the augmentation the section selects (one at a time, with a loss it can read)."""
  aug = config.get('augment')
  if aug is None:
    return
  where = 'config.augment'
  _number(aug, where, 'max_shift', 0, None)
  _number(aug, where, 'max_degrees', 0, 180)
  _number(aug, where, 'ada_target', 0, 1, high_open=True)
  _number(aug, where, 'ada_kimg', 0, None, low_open=True)
  _integer(aug, where, 'ada_interval', 1)
  _number(aug, where, 'ada_p', 0, 1)
  _integer(aug, where, 'ada_ramp_steps', 0)
  _string(aug, where, 'ada_ops')
  if 'policy' not in aug:
    return
  _string(aug, where, 'policy')
  try:
    augment.parse_policy(aug.policy)
  except ValueError as e:
    raise UserError(f'config.augment.policy: {e}') from None
  if config.get('experiment') == 'gan':
    augmentations.from_config(config)


def _check_data(config) -> None:
  """The source and the settings of folder and Stacked MNIST sources (data.load reads the
  source itself)."""
  data = config.get('data')
  if data is None:
    return
  where = 'config.data'
  _string(data, where, 'source', nonempty=True)
  _string(data, where, 'tfds_data_dir')
  _string(data, where, 'eval_split', nonempty=True)
  _string(data, where, 'eval_source')
  _integer(data, where, 'image_size', 1)
  _choice(data, where, 'channels', (1, 3))
  _integer(data, where, 'stacked_size', 1)
  _integer(data, where, 'per_class', 0)
  _integer(data, where, 'per_class_seed', 0)


def _check_finite(node, where: str) -> None:
  """No float anywhere in the config (fields the sections above do not know included) is NaN
  or infinite: a run with one dies at its first step, or never stops."""
  items = node.items() if _is_section(node) else enumerate(node)
  for key, value in items:
    path = f'{where}.{key}' if _is_section(node) else f'{where}[{key}]'
    if _is_section(value) or isinstance(value, (tuple, list)):
      _check_finite(value, path)
    elif isinstance(value, float) and not math.isfinite(value):
      raise UserError(f'{path} must be a finite number, got {value!r}')


def check(config, evaluators: Mapping | None = None) -> None:
  """Validates a whole experiment config before anything is built: a one-line UserError for
  the first bad field. `evaluators` is the evaluator registry `config.evals` types must be
  in (None: types unchecked)."""
  _check_top(config)
  _check_data(config)
  _check_train(config)
  _check_eval(config)
  _check_evals(config, evaluators)
  _check_model(config)
  _check_loss(config)
  _check_schedule(config)
  _check_optim(config)
  _check_augment(config)
  _check_project(config)
  _check_text(config)
  _check_finite(config, 'config')


def check_data_fits(config, image_shape, num_classes: int) -> None:
  """What a GAN config asks of its data, once the source is open: labels for a conditional
  model, an image size the models can reach from their smallest map, and one R3GAN stage
  width per resolution."""
  if config.experiment != 'gan':
    return
  model, source = config.model, config.data.source
  if conditions.LABEL in conditions.names(model) and num_classes < 2:
    raise UserError(
      'config.model.conditional: a conditional model needs labelled data; '
      f'{source} has {num_classes} class(es)'
    )
  height, width = image_shape[:2]
  for role in ('generator', 'discriminator'):
    name = model.get(role)
    if name in _START_SIZE_MODELS:
      try:
        if height != width:
          raise ValueError('images must be square')
        _, upsamplings = dcgan.start_size(height)
      except ValueError as e:
        raise UserError(
          f"config.model.{role} '{name}' cannot handle {source}'s {height}x{width} images: {e}"
        ) from None
    elif name == 'mlp' and (height % 4 or width % 4):
      raise UserError(
        f"config.model.{role} 'mlp' needs image sizes divisible by 4; {source} has {height}x{width}"
      )
    downs = (model.get('resnet') or {}).get('down_blocks')
    if name == 'resnet' and role == 'discriminator' and downs is not None:
      if not 1 <= downs <= upsamplings:
        raise UserError(
          f'config.model.resnet.down_blocks={downs}: {height} px images allow 1..{upsamplings}'
        )
    if name == 'r3gan':
      section = model.get('r3gan') or {}
      field = 'stage_widths'
      if role == 'discriminator' and section.get('d_stage_widths'):
        field = 'd_stage_widths'
      widths, stages = section.get(field, ()), upsamplings + 1
      if widths and len(widths) != stages:
        raise UserError(
          f'config.model.r3gan.{field} has {len(widths)} entries; these images need '
          f'{stages} (one per resolution, smallest first)'
        )


def check_hardware(hardware) -> None:
  """A hardware config (gan_jax/hardware.py): `cpu_devices` and `conv_batch_slices`,
  integers >= 0 (0 = JAX's default device count, automatic slicing)."""
  _integer(hardware, 'hardware', 'cpu_devices', 0, ' (0 = JAX default)', say_integer=True)
  _integer(hardware, 'hardware', 'conv_batch_slices', 0, ' (0 = automatic)', say_integer=True)
