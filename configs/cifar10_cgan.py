"""Class-conditional SNGAN on CIFAR-10: conditional batch norm in G, projection D (Miyato &
Koyama 2018); TFDS data, for users with it prepared.

  python launch.py --config=configs/cifar10_cgan.py --workdir=runs/cifar10_cgan
"""

from configs import cifar10_sngan


def get_config(variant: str | None = None):
  config = cifar10_sngan.get_config(variant)
  config.model.conditional = True
  config.model.conditioning = 'projection'
  config.eval.num_grid_samples = 100 if variant != 'smoke' else 20
  return config
