"""What a GAN is conditioned on: the condition vector, its table of training rows, and requests.

`config.model.condition` names the parts, in order:
  label      the class label (embedded in G, projected or classified by D, as before)
  area, length, thickness, slant, width, height
             a morphometric of the image (gan_jax/morpho.py), measured on the training set once
             and cached per data content, standardised with the training mean and deviation
  features   a per-image feature vector: the penultimate layer of the classifier trained in
             `config.model.features` (a workdir), or a user's (N, F) `.npy` aligned with the
             training split; standardised per dimension
  text       a sentence about the digit (gan_jax/captions.py), read by text encoders of G and D
             (gan_jax/models/text.py); a condition of its own, set up by `config.text`
Empty means `('label',)` when `config.model.conditional` is True, else unconditional.

Everything but the label forms the condition *vector*, (B, k) float32 in the batch under
'condition'. A conditional GAN's fakes take whole training rows (a digit's label and its
attributes together), never independently drawn parts. A *request* (--mode=sample --condition)
fixes some parts in their natural units; the rest are drawn from the training rows nearest to
it (`Table.draw_rows`).
"""

from collections.abc import Mapping, Sequence
import dataclasses
import math
from typing import Any, NamedTuple

import numpy as np

from gan_jax import captions
from gan_jax import morpho
from gan_jax.errors import UserError

LABEL = 'label'
FEATURES = 'features'
TEXT = 'text'
PARTS = (LABEL, *morpho.ATTRIBUTES, FEATURES, TEXT)
ALIASES = {'digit': LABEL}
# A request's omitted parts come from this many of the training rows nearest to it.
NEAREST_ROWS = 32
# A requested attribute may lie at most this many training deviations outside the training range.
MAX_DEVIATIONS_OUTSIDE = 3.0


class Condition(NamedTuple):
  """A batch's condition: int32 labels (B,) or None, float32 vector (B, k) or None, int32
  sentence word ids (B, L) or None, and what each sentence names, (B, 3) int32 digit,
  thickness and slant tercile (-1: not named; gan_jax/captions.py), or None."""

  label: Any
  vector: Any
  text: Any = None
  named: Any = None


def split(condition) -> tuple[Any, Any]:
  """(labels, vector) of a Condition, or of bare labels (label-only models pass those)."""
  if isinstance(condition, Condition):
    return condition.label, condition.vector
  return condition, None


def text_of(condition):
  """The sentence word ids of a Condition, else None."""
  return condition.text if isinstance(condition, Condition) else None


def names(model_config) -> tuple[str, ...]:
  """The parts a GAN is conditioned on (see the module docstring)."""
  condition = tuple(model_config.get('condition', ()) or ())
  if condition:
    return condition
  return (LABEL,) if model_config.get('conditional') else ()


def vector_names(parts: Sequence[str]) -> tuple[str, ...]:
  """The parts in the condition vector: every part but the label and the text, in order."""
  return tuple(p for p in parts if p not in (LABEL, TEXT))


def attribute_names(parts: Sequence[str]) -> tuple[str, ...]:
  return tuple(p for p in parts if p in morpho.ATTRIBUTES)


def check(model_config, where: str = 'config.model') -> None:
  """`condition` names known parts once each, agrees with `conditional`, and `features` names
  where the features come from."""
  raw = model_config.get('condition', ())
  if isinstance(raw, str) or not isinstance(raw, Sequence):
    raise UserError(
      f"{where}.condition must be a tuple of names, e.g. ('label', 'thickness'), got {raw!r}"
    )
  for part in raw:
    if part not in PARTS:
      raise UserError(f'{where}.condition: unknown part {part!r}: choose from {list(PARTS)}')
  if len(set(raw)) != len(raw):
    raise UserError(f'{where}.condition names a part twice: {tuple(raw)}')
  conditional = model_config.get('conditional', False)
  if raw and conditional != (LABEL in raw):
    raise UserError(
      f'{where}.conditional={conditional} contradicts {where}.condition={tuple(raw)}: '
      f'conditional=True means the label is part of the condition (set both, or leave condition '
      'empty)'
    )
  features = model_config.get('features', '')
  if FEATURES in raw and not features:
    raise UserError(
      f"{where}.condition has 'features' but {where}.features is empty: name a classifier "
      'workdir or an .npy of (N, F) features aligned with the training split'
    )
  if features and FEATURES not in raw:
    raise UserError(f"{where}.features is set but {where}.condition has no 'features'")
  if TEXT in raw and len(raw) > 1:
    raise UserError(
      f"{where}.condition: 'text' is a condition of its own (the sentence names the digit and "
      f'its attributes), got {tuple(raw)}'
    )
  head = model_config.get('vector_conditioning', 'projection')
  if head not in ('projection', 'regression'):
    raise UserError(
      f"{where}.vector_conditioning {head!r} is not one of ['projection', 'regression']"
    )


