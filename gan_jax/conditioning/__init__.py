"""What a GAN is conditioned on, as plug-ins: one module per kind of condition (label,
attributes, features, text), each a `base.Kind` registered under the config parts it claims,
and `composite.Conditioning`, which combines the kinds a config names for the GAN's networks,
step and losses. A new kind is a registered `Kind` subclass; nothing else changes
(tests/test_condition_plugins.py adds one from the test file alone)."""

from gan_jax.conditioning import attributes  # noqa: F401 (registers the kind)
from gan_jax.conditioning import features  # noqa: F401
from gan_jax.conditioning import label  # noqa: F401
from gan_jax.conditioning import text  # noqa: F401
from gan_jax.conditioning.base import REGISTRY
from gan_jax.conditioning.base import DView
from gan_jax.conditioning.base import GView
from gan_jax.conditioning.base import Inputs
from gan_jax.conditioning.base import Kind
from gan_jax.conditioning.base import all_parts
from gan_jax.conditioning.base import kind_of
from gan_jax.conditioning.base import names
from gan_jax.conditioning.base import register
from gan_jax.conditioning.composite import Conditioning
from gan_jax.conditioning.composite import from_config

__all__ = [
  'DView',
  'GView',
  'Inputs',
  'Kind',
  'REGISTRY',
  'Conditioning',
  'all_parts',
  'from_config',
  'kind_of',
  'names',
  'register',
]
