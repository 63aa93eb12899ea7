"""R3GAN's CIFAR-10 recipe (Huang et al. 2024, the official code's CIFAR10 preset): four stages
(4, 8, 16, 32 px) of width 768 with two blocks each, expansion 2 and 16 channels per group
(cardinality 96), noise 64; RpGAN + R1 + R2 with gamma 0.05 -> 0.005, lr 2e-4 -> 5e-5 and
beta2 0.9 -> 0.99 over 20M images, Adam beta1 = 0, batch 512. For users with TFDS data and
accelerators (the paper trains it on 8 GPUs).

  python launch.py --config=configs/cifar10_r3gan.py --workdir=runs/cifar10_r3gan

Not reproduced here: the paper's ADA-style augmentation (probability ramped to 0.55; gan_jax
has DiffAugment, `augment.policy`) and its EMA half-life ramp (gan_jax's EMA is a decay with a
warm-up, `train.ema_decay`).
"""

from configs import common


def get_config(variant: str | None = None):
  config = common.gan_config()
  config.data.source = 'tfds:cifar10'
  batch = 512
  steps = 20_000_000 // batch
  common.r3gan_model(config, width=768, blocks_per_stage=2, group_size=16)
  common.r3gan_recipe(config, gamma=0.05, schedule_steps=steps)
  config.train.batch_size = batch
  config.train.num_steps = steps
  config.train.ema_decay = 0.9999
  config.train.eval_every = 5000
  config.train.checkpoint_every = 5000
  return common.select_variant(
    config, 'cifar10_r3gan', variant, model__g_width=8, model__d_width=8, schedule__steps=6
  )
