"""Resolving --mode=sample's requests into the condition of each image to make (a `Plan`);
every bad request fails here, before a checkpoint is read. gan_jax/sample.py generates the
images and writes the files. The requests (gan_jax/conditions.py):
  --condition='digit=7,thickness=3.5,slant=0.3'   one request, in morpho.py's units
  --conditions_file=FILE                          one request per line ('#' comments)
  --like=PATH                                     an image, a folder of images, or an .npy of
                                                  feature vectors (models conditioned on features)
  --prompt='a thick seven leaning right'          a sentence (models conditioned on text,
  --prompts_file=FILE                             gan_jax/captions.py); one per line
`num_samples` images per request. A part a request leaves out comes from the training rows
nearest to what it names (conditions.Table.draw_rows).
"""

import dataclasses
import hashlib
import json
import os

import numpy as np

from gan_jax import condition_requests
from gan_jax import conditions as conditions_lib
from gan_jax import data
from gan_jax import experiment as experiment_lib
from gan_jax.errors import UserError


@dataclasses.dataclass
class Request:
  """What --condition, --conditions_file or --like asked for."""

  condition: str = ''
  conditions_file: str = ''
  like: str = ''
  prompt: str = ''
  prompts_file: str = ''
  projected: str = ''  # A projected.npz (gan_jax/edits.py), with the next two.
  edit: str = ''
  edits_file: str = ''

  @classmethod
  def fields(cls) -> list[str]:
    return [f.name for f in dataclasses.fields(cls)]

  @property
  def sentences(self) -> bool:
    return bool(self.prompt or self.prompts_file)

  @property
  def given(self) -> list[str]:
    """The request flags given (--edit and --edits_file go with --projected)."""
    edits = ('edit', 'edits_file') if self.projected else ()
    return [f'--{k}' for k, v in dataclasses.asdict(self).items() if v and k not in edits]


def check(config, request: Request) -> None:
  """The refusals that need no checkpoint: several requests at once, a sentence for a model
  not conditioned on text, any request for an unconditional model."""
  if len(request.given) > 1:
    raise UserError(f'give one of {", ".join(request.given)}, not several')
  if (request.edit or request.edits_file) and not request.projected:
    raise UserError('--edit and --edits_file edit projected images: give --projected too')
  if request.edit and request.edits_file:
    raise UserError('give --edit or --edits_file, not both')
  if request.projected:
    refuse_text(config, '--projected')
  if request.sentences and conditions_lib.TEXT not in conditions_lib.names(config.model):
    raise UserError(
      f'{request.given[0]}: this model is not text-conditioned (config.model.condition has no '
      "'text'; see configs/mnist_text.py)"
    )
  if request.given and not request.projected and not conditions_lib.names(config.model):
    raise UserError(f'{request.given[0]}: this model is unconditional (config.model.condition)')


def refuse_text(config, flag: str) -> None:
  """Projection (and so editing) needs a condition measured from an image: a one-line
  UserError for a text-conditioned model."""
  if conditions_lib.TEXT in conditions_lib.names(config.model):
    raise UserError(
      f'{flag}: text-conditioned models cannot be projected (no sentence is measured from an '
      'image); project a model conditioned on labels or attributes'
    )


@dataclasses.dataclass
class Plan:
  """The samples to make: their condition, the request each answers, and what to record."""

  condition: object  # None, labels, or a condition dict (gan_jax/conditioning/), one row per image.
  per_request: int
  rows: int  # Requests (grid rows); 0 = no request.
  arrays: dict  # Extra per-image arrays for samples.npz.
  key: str  # A short hash of the request ('' = none).
  real: np.ndarray | None = None  # --like / --projected images: the first column of the grid.
  z: np.ndarray | None = None  # Each image's noise, when the plan fixes it (--projected).


def digest(*parts) -> str:
  """A short hash of a request (bytes, or anything JSON writes), for folder names."""
  sha = hashlib.sha256()
  for part in parts:
    sha.update(part if isinstance(part, bytes) else json.dumps(part, sort_keys=True).encode())
  return sha.hexdigest()[:8]


def _request_table(experiment) -> conditions_lib.Table:
  """The table requests are read against; a one-line error for an unconditional model."""
  if experiment.conditions is not None:
    return experiment.conditions
  if experiment.gan.num_classes:
    return conditions_lib.Table.labels_only(experiment.gan.num_classes)
  raise UserError('this model is unconditional (config.model.condition)')


