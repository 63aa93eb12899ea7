"""Stacked MNIST (1,000 modes) with the DCGAN, the setting in which Metz et al. 2017, VEEGAN and
PacGAN report mode collapse: three embedded digits as the channels of one 28x28 image.

  python launch.py --config=configs/stacked_mnist_dcgan.py --workdir=runs/stacked_mnist_dcgan
  python launch.py --config=configs/stacked_mnist_dcgan.py --workdir=runs/stacked_mnist_dcgan \
    --mode=eval --config.eval.classifier_workdir=runs/mnist_classifier

Judged the papers' way: the MNIST judge reads each channel, and `modes` / `mode_kl` count the
digit triples of 26,000 samples (docs/stacked_mnist.md).
"""

import ml_collections

from configs import common


def stacked_mnist(config):
  """The data and evaluation protocol shared by the Stacked MNIST configs."""
  config.data.source = 'embedded:stacked_mnist'
  config.data.stacked_size = 60000  # Examples per split, as the papers' 60,000 training images.
  config.eval.num_samples = 26000  # The papers' sample count for modes and KL.
  # Mode coverage replaces the classifier metrics: FID on three stacked digits means little.
  config.evals = ml_collections.ConfigDict(
    dict(
      stacked_modes=dict(type='stacked_modes', every=0, num_samples=0),
      inception=dict(type='inception', every=-1, num_samples=0),
    )
  )
  return config


def get_config(variant: str | None = None):
  config = stacked_mnist(common.gan_config())
  config.train.num_steps = 6000
  return common.select_variant(
    config, 'stacked_mnist_dcgan', variant, data__stacked_size=256, eval__num_samples=64
  )
