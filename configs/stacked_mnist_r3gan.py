"""Stacked MNIST (1,000 modes) with R3GAN's ResNet and recipe (RpGAN + R1 + R2), the paper's
mode-coverage experiment, sized for 30 minutes of 2 CPU cores (configs/mnist_r3gan.py), with one
change to the network: a hidden layer in D's head. Results, and what was tried:
docs/stacked_mnist.md. Its results were measured with two CPU devices (the hardware file below).

  python launch.py --config=configs/stacked_mnist_r3gan.py --workdir=runs/stacked_mnist_r3gan \
    --hardware=configs/hardware/cpu_2_devices.py --config.train.time_budget_s=1800
  python launch.py --config=configs/stacked_mnist_r3gan.py --workdir=runs/stacked_mnist_r3gan \
    --mode=eval --config.eval.classifier_workdir=runs/mnist_classifier
"""

from configs import common
from configs import mnist_r3gan
from configs import stacked_mnist_dcgan


def get_config(variant: str | None = None):
  config = stacked_mnist_dcgan.stacked_mnist(mnist_r3gan.get_config())
  # gamma 5 for R1 and R2 (-> 0.5 by the ramp's end): lower gammas let D win outright here.
  config.loss.r1_gamma = config.loss.r2_gamma = 5.0
  # Batch 16: on 2 CPU cores a step of 16 takes under half the time of 32, so a time budget
  # buys more than twice the updates on the same images per second.
  config.train.batch_size = 16
  # The schedule fits 30 minutes of 2 cores; a budget that stops earlier ends before the ramps.
  steps = 32000
  config.train.num_steps = config.schedule.steps = steps
  for optim in (config.optim.g, config.optim.d):  # The best of a learning-rate screen at batch 16.
    optim.learning_rate = 1.5e-3
  # A hidden layer of 256 in D's head (not R3GAN's): R3GAN's linear head on the basis features
  # left the three channels' digits coupled; this one lets the logit depend on conjunctions.
  config.model.r3gan.d_head_width = 256
  # Unconditional, as the papers' protocol is: the labels here are the 1,000 modes themselves.
  config.model.conditional = False
  return common.select_variant(
    config,
    'stacked_mnist_r3gan',
    variant,
    schedule__steps=6,
    loss__penalty_every=2,
    model__r3gan__group_size=4,
    model__r3gan__stage_widths=(16, 8, 8),
    data__stacked_size=256,
    eval__num_samples=64,
  )
