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
  if variant == 'smoke':
    common.smoke(config)
    config.model.g_width = config.model.d_width = 4
  elif variant:
    raise ValueError(f"unknown variant '{variant}' of mnist_sngan: use smoke or nothing")
  return config
