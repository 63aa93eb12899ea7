"""An image's feature vector (IC-GAN's instance conditioning): the penultimate layer of a
classifier run, or a user's (N, F) .npy aligned with the training split
(config.model.features), standardised per dimension, as columns of the condition vector."""

import dataclasses

from gan_jax.conditioning import base


@base.register
@dataclasses.dataclass(frozen=True)
class Features(base.Kind):
  name = 'features'
  parts = ('features',)