@dataclasses.dataclass
class TextRows:
  """The training rows' sentences (gan_jax/captions.py): each digit's thickness and slant
  terciles (`codes`, (N, 2)) and, for a text-conditioned model, `per_image` captions of it as
  word ids (N, K, L) with the terciles each names (N, K, 2; -1 = left out)."""

  vocabulary: captions.Vocabulary
  terciles: captions.Terciles
  codes: np.ndarray
  held_out: list  # captions.Named compositions whose digits were taken out of training
  kept: np.ndarray  # indices of the training split's examples kept (the rest are held out)
  ids: np.ndarray | None = None
  named: np.ndarray | None = None

  def prompt_condition(self, sentences, per_sentence: int, where='--prompt'):
    """(Condition of `per_sentence` samples per sentence, what each names): every sentence
    read by rule first, so a bad one is a one-line error naming `where` (one for all, or one
    per sentence)."""
    wheres = [where] * len(sentences) if isinstance(where, str) else list(where)
    named = [captions.parse(s, w, self.vocabulary.words) for s, w in zip(sentences, wheres)]
    ids = np.stack([self.vocabulary.encode(s, w) for s, w in zip(sentences, wheres)])
    return Condition(None, None, np.repeat(ids, per_sentence, axis=0)), named


@dataclasses.dataclass
class Table:
  """The training set's conditions, row i for example i: labels, raw attributes (in
  morpho.py's units), raw features, and the standardised vector the networks see."""

  parts: tuple[str, ...]
  labels: np.ndarray  # (N,) int32
  attributes: dict[str, np.ndarray]  # name -> (N,) float64, every morphometric measured
  features: np.ndarray | None  # (N, F) float32 raw
  mean: np.ndarray  # (k,) of the vector's columns
  std: np.ndarray  # (k,)
  num_classes: int
  text: TextRows | None = None  # With a `config.text` section.

  @classmethod
  def labels_only(cls, num_classes: int) -> 'Table':
    """The table of a label-only model: one row per class, which is all a request needs."""
    return cls(
      (LABEL,),
      np.arange(num_classes, dtype=np.int32),
      {},
      None,
      np.zeros(0),
      np.zeros(0),
      num_classes,
    )

  @property
  def vector_parts(self) -> tuple[str, ...]:
    return vector_names(self.parts)

  @property
  def conditioned_attributes(self) -> tuple[str, ...]:
    return attribute_names(self.parts)

  @property
  def has_label(self) -> bool:
    return LABEL in self.parts

  @property
  def vector_size(self) -> int:
    return len(self.mean)

  @property
  def has_text(self) -> bool:
    return TEXT in self.parts

  def raw_vector(self, rows) -> np.ndarray:
    """(n, k) unstandardised vector columns of training rows."""
    columns = [self.attributes[a][rows][:, None] for a in self.conditioned_attributes]
    if FEATURES in self.parts:
      columns.append(self.features[rows])
    return np.concatenate(columns, axis=1).astype(np.float64)

  def standardize(self, raw: np.ndarray) -> np.ndarray:
    return ((np.asarray(raw, np.float64) - self.mean) / self.std).astype(np.float32)

  def vector(self, rows=slice(None)) -> np.ndarray:
    return self.standardize(self.raw_vector(rows))

  def column(self, name: str) -> int:
    """The vector column of attribute `name`."""
    return self.conditioned_attributes.index(name)

  def condition(self, rows, overrides: Mapping[str, np.ndarray] | None = None) -> Condition:
    """The Condition of training rows, with attributes replaced by `overrides` (raw units,
    one value per row)."""
    rows = np.asarray(rows)
    labels = self.labels[rows].astype(np.int32) if self.has_label else None
    if overrides and LABEL in overrides:
      labels = np.asarray(overrides[LABEL], np.int32)
    if self.has_text:  # Each row's first caption (captions are in a random order).
      return Condition(None, None, self.text.ids[rows, 0])
    if not self.vector_parts:
      return Condition(labels, None)
    raw = self.raw_vector(rows)
    for name, values in (overrides or {}).items():
      if name != LABEL:
        raw[:, self.column(name)] = values
    return Condition(labels, self.standardize(raw))

  def draw_rows(self, request: Mapping[str, float], count: int, rng) -> np.ndarray:
    """`count` training rows for a request: rows of the requested label, the NEAREST_ROWS
    of them closest to the requested attributes (in training deviations), drawn uniformly
    with replacement. Their other parts (attributes, features) complete the request."""
    candidates = np.arange(len(self.labels))
    if LABEL in request:
      candidates = candidates[self.labels == int(request[LABEL])]
      if not len(candidates):
        raise UserError(f'no training example has label {int(request[LABEL])}')
    given = [a for a in request if a != LABEL]
    if given and len(candidates) > NEAREST_ROWS:
      distance = sum(
        ((self.attributes[a][candidates] - request[a]) / self.attribute_std(a)) ** 2 for a in given
      )
      candidates = candidates[np.argsort(distance, kind='stable')[:NEAREST_ROWS]]
    return rng.choice(candidates, size=count, replace=True)

  def feature_condition(self, features: np.ndarray, per_item: int) -> Condition:
    """The Condition of `per_item` samples per row of raw `features` (n, F) (--like): the
    features as given; the label and attributes, when the model takes them, from the training
    row nearest in standardised feature space."""
    k = self.features.shape[1]
    if features.ndim != 2 or features.shape[1] != k:
      raise UserError(
        f'--like: features must be (n, {k}) to match the training features, got {features.shape}'
      )
    f_cols = slice(self.vector_size - k, self.vector_size)
    scale = lambda f: (f - self.mean[f_cols]) / self.std[f_cols]
    train = scale(self.features.astype(np.float64))
    asked = scale(features.astype(np.float64))
    nearest = np.array([int(np.argmin(np.sum((train - f) ** 2, axis=1))) for f in asked])
    rows = np.repeat(nearest, per_item)
    raw = self.raw_vector(rows)
    raw[:, f_cols] = np.repeat(features, per_item, axis=0)
    labels = self.labels[rows].astype(np.int32) if self.has_label else None
    return Condition(labels, self.standardize(raw))

  def condition_of_images(self, images: np.ndarray, labels, features=None) -> Condition:
    """The Condition that describes given images: their labels, their measured attributes
    (morpho.py) and their `features` (raw, (n, F)), as the model is conditioned."""
    labels = np.asarray(labels, np.int32) if self.has_label else None
    if not self.vector_parts:
      return Condition(labels, None)
    measured = morpho.measure(images) if self.conditioned_attributes else {}
    columns = [measured[a][:, None] for a in self.conditioned_attributes]
    if FEATURES in self.parts:
      columns.append(np.asarray(features, np.float64))
    raw = np.concatenate(columns, axis=1)
    if not np.all(np.isfinite(raw)):
      raise UserError('an image is blank: its attributes cannot be measured')
    return Condition(labels, self.standardize(raw))

  def attribute_std(self, name: str) -> float:
    return float(np.std(self.attributes[name])) or 1.0

  def requests_condition(
    self,
    requests: Sequence[Mapping[str, float]],
    per_request: int,
    seed: int,
    seeds: Sequence[int] | None = None,
  ) -> Condition:
    """The Condition of `per_request` samples for each request, request after request: the
    requested parts as asked, the rest from training rows near each (see draw_rows). With
    `seeds` (--seeds), one sample per seed and request, its row drawn with its seed alone."""
    if seeds is None:
      rng = np.random.default_rng(seed)
      rows = np.concatenate([self.draw_rows(r, per_request, rng) for r in requests])
    else:
      per_request = len(seeds)
      rows = np.array(
        [self.draw_rows(r, 1, np.random.default_rng(s))[0] for r in requests for s in seeds]
      )
    overrides = {}
    for key in sorted({k for r in requests for k in r}):
      asked = np.repeat([float(r.get(key, np.nan)) for r in requests], per_request)
      # A row keeps its own value where a request does not name the part.
      overrides[key] = np.where(np.isnan(asked), self.raw_value(key, rows), asked)
    return self.condition(rows, overrides)

  def raw_value(self, name: str, rows) -> np.ndarray:
    """A part's value in natural units (label or attribute) for training rows."""
    return self.labels[rows] if name == LABEL else self.attributes[name][rows]

  def parse_request(self, text: str, where: str = '--condition') -> dict[str, float]:
    """'digit=7,thickness=3.5' -> {'label': 7, 'thickness': 3.5}, or a one-line UserError."""
    request = {}
    for item in text.split(','):
      item = item.strip()
      if not item:
        continue
      key, eq, value = item.partition('=')
      key, value = key.strip(), value.strip()
      if not eq or not key:
        raise UserError(f'{where}: {item!r} is not KEY=VALUE (e.g. digit=7,thickness=3.5)')
      name = ALIASES.get(key, key)
      if name not in PARTS or name == FEATURES:
        known = [LABEL + ' (alias digit)', *morpho.ATTRIBUTES]
        raise UserError(f'{where}: unknown key {key!r}: keys are {", ".join(known)}')
      if name not in self.parts:
        raise UserError(
          f'{where}: this model is not conditioned on {key!r} (config.model.condition = '
          f'{self.parts})'
        )
      if name in request:
        raise UserError(f'{where}: {key!r} is given twice')
      try:
        number = float(value)
      except ValueError:
        raise UserError(f'{where}: {key}={value!r} is not a number') from None
      if not math.isfinite(number):
        raise UserError(f'{where}: {key}={value} is not a finite number')
      request[name] = self._checked(name, key, number, where)
    return request

  def _checked(self, name: str, key: str, number: float, where: str) -> float:
    if name == LABEL:
      if number != int(number) or not 0 <= number < self.num_classes:
        raise UserError(
          f'{where}: {key}={number:g} is not a class of this data (0..{self.num_classes - 1})'
        )
      return int(number)
    values = self.attributes[name]
    lo, hi, sd = float(values.min()), float(values.max()), self.attribute_std(name)
    margin = MAX_DEVIATIONS_OUTSIDE * sd
    if not lo - margin <= number <= hi + margin:
      raise UserError(
        f'{where}: {key}={number:g} is more than {MAX_DEVIATIONS_OUTSIDE:g} training deviations '
        f'({sd:.3g} {morpho.UNITS[name]}) outside the training range {lo:.3g}..{hi:.3g}'
      )
    return number


