"""--mode=sample: images from a trained generator, as PNG files, an .npz and a grid.

Without a request the images cycle over the classes (conditional models) and take training
rows' attributes. A request draws to order (gan_jax/conditions.py):
  --condition='digit=7,thickness=3.5,slant=0.3'   one request, in morpho.py's units
  --conditions_file=FILE                          one request per line ('#' comments)
  --like=PATH                                     an image, a folder of images, or an .npy of
                                                  feature vectors (models conditioned on features)
  --prompt='a thick seven leaning right'          a sentence (models conditioned on text,
  --prompts_file=FILE                             gan_jax/captions.py); one per line
`--num_samples` images per request. A part a request leaves out comes from the training rows
nearest to what it names (conditions.Table.draw_rows).
"""

import dataclasses
import hashlib
import json
import os

import jax
from jax.experimental import multihost_utils
import numpy as np

from gan_jax import conditions as conditions_lib
from gan_jax import data
from gan_jax import experiment as experiment_lib
from gan_jax import generation
from gan_jax import pictures
from gan_jax import progress
from gan_jax.errors import UserError

GRID_COLUMNS = 16  # Images per request shown in grid.png.
SEED_BATCH = 64  # --seeds: every image made in batches of this shape, padded.
MAX_SEEDS = 1_000_000


def parse_seeds(text: str) -> list[int]:
  """'0-9,42' -> [0, 1, ..., 9, 42]; a one-line UserError for anything else (negative,
  reversed or malformed ranges, a seed given twice, over 2**32 - 1 or MAX_SEEDS of them)."""
  seeds = []
  for item in text.split(','):
    item = item.strip()
    first, dash, last = item.partition('-')
    if not (first.isdigit() and (not dash or last.isdigit())):
      hint = ' (seeds are non-negative)' if item.startswith('-') else ''
      raise UserError(f"--seeds: {item!r} is not a seed or a range like '0-63'{hint}")
    first, last = int(first), int(last) if dash else int(first)
    if last < first:
      raise UserError(f'--seeds: range {item!r} runs backwards')
    if last >= 2**32:
      raise UserError(f'--seeds: {last} is over the largest seed, {2**32 - 1}')
    if len(seeds) + last - first + 1 > MAX_SEEDS:
      raise UserError(f'--seeds: more than {MAX_SEEDS:,} seeds')
    seeds.extend(range(first, last + 1))
  if len(set(seeds)) != len(seeds):
    twice = next(s for i, s in enumerate(seeds) if s in seeds[:i])
    raise UserError(f'--seeds: seed {twice} is given twice')
  return seeds


def seeds_name(seeds) -> str:
  """A short name of a seed list for folder names: runs collapsed ('0-9,42'), or a hash."""
  runs, start = [], 0
  for i in range(1, len(seeds) + 1):
    if i == len(seeds) or seeds[i] != seeds[i - 1] + 1:
      runs.append(str(seeds[start]) if i - start == 1 else f'{seeds[start]}-{seeds[i - 1]}')
      start = i
  name = ','.join(runs)
  return name if len(name) <= 40 else _hash(seeds)


@dataclasses.dataclass
class Request:
  """What --condition, --conditions_file or --like asked for."""

  condition: str = ''
  conditions_file: str = ''
  like: str = ''
  prompt: str = ''
  prompts_file: str = ''

  @property
  def sentences(self) -> bool:
    return bool(self.prompt or self.prompts_file)

  @property
  def given(self) -> list[str]:
    return [f'--{k}' for k, v in dataclasses.asdict(self).items() if v]


@dataclasses.dataclass
class Plan:
  """The samples to make: their condition, the request each answers, and what to record."""

  condition: object  # None, labels, or conditions.Condition, one row per image.
  per_request: int
  rows: int  # Requests (grid rows); 0 = no request.
  arrays: dict  # Extra per-image arrays for samples.npz.
  key: str  # A short hash of the request ('' = none).
  real: np.ndarray | None = None  # --like images: the first column of the grid.


