"""The training rows' conditions: the table of what each training example is conditioned on,
standardised as the networks see it, and the conditions of requests drawn from it.

`config.model.condition` names the parts, each claimed by a kind (gan_jax/conditioning/):
  label      the class label (embedded in G, projected or classified by D)
  area, length, thickness, slant, width, height
             the `attributes` kind: a morphometric of the image (gan_jax/morpho.py), measured on
             the training set once and cached per data content, standardised with the
             training mean and deviation
  features   a per-image feature vector: the penultimate layer of the classifier trained in
             `config.model.features` (a workdir), or a user's (N, F) `.npy` aligned with the
             training split; standardised per dimension
  text       a sentence about the digit (gan_jax/captions.py), read by text encoders of G and D
             (gan_jax/models/text.py); a condition of its own, set up by `config.text`
  (others)   a plug-in kind's parts; its values come from its own `rows` hook
Empty means `('label',)` when `config.model.conditional` is True, else unconditional.

A condition is a dict from kind name to values: `{'label': (B,), 'attributes': (B, 2)}`.
A conditional GAN's fakes take whole training rows (a digit's label and its attributes
together), never independently drawn parts. A *request* (--mode=sample --condition, parsed by
gan_jax/condition_requests.py) fixes some parts in their natural units; the rest are drawn
from the training rows nearest to it (`Table.draw_rows`).
"""

from collections.abc import Mapping, Sequence
import dataclasses

import numpy as np

from gan_jax import conditioning
from gan_jax import morpho
from gan_jax.conditioning import text as text_kind
from gan_jax.errors import UserError

LABEL = 'label'
FEATURES = 'features'
TEXT = 'text'
ATTRIBUTES = 'attributes'  # The kind (gan_jax/conditioning/attributes.py) of the morphometrics.
# A request's omitted parts come from this many of the training rows nearest to it.
NEAREST_ROWS = 32


def names(model_config) -> tuple[str, ...]:
  """The parts a GAN is conditioned on (see the module docstring)."""
  return conditioning.names(model_config)


def vector_names(parts: Sequence[str]) -> tuple[str, ...]:
  """The parts in the condition vector: every part but the label and the text, in order."""
  return tuple(p for p in parts if p in morpho.ATTRIBUTES or p == FEATURES)


