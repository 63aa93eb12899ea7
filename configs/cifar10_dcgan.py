"""DCGAN on CIFAR-10 (32x32 RGB) from TFDS, for users with the data prepared.

  python launch.py --config=configs/cifar10_dcgan.py --workdir=runs/cifar10_dcgan
Its smoke variant reads TFDS too: the tests stand in for the download with
`tfds.testing.mock_data`.
"""

from configs import common


def get_config(variant: str | None = None):
  config = common.gan_config()
  config.data.source = 'tfds:cifar10'
  config.model.g_width = 64
  config.model.d_width = 64
  config.train.num_steps = 50000
  config.train.batch_size = 128
  config.train.eval_every = 2500
  config.train.checkpoint_every = 2500
  return common.select_variant(config, 'cifar10_dcgan', variant)
