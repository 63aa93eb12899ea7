"""The interface of an augmentation of D's inputs, and the registry `config.augment` reads.

An augmentation changes every image D sees, real and generated, in D's step and in G's, so that
D cannot memorise a small training set while G still learns the un-augmented images (the
augmentations are differentiable). It is a frozen dataclass registered with `@register`; the
GAN's step calls its hooks and never names one. Every hook has a default that does nothing:

  from_config(config)   (classmethod) the instance `config.augment` asks for, or None when the
                        config leaves it off; bad settings raise UserError (one line)
  init_state()          its train-state part: a dict of arrays, checkpointed with the rest of
                        the state ({} for a stateless augmentation)
  apply(images, key, state)      the augmented (B, H, W, C) images
  observe(state, view)  the new state after D's pass (`Observation`: D's logits on the real
                        and generated images, the step, the batch size)
  metrics(state)        scalars logged with the step (metrics.jsonl; curves.png draws those
                        named `augment_*`)
  penalties_see_augmented        whether R1/R2/GP differentiate D through the augmentation
                        (ADA, as NVlabs' code) or see the images as they are (DiffAugment's
                        reference code)
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar, NamedTuple

from gan_jax.errors import UserError

REGISTRY: dict[str, type[Augmentation]] = {}


def register(cls):
  """Class decorator: makes an augmentation selectable through `config.augment`."""
  REGISTRY[cls.name] = cls
  return cls


class Observation(NamedTuple):
  """What an augmentation may read after D's pass of a step."""

  real_logits: Any  # D's float32 logits on the (augmented) real images of the batch, (B,)
  fake_logits: Any  # ... and on the generated ones
  step: Any  # the step being taken (int32 scalar)
  batch_size: int  # real images in the global batch


@dataclasses.dataclass(frozen=True)
class Augmentation:
  """The identity: D sees the images as they are."""

  name: ClassVar[str] = 'none'
  penalties_see_augmented: ClassVar[bool] = False

  @classmethod
  def from_config(cls, config) -> Augmentation | None:
    del config
    return None

  def init_state(self) -> dict:
    return {}

  def apply(self, images, key, state):
    del key, state
    return images

  def observe(self, state: dict, view: Observation) -> dict:
    del view
    return state

  def metrics(self, state: dict) -> dict:
    del state
    return {}


NONE = Augmentation()


def from_config(config) -> Augmentation:
  """The augmentation `config.augment` turns on (the identity when none is); two at once is a
  one-line error."""
  chosen = [a for a in (cls.from_config(config) for cls in REGISTRY.values()) if a is not None]
  if len(chosen) > 1:
    raise UserError(
      f'config.augment turns on {" and ".join(a.name for a in chosen)}; choose one '
      "(e.g. config.augment.policy='' for ADA alone)"
    )
  return chosen[0] if chosen else NONE
