"""A GAN's mathematics: its train state, its networks applied, and the pure train step.

The whole update, discriminator then generator, is `train_step` below. Building a GAN from a
config is gan_jax/gan_builder.py; running it in the train loop is gan_jax/gan_experiment.py.
"""

import dataclasses
import functools
from typing import Any, NamedTuple

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from gan_jax import augmentations
from gan_jax import conditioning
from gan_jax import data
from gan_jax import hardware
from gan_jax import losses
from gan_jax import regularizers
from gan_jax.models import layers


@flax.struct.dataclass
class GANState:
  """Everything a resume needs: both nets, their optimizers, the EMA generator, the step."""

  # Fields added after checkpoints were written: absent from one, they restore as zeros.
  ZERO_IF_ABSENT = ('augment',)

  step: jax.Array
  g_params: Any
  g_stats: Any  # G's non-trainable collections (batch norm running statistics).
  g_opt: Any
  d_params: Any
  d_stats: Any  # D's non-trainable collections (e.g. spectral-norm power-iteration vectors).
  d_opt: Any
  ema_params: Any
  lecam: regularizers.LeCamState  # EMAs of D's outputs (used when loss.lecam_weight > 0).
  # The augmentation's state (gan_jax/augmentations/), e.g. an adaptive probability and what
  # steers it; {} for a stateless one. Checkpoints written without it restore it as zeros.
  augment: Any = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class Penalties:
  """D's regularisers: R1/R2 (`gamma` / 2 * E||grad D||^2 on real / generated images), each
  following a cosine from 1x to `gamma_final` x over `schedule_steps` (0 = constant), WGAN-GP,
  lazily (StyleGAN2: R1, R2 and GP only every `every`-th step, weighted `every` times), and
  LeCam's regulariser with its EMA decay."""

  r1_gamma: float = 0.0
  r2_gamma: float = 0.0
  schedule_steps: int = 0
  gamma_final: float = 1.0
  gp_weight: float = 0.0
  every: int = 1
  lecam_weight: float = 0.0
  lecam_decay: float = 0.99