def lines(flag: str, path: str) -> list[tuple[int, str]]:
  """(line number, text) of a request file's non-blank lines, '#' comments removed; a file
  that is not UTF-8 text is a one-line error."""
  if not os.path.isfile(path):
    raise UserError(f'{flag}: no file {path!r}')
  with open(path, 'rb') as f:
    raw = f.read()
  try:
    text = raw.decode('utf-8')
  except UnicodeDecodeError as e:
    raise UserError(f'{flag}: {path!r} is not a UTF-8 text file (byte {e.start})') from None
  if '\x00' in text:
    raise UserError(f'{flag}: {path!r} is not a text file (it holds NUL bytes)')
  numbered = [(n, line.split('#', 1)[0].strip()) for n, line in enumerate(text.splitlines(), 1)]
  numbered = [(n, text) for n, text in numbered if text]
  if not numbered:
    raise UserError(f'{flag}: {path!r} holds no requests')
  return numbered


def read_conditions_file(table, path: str) -> list[dict]:
  return [
    condition_requests.parse(table, text, f'--conditions_file {path}, line {n}')
    for n, text in lines('--conditions_file', path)
  ]


def _sentence_plan(experiment, request: Request, num_samples: int) -> Plan:
  """--prompt / --prompts_file: each sentence read by rule (a bad one fails here), then by the
  model's encoders. write_samples has refused a model without text before restoring it."""
  table = experiment.conditions
  if request.prompt:
    sentences, wheres = [request.prompt], ['--prompt']
  else:
    numbered = lines('--prompts_file', request.prompts_file)
    sentences = [text for _, text in numbered]
    wheres = [f'--prompts_file {request.prompts_file}, line {n}' for n, _ in numbered]
  condition, named = table.text.prompt_condition(sentences, num_samples, wheres)
  per_image = lambda values: np.repeat(values, num_samples)
  arrays = {
    'prompt': per_image(np.array([' '.join(s.split()) for s in sentences], dtype=np.str_)),
    'labels': per_image(np.array([n.digit for n in named], np.int32)),
    'request_index': per_image(np.arange(len(sentences))),
  }
  return Plan(condition, num_samples, len(sentences), arrays, digest(sentences))


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
    arrays = condition_arrays(experiment.conditions, condition)
    if experiment.has_text:  # Each image takes a training caption of its digit.
      vocabulary = experiment.conditions.text.vocabulary
      arrays['labels'] = labels
      ids = condition[conditions_lib.TEXT]['ids']
      arrays['prompt'] = np.array([vocabulary.decode(t) for t in ids], dtype=np.str_)
    return Plan(condition, num_samples, 0, arrays, '')
  if request.sentences:
    return _sentence_plan(experiment, request, num_samples)
  table = _request_table(experiment)
  if request.like:
    features, real = _like_features(config, experiment, request.like)
    condition = table.feature_condition(features, num_samples)
    arrays = condition_arrays(table, condition)
    arrays['like_index'] = np.repeat(np.arange(len(features)), num_samples)
    key = digest(features.tobytes())
    return Plan(condition, num_samples, len(features), arrays, key, real)
  if request.condition:
    requests = [condition_requests.parse(table, request.condition)]
  else:
    requests = read_conditions_file(table, request.conditions_file)
  condition = table.requests_condition(requests, num_samples, seed, seeds)
  arrays = {'request_index': np.repeat(np.arange(len(requests)), num_samples)}
  asked = sorted({k for r in requests for k in r} - {conditions_lib.LABEL})
  arrays.update(condition_arrays(table, condition, asked))
  return Plan(condition, num_samples, len(requests), arrays, digest(requests))


def condition_arrays(table, condition, attributes=None) -> dict:
  """samples.npz's per-image record of a condition: labels, and each attribute in natural
  units (every conditioned attribute unless `attributes` names some)."""
  labels, vector = condition.get(conditions_lib.LABEL), table.vector_of(condition)
  arrays = {} if labels is None else {'labels': np.asarray(labels, np.int32)}
  if vector is not None:
    raw = np.asarray(vector, np.float64) * table.std + table.mean
    names = table.conditioned_attributes if attributes is None else attributes
    for name in names:
      arrays[name] = raw[:, table.column(name)].astype(np.float32)
  return arrays
