"""The article's GAN: a dense-then-conv generator from 100-d noise, trained correctly.

python launch.py --config=configs/mnist_mlp_gan.py --workdir=runs/mnist_mlp_gan
"""

from configs import common


def get_config(variant: str | None = None):
  config = common.gan_config()
  config.model.generator = 'mlp'
  config.model.discriminator = 'mlp'
  config.model.g_width = 32  # Conv channels (the article: 128); the dense stack is as written.
  config.model.d_width = 32
  return common.select_variant(config, 'mnist_mlp_gan', variant)
