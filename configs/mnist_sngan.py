"""SNGAN-style GAN on the embedded MNIST digits: ResNet G and D, hinge loss, spectral norm on
D, DiffAugment (small data), EMA generator.

  python launch.py --config=configs/mnist_sngan.py --workdir=runs/mnist_sngan
"""

from configs import common


def get_config(variant: str | None = None):
  config = common.gan_config()
  config.model.generator = 'resnet'
  config.model.discriminator = 'resnet'
  config.model.g_width = 8  # 32 channels per G block (x4).
  config.model.d_width = 16  # 32 channels per D block (x2).
  config.model.spectral_norm = True
  config.loss.name = 'hinge'
  config.augment.policy = 'translation,cutout'
  for optim in (config.optim.g, config.optim.d):
    optim.b1, optim.b2 = 0.0, 0.9  # SNGAN's Adam.
  return common.select_variant(config, 'mnist_sngan', variant, model__g_width=4, model__d_width=4)
