"""A GAN run for the shared train loop (gan_jax/train.py): its state, step and sample grids.

Metrics come from the evaluators the config names (gan_jax/evaluators.py), not from here.
"""

import functools

import jax
import numpy as np

from gan_jax import captions
from gan_jax import condition_requests
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
    table = run.conditions
    self.gan = gan_builder.build(
      run.config,
      run.source.image_shape,
      run.source.num_classes,
      run.conv_batch_slices,
      table.sizes() if table is not None else None,
    )
    self.train_step = functools.partial(gan_lib.train_step, self.gan)
    self.init = functools.partial(_init, self.gan, table, run.config)
    if self.gan.penalty_every > 1:  # Two compiled steps, with and without the penalties.
      self.step_options = lambda step: {'penalize': self.gan.penalty_due(step)}
    self.sample_z, self.sample_labels = generation.fixed_noise(self.gan, run.config)
    if self.has_text:  # A text model's grid has a row per digit too.
      count = len(self.sample_z)
      self.sample_labels = (np.arange(count) * run.source.num_classes) // count
    if self.conditions is not None:  # Whole training rows of each grid row's class.
      self.sample_labels = self.conditions_for(
        len(self.sample_z), self.sample_labels, run.config.eval.grid_seed
      )

  @property
  def has_text(self) -> bool:
    return self.conditions is not None and self.conditions.has_text

  @property
  def num_classes(self) -> int:
    """The classes samples are asked for: the label's, or the digits sentences name."""
    return self.gan.num_classes or (self.conditions.num_classes if self.has_text else 0)

  def conditions_for(self, count: int, labels, seed: int, seeds=None):
    """The Condition of `count` samples of these labels (None: any class): each takes a
    training row of its class, drawn with `seed`, so its attributes are ones such a digit
    has. With `seeds` (--seeds), sample k's row is drawn with seeds[k] alone."""
    table = self.conditions
    if seeds is not None:
      labels = [None] * len(seeds) if labels is None else labels
      rows = [
        np.random.default_rng(s).choice(
          np.arange(len(table.labels)) if c is None else np.flatnonzero(table.labels == c)
        )
        for c, s in zip(labels, seeds)
      ]
      return table.condition(np.array(rows, np.int64))
    rng = np.random.default_rng(seed)
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
    classes = self.num_classes
    rows = classes if classes and len(images) % classes == 0 else None
    out = {'samples': pictures.grid(images, rows)}
    if self.conditions is not None and self.conditions.conditioned_attributes:
      out['sweep'] = self.sweep_grid(state)
    if self.has_text:
      out['sentences'] = self.sentence_grid(state)
    return out

  def sentence_grid(self, state, per_row: int = 10) -> np.ndarray:
    """One row per sentence of `sentence_grid_prompts`: held-out compositions first."""
    sentences = sentence_grid_prompts(self.conditions.text)
    condition, _ = self.conditions.text.prompt_condition(sentences, per_row, 'grid')
    z = jax.random.normal(
      jax.random.key(self.config.eval.grid_seed + 2),
      (len(sentences) * per_row, self.gan.latent_dim),
    )
    images = generation.ema_images(self.gan, state, z, condition)
    return pictures.grid(images, rows=len(sentences))

  def sweep_grid(self, state) -> np.ndarray:
    table = self.conditions
    labels = list(self.config.eval.get('sweep_labels', ()) or [None]) if table.has_label else [None]
    seed = self.config.eval.grid_seed
    noise = jax.random.normal(jax.random.key(seed + 1), (len(labels), self.gan.latent_dim))
    blocks = []
    for block, label in enumerate(labels):
      requests, shape = condition_requests.sweep_requests(table, label, SWEEP_ROWS, SWEEP_COLUMNS)
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
    classes = self.num_classes
    labels = np.arange(num, dtype=np.int32) % classes if classes else None
    condition = self.conditions_for(num, labels, seed)
    images, _ = generation.generate_images(self.gan, state, num, seed, truncation, condition)
    if self.has_text:  # Each sentence names its digit.
      return images, np.asarray(labels, np.int32)
    return images, condition.get(conditions.LABEL)

  def save_files(self, workdir: str) -> None:
    """What the condition kinds keep beside the checkpoints (text: its vocabulary)."""
    for kind in self.gan.condition.kinds:
      kind.save_files(self.conditions, workdir)


def sentence_grid_prompts(text) -> list[str]:
  """The sentences of a text model's grid: each held-out composition, then the same digit with
  the other value of one attribute, and a digit named alone."""
  sentences = []
  for named in text.held_out:
    sentences.append(captions.canonical(named))
    other = 0 if named.thickness else 2
    sentences.append(captions.canonical(named._replace(thickness=other)))
  return sentences + [captions.canonical(captions.Named(7))]


def _init(gan, table, config, rng):
  """The GAN's initial state, as the condition kinds prepare it (text pretrains its encoders)."""
  return gan.condition.pretrain(gan, gan.init(rng), table, config, rng)
