"""Adaptive discriminator augmentation (ADA; Karras et al. 2020) as an augmentation plug-in.

Every image D sees, real and generated, in D's step and in G's, goes through ADA's pipeline
(ada_ops.py: each transform of `config.augment.ada_ops` applied to each image with probability
p). R1, R2 and GP differentiate D through the pipeline (fresh draws at the same p), as NVlabs'
code does; the text kind's mismatched pairs and RpGAN's paired real pass are part of D's and
G's passes and are augmented like the rest.

p is train state, checkpointed and restored exactly. Adaptive (`ada_target` > 0): over every
`ada_interval` steps the overfitting measure r_t = E[sign(D(real) - boundary)] is summed over
the real logits of D's pass (the whole global batch, so p is the same on every device and
process), and p then moves by sign(r_t - target) x (images seen) / (ada_kimg x 1000), kept in
[0, 1], on device. `boundary` is the logit at which D's loss turns from calling an image fake to
calling it real: 0 for the non-saturating and hinge losses, 0.5 for least squares (targets 0
and 1). The Wasserstein and RpGAN losses have none (a critic's or a relativistic D's output is
defined up to a constant), so adaptive p is refused for them; fixed p (`ada_p`, ramped from 0
over `ada_ramp_steps`) works with every loss.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from gan_jax import losses
from gan_jax.augmentations import ada_ops
from gan_jax.augmentations import base
from gan_jax.errors import UserError


@base.register
@dataclasses.dataclass(frozen=True)
class ADA(base.Augmentation):
  name = 'ada'
  penalties_see_augmented = True

  ops: tuple[str, ...] = ada_ops.parse_ops(ada_ops.DEFAULT_OPS)
  target: float = 0.0  # 0: p fixed at `p` (ramped over `ramp_steps`)
  kimg: float = 20.0
  interval: int = 4
  p: float = 0.0
  ramp_steps: int = 0
  boundary: float = 0.0

  @classmethod
  def from_config(cls, config):
    aug = config.get('augment') or {}
    target, p = aug.get('ada_target', cls.target), aug.get('ada_p', cls.p)
    if not target and not p:
      return None
    boundary = losses.get(config.loss.name).boundary
    if target and boundary is None:
      raise UserError(
        f'config.augment.ada_target: adaptive p reads sign(D(real)), which the '
        f'{config.loss.name} loss does not anchor at any value; set a fixed '
        'config.augment.ada_p (with ada_ramp_steps) instead'
      )
    try:
      ops = ada_ops.parse_ops(aug.get('ada_ops', ada_ops.DEFAULT_OPS))
    except ValueError as e:
      raise UserError(f'config.augment.ada_ops: {e}') from None
    default = {f.name: f.default for f in dataclasses.fields(cls)}
    return cls(
      ops=ops,
      target=float(target),
      kimg=float(aug.get('ada_kimg', default['kimg'])),
      interval=int(aug.get('ada_interval', default['interval'])),
      p=float(p),
      ramp_steps=int(aug.get('ada_ramp_steps', default['ramp_steps'])),
      boundary=float(boundary or 0.0),
    )

  def init_state(self) -> dict:
    """p (0 when adaptive or ramped, else the fixed p), the last interval's r_t, and the
    running sums of the interval under way."""
    zero = jnp.zeros((), jnp.float32)
    p = zero if self.target or self.ramp_steps else jnp.asarray(self.p, jnp.float32)
    return {'p': p, 'rt': zero, 'signs': zero, 'logits': zero, 'images': zero}

  def apply(self, images, key, state):
    """Skipped outright while p is 0 (`lax.cond`): the start of an adaptive run costs nothing."""
    p = state['p']
    augment = lambda x: ada_ops.ada_augment(x, key, p, self.ops)
    return jax.lax.cond(p > 0, augment, lambda x: x, images)

  def observe(self, state, view):
    if not self.target:
      ramp = jnp.minimum(1.0, (view.step + 1) / self.ramp_steps) if self.ramp_steps else 1.0
      return {**state, 'p': jnp.asarray(self.p * ramp, jnp.float32)}
    logits = view.real_logits.astype(jnp.float32)
    signs = state['signs'] + jnp.sum(jnp.sign(logits - self.boundary))
    count = state['logits'] + logits.size
    images = state['images'] + view.batch_size
    due = (view.step + 1) % self.interval == 0
    rt = signs / count
    step = jnp.sign(rt - self.target) * images / (self.kimg * 1000.0)
    p = jnp.clip(state['p'] + step, 0.0, 1.0)
    zero = jnp.zeros((), jnp.float32)
    return {
      'p': jnp.where(due, p, state['p']),
      'rt': jnp.where(due, rt, state['rt']),
      'signs': jnp.where(due, zero, signs),
      'logits': jnp.where(due, zero, count),
      'images': jnp.where(due, zero, images),
    }

  def metrics(self, state) -> dict:
    """`augment_p`, and `augment_rt` when adaptive (curves.png draws `augment_*` series)."""
    return {'augment_p': state['p'], **({'augment_rt': state['rt']} if self.target else {})}
