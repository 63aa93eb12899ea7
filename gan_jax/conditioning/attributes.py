"""Measured attributes (Morpho-MNIST, gan_jax/morpho.py): each named morphometric of a digit,
standardised with the training mean and deviation, as columns of the condition vector. The
values come from gan_jax/conditions.py's Table (measured once per data set, cached)."""

import dataclasses

from gan_jax import morpho
from gan_jax.conditioning import base


@base.register
@dataclasses.dataclass(frozen=True)
class Attributes(base.Kind):
  name = 'attributes'
  parts = morpho.ATTRIBUTES

  @classmethod
  def build(cls, config, num_classes: int, size) -> 'Attributes':
    del num_classes, size
    return cls(sum(p in cls.parts for p in base.names(config.model)))
