"""The class label: embedded inside G (beside z, or conditional batch norm), projected by D
(Miyato & Koyama 2018) or classified by an auxiliary head (AC-GAN, config.model.conditioning)."""

import dataclasses

import jax
import jax.numpy as jnp
import optax

from gan_jax.conditioning import base


def class_loss(class_logits, labels):
  return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(class_logits, labels))


@base.register
@dataclasses.dataclass(frozen=True)
class Label(base.Kind):
  """Labels (B,) int32 from the data's 'label'; fakes draw theirs uniformly."""

  name = 'label'
  parts = ('label',)
  takes_labels = True
  drawn = True
  num_classes: int = 0
  acgan: bool = False
  acgan_weight: float = 0.0

  @classmethod
  def build(cls, config, num_classes: int, size) -> 'Label':
    del size
    acgan = bool(num_classes) and config.model.conditioning == 'acgan'
    weight = config.loss.acgan_weight if acgan else 0.0
    return cls(num_classes=num_classes, acgan=acgan, acgan_weight=weight)

  def has_class_head(self) -> bool:
    return self.acgan

  def model_options(self, config, role: str) -> dict:
    if role == 'generator':
      return {'num_classes': self.num_classes}
    return {'num_classes': self.num_classes, 'conditioning': config.model.conditioning}

  def inputs(self, value) -> base.Inputs:
    return base.Inputs(labels=value)

  def vector(self, value):
    raise TypeError('labels are not part of the condition vector')

  def real(self, batch, key):
    del key
    return batch['label'], None

  def draw(self, key, n: int):
    return jax.random.randint(key, (n,), 0, self.num_classes)

  def dummy(self, n: int):
    return jnp.zeros((n,), jnp.int32)

  def d_terms(self, view: base.DView) -> dict:
    if not self.acgan:
      return {}
    labels = view.all_condition[self.name]
    return {'d_class_loss': (self.acgan_weight, class_loss(view.all_heads['classes'], labels))}

  def g_terms(self, view: base.GView) -> dict:
    if not self.acgan:
      return {}
    loss = class_loss(view.heads['classes'], view.condition[self.name])
    return {'g_class_loss': (self.acgan_weight, loss)}