def _hash(*parts) -> str:
  digest = hashlib.sha256()
  for part in parts:
    digest.update(part if isinstance(part, bytes) else json.dumps(part, sort_keys=True).encode())
  return digest.hexdigest()[:8]


def _request_table(experiment) -> conditions_lib.Table:
  """The table requests are read against; a one-line error for an unconditional model."""
  if experiment.conditions is not None:
    return experiment.conditions
  if experiment.gan.num_classes:
    return conditions_lib.Table.labels_only(experiment.gan.num_classes)
  raise UserError('this model is unconditional (config.model.condition)')


def _lines(flag: str, path: str) -> list[tuple[int, str]]:
  """(line number, text) of a request file's non-blank lines, '#' comments removed."""
  if not os.path.isfile(path):
    raise UserError(f'{flag}: no file {path!r}')
  with open(path) as f:
    lines = [(n, line.split('#', 1)[0].strip()) for n, line in enumerate(f, 1)]
  lines = [(n, text) for n, text in lines if text]
  if not lines:
    raise UserError(f'{flag}: {path!r} holds no requests')
  return lines


def read_conditions_file(table, path: str) -> list[dict]:
  return [
    table.parse_request(text, f'--conditions_file {path}, line {n}')
    for n, text in _lines('--conditions_file', path)
  ]


def _sentence_plan(experiment, request: Request, num_samples: int) -> Plan:
  """--prompt / --prompts_file: each sentence read by rule (a bad one fails here), then by the
  model's encoders. write_samples has refused a model without text before restoring it."""
  table = experiment.conditions
  if request.prompt:
    sentences, wheres = [request.prompt], ['--prompt']
  else:
    lines = _lines('--prompts_file', request.prompts_file)
    sentences = [text for _, text in lines]
    wheres = [f'--prompts_file {request.prompts_file}, line {n}' for n, _ in lines]
  condition, named = table.text.prompt_condition(sentences, num_samples, wheres)
  per_image = lambda values: np.repeat(values, num_samples)
  arrays = {
    'prompt': per_image(np.array([' '.join(s.split()) for s in sentences], dtype=np.str_)),
    'labels': per_image(np.array([n.digit for n in named], np.int32)),
    'request_index': per_image(np.arange(len(sentences))),
  }
  return Plan(condition, num_samples, len(sentences), arrays, _hash(sentences))


def _like_features(config, experiment, path: str):
  """(raw features (n, F), the images or None) of --like's images or .npy."""
  table = experiment.conditions
  if table is None or conditions_lib.FEATURES not in table.parts:
    raise UserError("--like needs a model conditioned on 'features' (config.model.condition)")
  if path.endswith('.npy'):
    if not os.path.isfile(path):
      raise UserError(f'--like: no file {path!r}')
    try:
      features = np.load(path, allow_pickle=False)
    except ValueError as e:
      raise UserError(f'--like: {path!r} is not a plain .npy array ({e})') from None
    if features.ndim == 1:
      features = features[None]
    if not np.issubdtype(features.dtype, np.number) or not np.all(np.isfinite(features)):
      raise UserError(f'--like: {path!r} must hold finite numbers')
    return features.astype(np.float32), None
  source_features = config.model.features
  if source_features.endswith('.npy'):
    raise UserError(
      f'--like: this model was trained on the features in {source_features!r}, which cannot '
      'be computed for new images; pass an .npy of feature vectors'
    )
  images, _ = data.read_images(path, experiment.gan.image_shape)
  return experiment_lib.load_features(source_features, images), images


