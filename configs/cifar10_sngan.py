"""SNGAN on CIFAR-10 (Miyato et al. 2018's ResNet at width 64: 256-channel G, 128-channel D),
hinge loss, spectral norm, DiffAugment, EMA; TFDS data, for users with it prepared.

  python launch.py --config=configs/cifar10_sngan.py --workdir=runs/cifar10_sngan
"""

from configs import common


def get_config(variant: str | None = None):
  config = common.gan_config()
  config.data.source = 'tfds:cifar10'
  config.model.generator = 'resnet'
  config.model.discriminator = 'resnet'
  config.model.g_width = 64
  config.model.d_width = 64
  config.model.spectral_norm = True
  config.loss.name = 'hinge'
  config.augment.policy = 'color,translation,cutout'
  for optim in (config.optim.g, config.optim.d):
    optim.b1, optim.b2 = 0.0, 0.9
  config.train.num_steps = 100000
  config.train.batch_size = 64
  config.train.eval_every = 5000
  config.train.checkpoint_every = 5000
  return common.select_variant(config, 'cifar10_sngan', variant, model__g_width=4, model__d_width=4)
