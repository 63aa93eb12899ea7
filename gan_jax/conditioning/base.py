"""The interface of a condition kind, and the registry that config.model.condition reads.

A condition is a dict from kind name to that kind's value for a batch (arrays with a leading
batch axis, or a dict of them): `{'label': (B,), 'attributes': (B, 2)}`. The GAN's core passes
it through untouched; only the kinds (and `Conditioning`, which combines them) read it.

A kind is a frozen dataclass registered with `@register`. Every hook has a default that does
nothing, so a kind writes only what it needs:

  data        `rows(config, images, labels)` (classmethod): (N, ...) values of the training
              examples, added to each example under the kind's name; `size(rows)` what the
              builder needs of them (columns, vocabulary size); `save_files(table, workdir)`
  models      `columns`: width of its part of the condition *vector*, which G reads beside z
              and D judges by projection or a regression head (config.model.vector_conditioning);
              `model_options(role)`: constructor options for G or D (a label's classes);
              `inputs(value)`: what the models get besides the vector (`labels`, or keyword
              arguments); `wrap(generator, discriminator)`: modules around them (encoders)
  the step    `real(batch, key)`: its value for the real batch, and anything its loss terms
              need later (`extra`); `draw(key, n)`: values for fakes drawn independently, or
              None (fakes then take whole real rows); `dummy(n)`: a value for init;
              `extra_parts(real, condition, extra)`: more (name, images, condition) parts for
              D's call (text: real images beside contradicting sentences);
              `pretrain(gan, state, table, config, rng)`: the initial state, changed
  losses      `d_terms(view)`, `g_terms(view)`: named (weight, value) terms
  heads       `has_class_head()`: D also outputs class logits for this kind (AC-GAN, TAC-GAN)
"""

import dataclasses
from typing import Any, ClassVar, NamedTuple

import jax.numpy as jnp
import numpy as np

REGISTRY: dict[str, type['Kind']] = {}


def register(cls):
  """Class decorator: makes a kind available in config.model.condition under its `parts`."""
  for part in cls.parts:
    owner = kind_of(part)
    if owner is not None and owner.name != cls.name:
      raise ValueError(f'condition part {part!r} already belongs to kind {owner.name!r}')
  REGISTRY[cls.name] = cls
  return cls


def kind_of(part: str) -> type['Kind'] | None:
  """The registered kind that claims config part `part`, or None."""
  for cls in REGISTRY.values():
    if part in cls.parts:
      return cls
  return None


def all_parts() -> tuple[str, ...]:
  return tuple(p for cls in REGISTRY.values() for p in cls.parts)


def names(model_config) -> tuple[str, ...]:
  """The parts a GAN is conditioned on: config.model.condition, or ('label',) when it is empty
  and config.model.conditional is True, else nothing."""
  condition = tuple(model_config.get('condition', ()) or ())
  if condition:
    return condition
  return ('label',) if model_config.get('conditional') else ()


class DView(NamedTuple):
  """What D's loss terms may read: the loss, the condition of each part of D's batch ('real',
  'fake', then any extra parts), D's logits and heads per part, the heads over the whole batch,
  and what each kind's `real` hook returned beside its value."""

  loss: Any
  conditions: dict
  logits: dict
  heads: dict  # part -> {'classes': ..., 'vector': ...}
  all_heads: dict  # the same heads over the whole batch, parts in order
  all_condition: dict
  extra: dict


class GView(NamedTuple):
  """What G's loss terms may read: the fakes' condition and D's heads on them."""

  condition: dict
  heads: dict


class Inputs(NamedTuple):
  """What a kind hands the models: class labels, and keyword arguments of their call."""

  labels: Any = None
  kwargs: dict = {}


@dataclasses.dataclass(frozen=True)
class Kind:
  """A kind of condition. Subclasses set `name` and `parts` and override the hooks they need."""

  name: ClassVar[str] = ''
  parts: ClassVar[tuple[str, ...]] = ()
  takes_labels: ClassVar[bool] = False  # The kind whose value may be passed as bare labels.
  drawn: ClassVar[bool] = False  # Fakes draw their values (`draw`) rather than take real rows.
  columns: int = 0  # Width of this kind's part of the condition vector.

  def has_class_head(self) -> bool:
    """Whether D's class logits belong to this kind (AC-GAN, TAC-GAN)."""
    return False

  @classmethod
  def build(cls, config, num_classes: int, size) -> 'Kind':
    """The kind for a checked config; `size` is what the data side measured (`size(rows)`)."""
    del config, num_classes
    return cls(columns=int(size or 0))

  # -- data side
  @classmethod
  def rows(cls, config, images: np.ndarray, labels: np.ndarray) -> np.ndarray | None:
    """(N, ...) values of the training examples; None when gan_jax/conditions.py's Table
    computes them (the built-in kinds)."""
    del config, images, labels
    return None

  @classmethod
  def size(cls, rows: np.ndarray):
    return rows.shape[-1] if rows.ndim > 1 else 0

  @classmethod
  def save_files(cls, table, workdir: str) -> None:
    del table, workdir

  # -- models
  def model_options(self, config, role: str) -> dict:
    del config, role
    return {}

  def inputs(self, value) -> Inputs:
    del value
    return Inputs()

  def vector(self, value):
    """This kind's columns of the condition vector (B, columns)."""
    return value

  def wrap(self, config, generator, discriminator):
    del config
    return generator, discriminator

  # -- the step
  def real(self, batch, key):
    """(this kind's value for the real batch, extra for its loss terms)."""
    del key
    return batch[self.name], None

  def draw(self, key, n: int):
    del key, n
    return None

  def dummy(self, n: int):
    return jnp.zeros((n, self.columns), jnp.float32)

  def extra_parts(self, real_images, condition: dict, extra) -> list:
    del real_images, condition, extra
    return []

  def pretrain(self, gan, state, table, config, rng):
    """The GAN's initial state, changed as this kind needs before training (inside the jitted
    init; text pretrains its encoders)."""
    del gan, table, config, rng
    return state

  # -- losses
  def d_terms(self, view: DView) -> dict:
    del view
    return {}

  def g_terms(self, view: GView) -> dict:
    del view
    return {}
