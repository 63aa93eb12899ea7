"""What D sees of every image, as plug-ins: each module registers a `base.Augmentation` that
`config.augment` selects (DiffAugment's fixed policies, ADA's adaptive pipeline); the GAN's
step calls their hooks and names none. A new augmentation is a registered subclass."""

from gan_jax.augmentations import ada  # noqa: F401 (registers it)
from gan_jax.augmentations import diffaugment  # noqa: F401
from gan_jax.augmentations.base import NONE
from gan_jax.augmentations.base import REGISTRY
from gan_jax.augmentations.base import Augmentation
from gan_jax.augmentations.base import Observation
from gan_jax.augmentations.base import from_config
from gan_jax.augmentations.base import register

__all__ = ['NONE', 'REGISTRY', 'Augmentation', 'Observation', 'from_config', 'register']
