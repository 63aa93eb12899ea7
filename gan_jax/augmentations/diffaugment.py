"""DiffAugment (Zhao et al. 2020) as an augmentation plug-in: `config.augment.policy`, a fixed
policy such as 'translation,cutout' applied to every image D sees (gan_jax/augment.py)."""

from __future__ import annotations

import dataclasses

from gan_jax import augment
from gan_jax.augmentations import base


@base.register
@dataclasses.dataclass(frozen=True)
class DiffAugment(base.Augmentation):
  """Each op of `policy` on every image, with its own random parameters per image. The
  penalties see the images as they are, as in the reference code."""

  name = 'diffaugment'
  policy: str = ''

  @classmethod
  def from_config(cls, config):
    policy = (config.get('augment') or {}).get('policy', '')
    return cls(policy) if policy else None

  def apply(self, images, key, state):
    del state
    return augment.diff_augment(images, key, self.policy)
