"""R3GAN (Huang et al. 2024) on the embedded MNIST digits: its ResNet, RpGAN + R1 + R2, Adam
beta1 = 0 with the paper's cosine ramps, an EMA generator.

  python launch.py --config=configs/mnist_r3gan.py --workdir=runs/mnist_r3gan
  python launch.py --config=configs/mnist_r3gan.py:smoke --workdir=/tmp/smoke   # seconds

Sized for 30 minutes of 2 CPU cores: stages of 64, 32 and 16 channels at 7, 14 and 28 px
(wide where pixels are few, as a DCGAN is), one block per stage, expansion 1 and dense 3x3
convs (group_size covers every channel: XLA:CPU runs grouped convolutions far slower than
dense ones of the same cost), batch 32 and lazy R1/R2 (every 8th step, weighted 8x).
Class-conditional (the paper's class embedding in G, embedding product in D). Measurements:
docs/r3gan.md. On an accelerator, try --config.model.r3gan.group_size=16
--config.model.r3gan.expansion=2 --config.loss.penalty_every=1, wider stages and a larger batch.
"""

from configs import common


def get_config(variant: str | None = None):
  config = common.gan_config()
  steps = 10000
  common.r3gan_model(  # Stages at 7, 14 and 28 px.
    config, width=16, blocks_per_stage=1, group_size=64, expansion=1, stage_widths=(64, 32, 16)
  )
  config.model.conditional = True
  # 5x the paper's learning rate, 10x its CIFAR-10 gamma (0.05): at batch 32 and ~10,000 steps the
  # paper's 2e-4 learns too slowly (docs/r3gan.md).
  common.r3gan_recipe(config, gamma=0.5, schedule_steps=steps, learning_rate=1e-3)
  config.loss.penalty_every = 8
  config.train.num_steps = steps
  config.train.batch_size = 32  # Same images/s as 64 on 2 cores, twice the updates.
  return common.select_variant(
    config,
    'mnist_r3gan',
    variant,
    schedule__steps=6,
    loss__penalty_every=2,
    model__r3gan__group_size=4,
    model__r3gan__stage_widths=(16, 8, 8),
  )