@dataclasses.dataclass(frozen=True)
class GAN:
  """The static parts of a GAN experiment: networks, optimizers, loss and hyper-parameters.
  What it is conditioned on is `condition` (gan_jax/conditioning/), which this class passes
  through and never looks inside."""

  generator: nn.Module
  discriminator: nn.Module
  g_tx: optax.GradientTransformation
  d_tx: optax.GradientTransformation
  loss: losses.GANLoss
  latent_dim: int
  image_shape: tuple[int, int, int]
  ema_decay: float
  ema_warmup: bool
  condition: conditioning.Conditioning = conditioning.Conditioning()
  penalties: Penalties = Penalties()
  # What D sees of every image, real and generated (gan_jax/augmentations/).
  augmentation: augmentations.Augmentation = augmentations.NONE
  # PacGAN (Lin et al. 2018): D judges `pack` examples at once, stacked along channels.
  pack: int = 1
  # The networks compute in this dtype (config.model.dtype); parameters, optimizer state, EMA,
  # batch-norm statistics, images handed out, logits, losses and penalties are float32.
  compute_dtype: Any = jnp.float32
  # Batch slices per convolution (gan_jax/hardware.py): how the backend runs the networks,
  # not what they compute.
  conv_batch_slices: int = 1

  @property
  def num_classes(self) -> int:
    """The classes of the label the GAN takes (0: none)."""
    return self.condition.num_classes

  @property
  def penalty_every(self) -> int:
    return self.penalties.every

  def apply_generator(self, params, stats, z, condition, train: bool):
    """(float32 images, new_stats); batch-norm statistics update only when `train`.
    `condition`: None, labels (B,), or a condition dict (gan_jax/conditioning/)."""
    cast = functools.partial(layers.cast_floating, dtype=self.compute_dtype)
    z, labels, extra = self.condition.generator_inputs(z, condition)
    variables = {'params': cast(params), **stats}
    with hardware.conv_batch_slices(self.conv_batch_slices):
      if not train:
        images = self.generator.apply(variables, cast(z), labels, train=False, **cast(extra))
        return images.astype(jnp.float32), stats
      images, new_stats = self.generator.apply(
        variables, cast(z), labels, train=True, mutable=list(stats), **cast(extra)
      )
    return images.astype(jnp.float32), dict(new_stats)

  def discriminate(self, params, stats, images, condition, train: bool) -> 'Judgement':
    """D's float32 logits, its heads and new_stats; `condition` as for apply_generator."""
    cast = functools.partial(layers.cast_floating, dtype=self.compute_dtype)
    labels, extra = self.condition.discriminator_inputs(condition)
    variables = {'params': cast(params), **stats}
    with hardware.conv_batch_slices(self.conv_batch_slices):
      if train and stats:
        out, new_stats = self.discriminator.apply(
          variables, cast(images), labels, train=True, mutable=list(stats), **cast(extra)
        )
        stats = dict(new_stats)
      else:
        out = self.discriminator.apply(variables, cast(images), labels, train=train, **cast(extra))
    logits, heads = self.condition.split(out.astype(jnp.float32))
    return Judgement(logits, heads, stats)

  def pack_images(self, images):
    """PacGAN's D input: each run of `pack` consecutive examples becomes one example with
    their channels side by side, (B, H, W, C) -> (B / pack, H, W, pack * C)."""
    if self.pack == 1:
      return images
    b, h, w, c = images.shape
    if b % self.pack:
      raise ValueError(f'a batch of {b} does not split into packs of {self.pack}')
    packs = images.reshape(b // self.pack, self.pack, h, w, c).transpose(0, 2, 3, 1, 4)
    return packs.reshape(b // self.pack, h, w, self.pack * c)

  def augment(self, images, rng, state: dict):
    """`images` as D sees them, under the augmentation's `state` (GANState.augment)."""
    return self.augmentation.apply(images, rng, state)

  def sample_noise(self, rng, batch_size: int):
    """(z, the condition drawn for it, or None where fakes take real rows)."""
    z_rng, y_rng = jax.random.split(rng)
    z = jax.random.normal(z_rng, (batch_size, self.latent_dim))
    return z, self.condition.draw(y_rng, batch_size)

  def init(self, rng) -> GANState:
    g_rng, d_rng = jax.random.split(rng)
    z, _ = self.sample_noise(g_rng, 2)
    condition = self.condition.dummy(2)
    z, g_labels, g_extra = self.condition.generator_inputs(z, condition)
    d_labels, d_extra = self.condition.discriminator_inputs(condition)
    g_vars = dict(self.generator.init(g_rng, z, g_labels, train=False, **g_extra))
    images = self.pack_images(jnp.zeros((2 * self.pack, *self.image_shape)))
    d_vars = dict(self.discriminator.init(d_rng, images, d_labels, train=False, **d_extra))
    g_params, d_params = g_vars.pop('params'), d_vars.pop('params')
    return GANState(
      step=jnp.zeros((), jnp.int32),
      g_params=g_params,
      g_stats=g_vars,
      g_opt=self.g_tx.init(g_params),
      d_params=d_params,
      d_stats=d_vars,
      d_opt=self.d_tx.init(d_params),
      ema_params=jax.tree.map(jnp.copy, g_params),  # Own buffers: donatable.
      lecam=regularizers.LeCamState(),
      augment=self.augmentation.init_state(),
    )

  def penalty_due(self, step: int) -> bool:
    """Whether the step numbered `step` (a host int) takes the gradient penalties."""
    return self.penalties.every <= 1 or step % self.penalties.every == 0

  def gamma_scale_at(self, step):
    """The factor on r1_gamma and r2_gamma at `step` (R3GAN decays gamma with the lr)."""
    p = self.penalties
    return cosine_ramp(1.0, p.gamma_final, p.schedule_steps)(step)

  def ema_decay_at(self, step):
    """The EMA decay, warmed up as min(decay, (1+t)/(10+t)) so it forgets the random init."""
    if not self.ema_warmup:
      return jnp.asarray(self.ema_decay, jnp.float32)
    return jnp.minimum(self.ema_decay, (1.0 + step) / (10.0 + step))


class Judgement(NamedTuple):
  """What D says of a batch: float32 logits (B,), its heads ({'classes': (B, C)} for AC-GAN,
  {'vector': (B, k)} with a regression head; gan_jax/conditioning/composite.py), new stats."""

  logits: jax.Array
  heads: dict
  stats: Any


class DiscriminatorUpdate(NamedTuple):
  params: Any
  stats: Any
  opt: Any
  lecam: regularizers.LeCamState
  loss: jax.Array  # The adversarial part of D's loss.
  terms: dict  # Penalty and auxiliary values by name (unweighted).
  real_logits: jax.Array
  fake_logits: jax.Array
  grads: Any


class GeneratorUpdate(NamedTuple):
  params: Any
  stats: Any
  opt: Any
  loss: jax.Array
  grads: Any
  terms: dict  # Auxiliary values by name (unweighted).


class Batch(NamedTuple):
  """The real side of a step: float images, their condition, and what the condition kinds
  computed for their loss terms (gan_jax/conditioning/base.py)."""

  images: jax.Array
  condition: dict
  extra: dict


def train_step(
  gan: GAN, state: GANState, batch, key, penalize: bool | None = None
) -> tuple[GANState, dict]:
  """One discriminator update, then one generator update through the updated D.

  With lazy penalties (`penalty_every` > 1), `penalize` says whether this step takes them; the
  train loop passes it as a static argument (`GAN.penalty_due`), so it compiles a step with and
  one without them. None decides on device with `lax.cond`, which XLA:CPU runs several times
  slower than either static step (docs/performance.md).
  """
  step_key = jax.random.fold_in(key, state.step)
  rngs = jax.random.split(step_key, 5)
  condition, extra = gan.condition.real(batch, step_key)
  real = Batch(data.to_float(batch['image']), condition, extra)
  gamma_scale = gan.gamma_scale_at(state.step)
  d = discriminator_update(gan, state, real, rngs, penalize, gamma_scale)
  g = generator_update(gan, state, d.params, d.stats, real, rngs)
  seen = augmentations.Observation(d.real_logits, d.fake_logits, state.step, real.images.shape[0])
  augment_state = gan.augmentation.observe(state.augment, seen)
  decay = gan.ema_decay_at(state.step)
  ema_params = jax.tree.map(lambda e, p: decay * e + (1.0 - decay) * p, state.ema_params, g.params)
  new_state = GANState(
    step=state.step + 1,
    g_params=g.params,
    g_stats=g.stats,
    g_opt=g.opt,
    d_params=d.params,
    d_stats=d.stats,
    d_opt=d.opt,
    ema_params=ema_params,
    lecam=d.lecam,
    augment=augment_state,
  )
  p = gan.penalties
  scale = {'gamma_scale': gamma_scale} if p.r1_gamma or p.r2_gamma else {}
  metrics = {
    'd_loss': d.loss,
    'g_loss': g.loss,
    **d.terms,
    **g.terms,
    **scale,
    'd_real': jnp.mean(d.real_logits),
    'd_fake': jnp.mean(d.fake_logits),
    'd_grad_norm': optax.tree.norm(d.grads),
    'g_grad_norm': optax.tree.norm(g.grads),
    **gan.augmentation.metrics(augment_state),
  }
  return new_state, metrics


def _fakes(gan: GAN, real: Batch, rng):
  """(z, condition) of as many fakes as real images (gan_jax/conditioning: `fake`)."""
  z, drawn = gan.sample_noise(rng, real.images.shape[0])
  condition = gan.condition.fake(drawn, real.condition, jax.random.fold_in(rng, 1), gan.loss.paired)
  return z, condition


def _concat(*conditions):
  """Conditions of several batches as one batch."""
  return jax.tree.map(lambda *x: jnp.concatenate(x), *conditions)


def _lazily(gan: GAN, step, penalize, weight, penalty):
  """(weight, value) of a gradient penalty; every `penalty_every` steps, weighted that many
  times, and skipped (0) between them: double backprop through D is the costly part."""
  every = gan.penalties.every
  if every <= 1:
    return weight, penalty()
  zero = lambda: jnp.zeros((), jnp.float32)
  if penalize is None:
    value = jax.lax.cond(step % every == 0, penalty, zero)
  else:
    value = penalty() if penalize else zero()
  return weight * every, value


def _penalty_terms(
  gan: GAN, state, penalize, gamma_scale, d_of, d_of_fake, real, fake, logits, rng
):
  """D's regularisers as (weight, value) by name (real/fake: packed images)."""
  p, terms = gan.penalties, {}
  lazy = functools.partial(_lazily, gan, state.step, penalize)
  if p.r1_gamma:
    terms['r1'] = lazy(gamma_scale * p.r1_gamma / 2, lambda: regularizers.r1_penalty(d_of, real))
  if p.r2_gamma:
    r2 = lambda: regularizers.r2_penalty(d_of_fake, fake)
    terms['r2'] = lazy(gamma_scale * p.r2_gamma / 2, r2)
  if p.gp_weight:
    gp = lambda: regularizers.gradient_penalty(d_of, real, fake, rng)
    terms['gp'] = lazy(p.gp_weight, gp)
  if p.lecam_weight:
    terms['lecam'] = (
      p.lecam_weight,
      regularizers.lecam_penalty(state.lecam, logits['real'], logits['fake']),
    )
  return terms


def discriminator_update(
  gan: GAN, state: GANState, real: Batch, rngs, penalize, gamma_scale
) -> DiscriminatorUpdate:
  """D's step on real vs. fakes from the current G (a constant here), in one D call with any
  extra parts the condition kinds add (text: real images beside contradicting sentences), with
  the kinds' loss terms and D's penalties (R1/R2 weighted by `gamma_scale`). Uses
  `rngs[0..2]`."""
  z, fake_cond = _fakes(gan, real, rngs[0])
  fake, _ = gan.apply_generator(state.g_params, state.g_stats, z, fake_cond, train=True)
  fake = jax.lax.stop_gradient(fake)
  parts = [('real', real.images, real.condition), ('fake', fake, fake_cond)]
  parts += gan.condition.extra_parts(real.images, real.condition, real.extra)
  names = [name for name, _, _ in parts]
  both = jnp.concatenate([images for _, images, _ in parts])
  both_cond = _concat(*[c for _, _, c in parts])
  # With PacGAN's packing (unconditional only) D and its penalties see packs of examples;
  # the batch halves are packed apart, as the packs never mix real and fake examples.
  pack = gan.pack_images
  split = lambda x: dict(zip(names, jnp.split(x, len(names))))
  penalties = functools.partial(_penalty_terms, gan, state, penalize, gamma_scale)

  def d_loss_fn(d_params):
    logits, heads, d_stats = gan.discriminate(
      d_params,
      state.d_stats,
      pack(gan.augment(both, rngs[1], state.augment)),
      both_cond,
      train=True,
    )
    by_part = split(logits)
    heads_by_part = {n: {} for n in names}
    for head, values in heads.items():
      for n, v in split(values).items():
        heads_by_part[n][head] = v
    conds = {n: c for n, _, c in parts}
    view = conditioning.DView(gan.loss, conds, by_part, heads_by_part, heads, both_cond, real.extra)
    terms = gan.condition.d_terms(view)  # name -> (weight, value)
    judge = functools.partial(gan.discriminate, d_params, d_stats, train=False)
    if gan.augmentation.penalties_see_augmented:  # D differentiated through the augmentation.
      keys = jax.random.split(rngs[2])
      see = lambda x, n: pack(gan.augment(x, jax.random.fold_in(keys[1], n), state.augment))
      d_of = lambda x: judge(see(x, 0), real.condition)[0]
      d_of_fake = lambda x: judge(see(x, 1), fake_cond)[0]
      terms.update(penalties(d_of, d_of_fake, real.images, fake, by_part, keys[0]))
    else:
      d_of = lambda x: judge(x, real.condition)[0]
      d_of_fake = lambda x: judge(x, fake_cond)[0]
      terms.update(penalties(d_of, d_of_fake, pack(real.images), pack(fake), by_part, rngs[2]))
    adversarial = gan.loss.d(by_part['real'], by_part['fake'])
    total = adversarial + sum(w * v for w, v in terms.values())
    values = {k: v for k, (_, v) in terms.items()}
    return total, (d_stats, by_part['real'], by_part['fake'], adversarial, values)

  (_, aux), d_grads = jax.value_and_grad(d_loss_fn, has_aux=True)(state.d_params)
  d_stats, real_logits, fake_logits, d_loss, terms = aux
  d_updates, d_opt = gan.d_tx.update(d_grads, state.d_opt, state.d_params)
  d_params = optax.apply_updates(state.d_params, d_updates)
  lecam = state.lecam
  if gan.penalties.lecam_weight:
    lecam = regularizers.lecam_update(lecam, real_logits, fake_logits, gan.penalties.lecam_decay)
  return DiscriminatorUpdate(
    d_params, d_stats, d_opt, lecam, d_loss, terms, real_logits, fake_logits, d_grads
  )


def generator_update(gan: GAN, state: GANState, d_params, d_stats, real: Batch, rngs):
  """G's step through the updated D: fakes are made inside the loss, so the gradient reaches
  G's parameters, plus the condition kinds' terms on D's heads. Uses `rngs[3..4]`."""
  z, fake_cond = _fakes(gan, real, rngs[3])
  pack = gan.pack_images
  paired_real_logits = None
  if gan.loss.paired:  # D(real) under the updated D: a constant for G's gradient.
    paired_real_logits = gan.discriminate(
      d_params,
      d_stats,
      pack(gan.augment(real.images, jax.random.fold_in(rngs[4], 1), state.augment)),
      real.condition,
      train=False,
    )[0]

  def g_loss_fn(g_params):
    fake, g_stats = gan.apply_generator(g_params, state.g_stats, z, fake_cond, train=True)
    logits, heads, _ = gan.discriminate(
      d_params, d_stats, pack(gan.augment(fake, rngs[4], state.augment)), fake_cond, train=False
    )
    loss = gan.loss.g(paired_real_logits, logits)
    terms = gan.condition.g_terms(conditioning.GView(fake_cond, heads))
    for weight, value in terms.values():
      loss += weight * value
    return loss, (g_stats, {k: v for k, (_, v) in terms.items()})

  (g_loss, (g_stats, terms)), g_grads = jax.value_and_grad(g_loss_fn, has_aux=True)(state.g_params)
  g_updates, g_opt = gan.g_tx.update(g_grads, state.g_opt, state.g_params)
  g_params = optax.apply_updates(state.g_params, g_updates)
  return GeneratorUpdate(g_params, g_stats, g_opt, g_loss, g_grads, terms)


def cosine_ramp(start: float, final: float, steps: int) -> optax.Schedule:
  """`start` moving to `final` along half a cosine over `steps` steps, then `final`; the
  constant `start` when `steps` is 0. R3GAN ramps lr, beta2 and gamma this way."""
  if steps <= 0 or start == final:
    return optax.constant_schedule(start)
  return optax.cosine_decay_schedule(start, steps, alpha=final / start)
