"""Models by name: plain dicts from a name to a Flax module class."""

from gan_jax.errors import UserError
from gan_jax.models import classifier
from gan_jax.models import dcgan
from gan_jax.models import mlp_gan
from gan_jax.models import r3gan
from gan_jax.models import resnet

GENERATORS = {
  'dcgan': dcgan.Generator,
  'mlp': mlp_gan.Generator,
  'resnet': resnet.Generator,
  'r3gan': r3gan.Generator,
}
DISCRIMINATORS = {
  'dcgan': dcgan.Discriminator,
  'mlp': mlp_gan.Discriminator,
  'resnet': resnet.Discriminator,
  'r3gan': r3gan.Discriminator,
}

CLASSIFIERS = {
  'cnn': classifier.CNN,
}


def _lookup(registry, kind, name):
  if name not in registry:
    raise UserError(f"unknown {kind} '{name}': choose from {sorted(registry)}")
  return registry[name]


def generator(name: str, **kwargs):
  return _lookup(GENERATORS, 'generator', name)(**kwargs)


def discriminator(name: str, **kwargs):
  return _lookup(DISCRIMINATORS, 'discriminator', name)(**kwargs)


def classifier_model(name: str, **kwargs):
  return _lookup(CLASSIFIERS, 'classifier', name)(**kwargs)