def plan(config, experiment, num_samples: int, seed: int, request: Request, seeds=None) -> Plan:
  """What to generate for `request` (or without one); every bad request fails here. With
  `seeds`, one image per seed (per request), whatever it draws drawn with its seed alone; the
  class, when no request names it, is the seed modulo the number of classes."""
  if seeds is not None:
    num_samples = len(seeds)
  if not request.given:
    classes = experiment.num_classes
    index = np.arange(num_samples) if seeds is None else np.asarray(seeds, np.int64)
    labels = (index % classes).astype(np.int32) if classes else None
    if experiment.conditions is None:
      return Plan(labels, num_samples, 0, {} if labels is None else {'labels': labels}, '')
    condition = experiment.conditions_for(num_samples, labels, seed, seeds)
    arrays = _condition_arrays(experiment.conditions, condition)
    if experiment.has_text:  # Each image takes a training caption of its digit.
      vocabulary = experiment.conditions.text.vocabulary
      arrays['labels'] = labels
      arrays['prompt'] = np.array([vocabulary.decode(t) for t in condition.text], dtype=np.str_)
    return Plan(condition, num_samples, 0, arrays, '')
  if request.sentences:
    return _sentence_plan(experiment, request, num_samples)
  table = _request_table(experiment)
  if request.like:
    features, real = _like_features(config, experiment, request.like)
    condition = table.feature_condition(features, num_samples)
    arrays = _condition_arrays(table, condition)
    arrays['like_index'] = np.repeat(np.arange(len(features)), num_samples)
    key = _hash(features.tobytes())
    return Plan(condition, num_samples, len(features), arrays, key, real)
  if request.condition:
    requests = [table.parse_request(request.condition)]
  else:
    requests = read_conditions_file(table, request.conditions_file)
  condition = table.requests_condition(requests, num_samples, seed, seeds)
  if table.vector_size == 0:  # A label-only model takes the labels alone.
    condition = condition.label
  arrays = {'request_index': np.repeat(np.arange(len(requests)), num_samples)}
  asked = sorted({k for r in requests for k in r} - {conditions_lib.LABEL})
  arrays.update(_condition_arrays(table, condition, asked))
  return Plan(condition, num_samples, len(requests), arrays, _hash(requests))


def _condition_arrays(table, condition, attributes=None) -> dict:
  """samples.npz's per-image record of a condition: labels, and each attribute in natural
  units (every conditioned attribute unless `attributes` names some)."""
  labels, vector = conditions_lib.split(condition)
  arrays = {} if labels is None else {'labels': np.asarray(labels, np.int32)}
  if vector is not None:
    raw = np.asarray(vector, np.float64) * table.std + table.mean
    names = table.conditioned_attributes if attributes is None else attributes
    for name in names:
      arrays[name] = raw[:, table.column(name)].astype(np.float32)
  return arrays


