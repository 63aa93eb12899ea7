"""The default: the most digit quality per CPU second (docs/time_to_quality.md).

The class-conditional DCGAN of configs/mnist_cgan.py (label embedding in G, projection D, R1
gamma 0.1) made cheap: a width-16 generator (7x7x64 -> 14x14x32 -> 28x28x16), lazy R1 (every
8th step, weighted 8x, as StyleGAN2 does) and batch 32, sized to finish in about 5 minutes on
2 CPU cores. The grid has one row per class.

  python launch.py --config=configs/mnist_fast.py --workdir=runs/mnist_fast
  python launch.py --config=configs/mnist_fast.py:smoke --workdir=/tmp/smoke   # seconds
"""

from configs import common
from configs import mnist_cgan


def get_config(variant: str | None = None):
  config = mnist_cgan.get_config()
  config.model.g_width = 16
  config.loss.penalty_every = 8
  # Batch 32: twice the updates of batch 64 in the same seconds, which won at equal wall time.
  config.train.batch_size = 32
  config.train.num_steps = 5500  # About 5 minutes of 2 CPU cores.
  return common.select_variant(
    config, 'mnist_fast', variant, eval__num_grid_samples=20, loss__penalty_every=2
  )
