"""R3GAN's training recipe on the cheap DCGAN (docs/time_to_quality.md).

A DCGAN with a width-16 generator (7x7x64 -> 14x14x32 -> 28x28x16) and the width-32
discriminator, trained with R3GAN's recipe (Huang et al. 2024): the relativistic pairing loss
with R1 + R2, Adam beta1 = 0, and cosine ramps of lr, gamma and beta2. The gradient penalties
are lazy (every 8th step, weighted 8x, as StyleGAN2 does for R1): double backprop through D
costs 3x a plain step on XLA:CPU, and lazy penalties keep most of that time for training.

  python launch.py --config=configs/mnist_rpgan.py --workdir=runs/mnist_rpgan
  python launch.py --config=configs/mnist_rpgan.py:smoke --workdir=/tmp/smoke   # seconds
"""

from configs import common


def get_config(variant: str | None = None):
  config = common.gan_config()
  steps = 2400  # About 300 s on 2 cores.
  config.model.g_width = 16
  common.r3gan_recipe(config, gamma=0.1, schedule_steps=steps)
  config.loss.penalty_every = 8
  config.train.num_steps = steps
  return common.select_variant(
    config, 'mnist_rpgan', variant, schedule__steps=6, loss__penalty_every=2
  )
