"""DCGAN on the 4,000 embedded MNIST training digits (offline).

python launch.py --config=configs/mnist_dcgan.py --workdir=runs/mnist_dcgan
python launch.py --config=configs/mnist_dcgan.py:smoke --workdir=/tmp/smoke   # seconds
"""

from configs import common


def get_config(variant: str | None = None):
  config = common.gan_config()
  return common.select_variant(config, 'mnist_dcgan', variant)
