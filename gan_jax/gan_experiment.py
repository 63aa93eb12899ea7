"""A GAN run for the shared train loop (gan_jax/train.py): its state, step and sample grids.

Metrics come from the evaluators the config names (gan_jax/evaluators.py), not from here.
"""

import functools

import jax
import numpy as np

from gan_jax import conditions
from gan_jax import gan as gan_lib
from gan_jax import gan_builder
from gan_jax import generation
from gan_jax import pictures

# The sweep grid of a model conditioned on attributes: this many levels of each swept attribute.
SWEEP_ROWS, SWEEP_COLUMNS = 5, 8


class Experiment:
  """Builds the GAN of `run.config` for `run.source`'s images, with the convolution slicing
  of `run.conv_batch_slices` and the training rows' conditions `run.conditions`."""

  progress_keys = ('d_loss', 'g_loss')

  def __init__(self, run):
    self.config = run.config
    self.conditions = run.conditions
    vector_size = run.conditions.vector_size if run.conditions else 0
    self.gan = gan_builder.build(
      run.config,
      run.source.image_shape,
      run.source.num_classes,
      run.conv_batch_slices,
      vector_size,
    )
    self.train_step = functools.partial(gan_lib.train_step, self.gan)
    self.init = self.gan.init
    if self.gan.penalty_every > 1:  # Two compiled steps, with and without the penalties.
      self.step_options = lambda step: {'penalize': self.gan.penalty_due(step)}
    self.sample_z, self.sample_labels = generation.fixed_noise(self.gan, run.config)
    if self.conditions is not None:  # Whole training rows of each grid row's class.
      self.sample_labels = self.conditions_for(
        len(self.sample_z), self.sample_labels, run.config.eval.grid_seed
      )

  def conditions_for(self, count: int, labels, seed: int):
    """The Condition of `count` samples of these labels (None: any class): each takes a
    training row of its class, drawn with `seed`, so its attributes are ones such a digit
    has."""
    table, rng = self.conditions, np.random.default_rng(seed)
    if labels is None:
      return table.condition(rng.integers(0, len(table.labels), count))
    labels = np.asarray(labels)
    rows = np.empty(count, np.int64)
    for c in np.unique(labels):
      where = np.flatnonzero(labels == c)
      rows[where] = rng.choice(np.flatnonzero(table.labels == c), len(where))
    return table.condition(rows)

  def pictures(self, state, step) -> dict:
    """The fixed-noise sample grid from the EMA generator; one row per class if conditional.
    Conditioned on attributes, also `sweep`: per class in `config.eval.sweep_labels`, rows and
    columns sweeping the first two conditioned attributes (5th..95th percentile of that
    class's training digits), one noise vector per block."""
    del step
    images = generation.ema_images(self.gan, state, self.sample_z, self.sample_labels)
    classes = self.gan.num_classes
    rows = classes if classes and len(images) % classes == 0 else None
    out = {'samples': pictures.grid(images, rows)}
    if self.conditions is not None and self.conditions.conditioned_attributes:
      out['sweep'] = self.sweep_grid(state)
    return out

  def sweep_grid(self, state) -> np.ndarray:
    table = self.conditions
    labels = list(self.config.eval.get('sweep_labels', ()) or [None]) if table.has_label else [None]
    seed = self.config.eval.grid_seed
    noise = jax.random.normal(jax.random.key(seed + 1), (len(labels), self.gan.latent_dim))
    blocks = []
    for block, label in enumerate(labels):
      requests, shape = conditions.sweep_requests(table, label, SWEEP_ROWS, SWEEP_COLUMNS)
      condition = table.requests_condition(requests, 1, seed + block)
      z = jax.numpy.broadcast_to(noise[block], (len(requests), self.gan.latent_dim))
      blocks.append(generation.ema_images(self.gan, state, z, condition))
    return pictures.grid(np.concatenate(blocks), rows=shape[0] * len(labels))

  def generate_images(self, state, num: int, seed: int, truncation: float = 0.0):
    """`num` uint8 images from the EMA generator and the labels asked for (None if
    unconditional): what the evaluators judge. With a condition table each sample takes a
    training row of its class."""
    if self.conditions is None:
      return generation.generate_images(self.gan, state, num, seed, truncation)
    classes = self.gan.num_classes
    labels = np.arange(num, dtype=np.int32) % classes if classes else None
    condition = self.conditions_for(num, labels, seed)
    images, _ = generation.generate_images(self.gan, state, num, seed, truncation, condition)
    return images, condition.label
