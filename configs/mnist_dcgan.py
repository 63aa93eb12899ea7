"""DCGAN on the 4,000 embedded MNIST training digits (offline).

  python launch.py --config=configs/mnist_dcgan.py --workdir=runs/mnist_dcgan
  python launch.py --config=configs/mnist_dcgan.py:smoke --workdir=/tmp/smoke   # seconds
"""

from configs import common


def get_config(variant: str | None = None):
  config = common.gan_config()
  if variant == 'smoke':
    common.smoke(config)
  elif variant:
    raise ValueError(f"unknown variant '{variant}' of mnist_dcgan: use smoke or nothing")
  return config
