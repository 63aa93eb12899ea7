"""R3GAN (Huang et al. 2024) on the embedded MNIST digits: its ResNet, RpGAN + R1 + R2, Adam
beta1 = 0 with the paper's cosine ramps, an EMA generator.

  python launch.py --config=configs/mnist_r3gan.py --workdir=runs/mnist_r3gan
  python launch.py --config=configs/mnist_r3gan.py:smoke --workdir=/tmp/smoke   # seconds

Sized for 30 minutes of 2 CPU cores: stages of 64, 32 and 16 channels at 7, 14 and 28 px
(wide where pixels are few, as a DCGAN is: at one width of 16 the generator's whole dependence
on z passed through the 16 scalars that scale its 7x7 basis), one block per stage, expansion 1
and dense 3x3 convs (group_size covers every channel), batch 32 and lazy R1/R2 (every 8th step,
weighted 8x): median 5.8 steps/s on the README's Xeon, so 10,000 steps in about 29 minutes.
Class-conditional (the paper's class embedding in G, embedding product in D), as the default
is: the digits carry their labels. XLA:CPU runs grouped convolutions about 9x slower than dense
ones of 4x their FLOPs (README, "R3GAN on small images"). On an accelerator, try
--config.model.r3gan.group_size=16 --config.model.r3gan.expansion=2
--config.loss.penalty_every=1, wider stages and a larger batch.
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
  # paper's 2e-4 learns too slowly (README, "R3GAN on small images", screen).
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
