"""A GAN run for the shared train loop (gan_jax/train.py): its state, step and sample grids.

Metrics come from the evaluators the config names (gan_jax/evaluators.py), not from here.
"""

import functools

import jax

from gan_jax import data
from gan_jax import gan as gan_lib
from gan_jax import gan_builder
from gan_jax import generation
from gan_jax import pictures


class Experiment:
  """Builds the GAN of `run.config` for `run.source`'s images, with the convolution slicing
  of `run.conv_batch_slices`."""

  progress_keys = ('d_loss', 'g_loss')

  def __init__(self, run):
    self.config = run.config
    self.gan = gan_builder.build(
      run.config, run.source.image_shape, run.source.num_classes, run.conv_batch_slices
    )
    self.train_step = functools.partial(gan_lib.train_step, self.gan)
    self.init = self.gan.init
    if self.gan.penalty_every > 1:  # Two compiled steps, with and without the penalties.
      self.step_options = lambda step: {'penalize': self.gan.penalty_due(step)}
    self.sample_z, self.sample_labels = generation.fixed_noise(self.gan, run.config)

  def pictures(self, state, step) -> dict:
    """The fixed-noise sample grid from the EMA generator; one row per class if conditional."""
    del step
    images = data.to_uint8(
      jax.device_get(generation.generate_ema(self.gan, state, self.sample_z, self.sample_labels))
    )
    classes = self.gan.num_classes
    rows = classes if classes and len(images) % classes == 0 else None
    return {'samples': pictures.grid(images, rows)}

  def generate_images(self, state, num: int, seed: int, truncation: float = 0.0):
    """`num` uint8 images from the EMA generator and the labels asked for (None if
    unconditional): what the evaluators judge."""
    return generation.generate_images(self.gan, state, num, seed, truncation)