def write_samples(
  config,
  workdir: str,
  num_samples: int,
  seed: int,
  truncation: float = 0.0,
  hardware=None,
  request: Request | None = None,
  seeds: list[int] | None = None,
) -> str:
  """Writes `num_samples` images (per request, if any) from the EMA generator of the latest
  checkpoint; returns the folder.

  The folder holds one PNG per image, `samples.npz` (uint8 `images`; `labels` for models
  conditioned on the label or a sentence; per image the request's attributes by name,
  `request_index`, `like_index` for --like, and `prompt`, a fixed-width unicode array, for
  sentences), `grid.png` (one row per class, or per request) and, for models without a
  condition vector and no request, `interpolation.png` (a slerp between two noise vectors).
  The folder's name carries a short hash of the request.

  With `seeds` (parse_seeds), image k of each request is a function of seeds[k] alone, made in
  a batch of fixed shape, so a seed gives the same image bit for bit whatever else is asked;
  files are named by seed, samples.npz holds `seeds`, and grid.png shows the images in seed
  order (one row per request, if any). `num_samples` and `seed` are then unused.
  """
  request = request or Request()
  if seeds is not None:
    if not seeds:
      raise UserError('--seeds names no seed')
    num_samples = len(seeds)
  if num_samples <= 0:
    raise UserError(f'--num_samples must be positive, got {num_samples}')
  if truncation < 0:
    raise UserError(f'--truncation must be >= 0 (0 = off), got {truncation}')
  if len(request.given) > 1:
    raise UserError(f'give one of {", ".join(request.given)}, not several')
  if request.sentences and conditions_lib.TEXT not in conditions_lib.names(config.model):
    raise UserError(
      f'{request.given[0]}: this model is not text-conditioned (config.model.condition has no '
      "'text'; see configs/mnist_text.py)"
    )
  if request.given and not conditions_lib.names(config.model):
    raise UserError(f'{request.given[0]}: this model is unconditional (config.model.condition)')
  experiment, step, state = experiment_lib.restore_for_inference(config, workdir, hardware=hardware)
  gan = experiment.gan
  todo = plan(config, experiment, num_samples, seed, request, seeds)
  name = f'step_{step:06d}_' + (
    f'seed_{seed}_n{num_samples}' if seeds is None else f'seeds_{seeds_name(seeds)}'
  )
  name += f'_trunc{truncation:g}' if truncation > 0 else ''
  if todo.key:
    name += f'_{request.given[0][2:]}_{todo.key}'
  out_dir = os.path.join(os.path.abspath(workdir), 'generated', name)
  if os.path.exists(out_dir):
    raise UserError(f'{out_dir!r} already exists; choose another --sample_seed or --num_samples')
  if jax.process_count() > 1:  # Every process checks before process 0 can create it.
    multihost_utils.sync_global_devices(f'sample: checked {out_dir}')
  total = num_samples * max(todo.rows, 1)
  z_rng, strip_rng = jax.random.split(jax.random.key(seed))
  shown = jax.process_index() == 0
  meter = progress.Meter(total, 'sample: generating', 'images', enabled=shown)
  if seeds is None:
    z = generation.truncated_normal(z_rng, (total, gan.latent_dim), truncation)
    images = generation.ema_images(gan, state, z, todo.condition, meter=meter)
    names = [f'{i:06d}' for i in range(total)]
    arrays = {'seed': np.int64(seed)}
  else:
    z = np.tile(generation.seed_noise(seeds, gan.latent_dim, truncation), (max(todo.rows, 1), 1))
    images = generation.ema_images(gan, state, z, todo.condition, SEED_BATCH, True, meter)
    names = [f'seed{s:04d}' for s in seeds]
    if todo.rows:
      names = [f'r{r:03d}_{n}' for r in range(todo.rows) for n in names]
    arrays = {'seeds': np.tile(np.asarray(seeds, np.int64), max(todo.rows, 1))}
  if jax.process_index() != 0:
    return out_dir
  tmp_dir = out_dir + '.partial'
  os.makedirs(tmp_dir, exist_ok=True)
  meter.close()
  meter = progress.Meter(total, 'sample: writing', 'images', enabled=shown)
  for name, image in zip(names, images):
    pictures.save_png(os.path.join(tmp_dir, f'{name}.png'), image, min_size=0)
    meter.update(1)
  meter.close()
  arrays = {'images': images, 'step': np.int64(step), **arrays, **todo.arrays}
  np.savez(os.path.join(tmp_dir, 'samples.npz'), **arrays)
  grid = _grid(gan, todo, images) if seeds is None or todo.rows else pictures.grid(images[:256])
  pictures.save_png(os.path.join(tmp_dir, 'grid.png'), grid)
  if seeds is None and gan.vector_size == 0 and not gan.text_words and not todo.rows:
    pictures.save_png(
      os.path.join(tmp_dir, 'interpolation.png'),
      generation.interpolation_strip(gan, state, strip_rng, truncation=truncation),
    )
  os.replace(tmp_dir, out_dir)
  return out_dir


def _grid(gan, todo: Plan, images) -> np.ndarray:
  if todo.rows:  # One row per request (a --like row starts with its real image).
    shown = min(todo.per_request, GRID_COLUMNS)
    rows = images.reshape(todo.rows, todo.per_request, *images.shape[1:])[:, :shown]
    if todo.real is not None:
      rows = np.concatenate([todo.real[:, None], rows], axis=1)
    return pictures.grid(rows.reshape(-1, *images.shape[1:]), rows=todo.rows)
  labels = todo.arrays.get('labels')
  if labels is not None:
    classes = gan.num_classes or int(labels.max()) + 1  # A text model's digits.
    by_class, _ = generation.class_rows(images, labels, classes)
    return pictures.grid(by_class, rows=classes)
  return pictures.grid(images[:256])