def plugin_kinds(parts: Sequence[str]) -> list:
  """The registered kinds the parts name whose training values a kind computes itself
  (`Kind.rows`), not this module's Table."""
  kinds = {conditioning.kind_of(p) for p in parts} - {None}
  builtin = {conditioning.kind_of(p) for p in (LABEL, FEATURES, TEXT, morpho.ATTRIBUTES[0])}
  return [k for k in conditioning.REGISTRY.values() if k in kinds - builtin]


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
  parts = conditioning.all_parts()
  for part in raw:
    if part not in parts:
      raise UserError(f'{where}.condition: unknown part {part!r}: choose from {list(parts)}')
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
  text: text_kind.TextRows | None = None  # With a `config.text` section.
  # Kind name -> (N, ...) values of the kinds that compute their own (conditioning.Kind.rows).
  extra: dict = dataclasses.field(default_factory=dict)

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

  def condition(self, rows, overrides: Mapping[str, np.ndarray] | None = None) -> dict:
    """The condition of training rows, with attributes replaced by `overrides` (raw units,
    one value per row)."""
    rows = np.asarray(rows)
    labels = self.labels[rows].astype(np.int32) if self.has_label else None
    if overrides and LABEL in overrides:
      labels = np.asarray(overrides[LABEL], np.int32)
    if self.has_text:  # Each row's first caption (captions are in a random order).
      return {TEXT: {'ids': self.text.ids[rows, 0]}}
    plugins = {name: values[rows] for name, values in self.extra.items()}
    if not self.vector_parts:
      return {**self._condition(labels, None), **plugins}
    raw = self.raw_vector(rows)
    for name, values in (overrides or {}).items():
      if name != LABEL:
        raw[:, self.column(name)] = values
    return {**self._condition(labels, self.standardize(raw)), **plugins}

  def condition_of_values(self, labels, raw: np.ndarray | None) -> dict:
    """The condition of given labels and raw vector columns (natural units, as raw_vector)."""
    labels = None if labels is None or not self.has_label else np.asarray(labels, np.int32)
    vector = None if raw is None or not self.vector_parts else self.standardize(raw)
    return self._condition(labels, vector)

  def _condition(self, labels, vector) -> dict:
    """The condition dict (gan_jax/conditioning/) of labels and the standardised vector."""
    condition = {} if labels is None else {LABEL: labels}
    if vector is not None:
      split = len(self.conditioned_attributes)
      if split:
        condition[ATTRIBUTES] = vector[:, :split]
      if FEATURES in self.parts:
        condition[FEATURES] = vector[:, split:]
    return condition

  def vector_of(self, condition: dict) -> np.ndarray | None:
    """The standardised vector columns of a condition dict, attributes then features."""
    parts = [condition[k] for k in (ATTRIBUTES, FEATURES) if k in condition]
    return np.concatenate([np.asarray(p) for p in parts], axis=-1) if parts else None

  def sizes(self) -> dict:
    """Kind name -> what the GAN builder needs of its data (gan_builder.build's `sizes`)."""
    sizes = {name: conditioning.REGISTRY[name].size(v) for name, v in self.extra.items()}
    if FEATURES in self.parts:
      sizes[FEATURES] = self.features.shape[1]
    if self.has_text:
      sizes[TEXT] = len(self.text.vocabulary)
    return sizes

  def training_rows(self) -> dict:
    """Kind name -> (N, ...) training values, as the training source hands them out: the
    standardised vector split by kind (as `_condition` splits it), and the plug-in kinds'."""
    vector = self.vector() if self.vector_parts else None
    return {**self._condition(None, vector), **self.extra}

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

  def feature_condition(self, features: np.ndarray, per_item: int) -> dict:
    """The condition of `per_item` samples per row of raw `features` (n, F) (--like): the
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
    return self._condition(labels, self.standardize(raw))

  def condition_of_images(self, images: np.ndarray, labels, features=None) -> dict:
    """The condition that describes given images: their labels, their measured attributes
    (morpho.py) and their `features` (raw, (n, F)), as the model is conditioned."""
    labels = np.asarray(labels, np.int32) if self.has_label else None
    if not self.vector_parts:
      return self._condition(labels, None)
    measured = morpho.measure(images) if self.conditioned_attributes else {}
    columns = [measured[a][:, None] for a in self.conditioned_attributes]
    if FEATURES in self.parts:
      columns.append(np.asarray(features, np.float64))
    raw = np.concatenate(columns, axis=1)
    if not np.all(np.isfinite(raw)):
      raise UserError('an image is blank: its attributes cannot be measured')
    return self._condition(labels, self.standardize(raw))

  def attribute_std(self, name: str) -> float:
    return float(np.std(self.attributes[name])) or 1.0

  def requests_condition(
    self,
    requests: Sequence[Mapping[str, float]],
    per_request: int,
    seed: int,
    seeds: Sequence[int] | None = None,
  ) -> dict:
    """The condition of `per_request` samples for each request, request after request: the
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
  extra=None,
) -> Table:
  """The Table of a training set's uint8 `images` (N, H, W, 1) and `labels`: every morphometric
  measured (cached, gan_jax/morpho.py) when the parts name one, `features` (N, F) when they
  name 'features'. With `text_config` (a config's `text` section) also each digit's terciles,
  its captions when the parts name 'text' (in `vocabulary`, default the grammar's), and the
  rows of `text_config.held_out`'s compositions taken out (`table.text.kept` says which rows
  are left). `extra`: kind name -> (N, ...) rows of the kinds that compute their own."""
  extra = {k: np.asarray(v) for k, v in (extra or {}).items()}
  for name, rows in extra.items():
    if len(rows) != len(labels):
      raise UserError(f'condition {name!r}: {len(rows)} rows for {len(labels)} training examples')
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
    text = text_kind.text_rows(parts, labels, attributes, num_classes, text_config, vocabulary)
    labels, attributes = labels[text.kept], {a: v[text.kept] for a, v in attributes.items()}
    features = None if features is None else features[text.kept]
    extra = {k: v[text.kept] for k, v in extra.items()}
  table = Table(
    parts,
    labels,
    attributes,
    features,
    np.zeros(0),
    np.zeros(0),
    num_classes,
    text,
    extra,
  )
  if table.vector_parts:
    table.mean, table.std = standardization(table.raw_vector(np.arange(len(labels))))
  return table