def standardization(raw: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """Per-column mean and deviation (a constant column gets deviation 1)."""
  mean = raw.mean(axis=0)
  std = raw.std(axis=0)
  return mean, np.where(std > 0, std, 1.0)


def build_table(
  parts,
  images,
  labels,
  num_classes: int,
  features=None,
  log=None,
  text_config=None,
  vocabulary=None,
) -> Table:
  """The Table of a training set's uint8 `images` (N, H, W, 1) and `labels`: every morphometric
  measured (cached, gan_jax/morpho.py) when the parts name one, `features` (N, F) when they
  name 'features'. With `text_config` (a config's `text` section) also each digit's terciles,
  its captions when the parts name 'text' (in `vocabulary`, default the grammar's), and the
  rows of `text_config.held_out`'s compositions taken out (`table.text.kept` says which rows
  are left)."""
  parts = tuple(parts)
  attributes = {}
  if attribute_names(parts) or text_config is not None:
    if images.shape[-1] != 1:
      raise UserError(
        f'morphometric conditions need greyscale images; the data has {images.shape[-1]} channels'
      )
    attributes = morpho.measure_cached(images, log=log)
    bad = [a for a in attribute_names(parts) if not np.all(np.isfinite(attributes[a]))]
    if bad:
      count = int(np.sum(~np.isfinite(attributes[bad[0]])))
      raise UserError(f'{count} training image(s) are blank: {bad[0]} cannot be measured')
  if FEATURES in parts:
    features = np.asarray(features, np.float32)
    if features.ndim != 2 or len(features) != len(labels):
      raise UserError(
        f'condition features must be (N, F) with one row per training example ({len(labels)}), '
        f'got {features.shape}'
      )
    if not np.all(np.isfinite(features)):
      raise UserError('condition features hold NaN or infinite values')
  labels = np.asarray(labels, np.int32)
  text = None
  if text_config is not None:
    text = _text_rows(parts, labels, attributes, num_classes, text_config, vocabulary)
    labels, attributes = labels[text.kept], {a: v[text.kept] for a, v in attributes.items()}
    features = None if features is None else features[text.kept]
  table = Table(
    parts,
    labels,
    attributes,
    features,
    np.zeros(0),
    np.zeros(0),
    num_classes,
    text,
  )
  if table.vector_parts:
    table.mean, table.std = standardization(table.raw_vector(np.arange(len(labels))))
  return table


def _text_rows(parts, labels, attributes, num_classes, text_config, vocabulary) -> TextRows:
  missing = [a for a in captions.ATTRIBUTES if a not in attributes]
  if missing:
    raise UserError(f'sentences need the morphometrics {missing} (greyscale digits)')
  bad = [a for a in captions.ATTRIBUTES if not np.all(np.isfinite(attributes[a]))]
  if bad:
    raise UserError(f'training image(s) are blank: {bad[0]} cannot be measured for captions')
  terciles = captions.terciles(labels, attributes, num_classes)
  codes = terciles.codes(labels, attributes)
  held_out = captions.held_out(text_config.held_out)
  kept = np.flatnonzero(~captions.is_held_out(labels, codes, held_out))
  vocabulary = vocabulary or captions.Vocabulary(captions.vocabulary_words())
  text = TextRows(vocabulary, terciles, codes[kept], held_out, kept)
  if TEXT in parts:
    text.ids, text.named = captions.training_captions(
      labels[kept],
      codes[kept],
      text_config.captions_per_image,
      text_config.omit_probability,
      text_config.caption_seed,
      vocabulary,
    )
  return text


def sweep_requests(table: Table, label, rows: int, columns: int):
  """Requests sweeping the first conditioned attribute down the rows and the second (if any)
  across the columns, each from the 5th to the 95th percentile of `label`'s training digits
  (None: all digits). Returns (requests, (rows, columns))."""
  names = table.conditioned_attributes[:2]
  chosen = np.ones(len(table.labels), bool) if label is None else table.labels == label
  levels = lambda name, n: np.percentile(table.attributes[name][chosen], np.linspace(5, 95, n))
  base = {} if label is None else {LABEL: int(label)}
  if len(names) == 1:
    return [{**base, names[0]: float(v)} for v in levels(names[0], columns)], (1, columns)
  return [
    {**base, names[0]: float(a), names[1]: float(b)}
    for a in levels(names[0], rows)
    for b in levels(names[1], columns)
  ], (rows, columns)


class ConditionedSource:
  """A data source whose examples also carry their standardised condition vector."""

  def __init__(self, source, table: Table):
    if len(source) != len(table.labels):
      raise ValueError(f'{len(source)} examples but {len(table.labels)} condition rows')
    self.source, self.table = source, table
    self.image_shape, self.num_classes = source.image_shape, source.num_classes
    self._vector = table.vector() if table.vector_parts else None

  def __len__(self):
    return len(self.source)

  def __getitem__(self, index):
    example = dict(self.source[index])
    if self._vector is not None:
      example['condition'] = self._vector[index]
    if self.table.has_text:  # All captions of the digit; the train step picks one.
      text = self.table.text
      example.update(text=text.ids[index], named=text.named[index], codes=text.codes[index])
    return example


class Subset:
  """The examples `indices` of a data source, in that order."""

  def __init__(self, source, indices):
    self.source, self.indices = source, np.asarray(indices)
    self.image_shape, self.num_classes = source.image_shape, source.num_classes

  def __len__(self):
    return len(self.indices)

  def __getitem__(self, index):
    return self.source[int(self.indices[index])]
