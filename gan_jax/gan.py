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

from gan_jax import augment
from gan_jax import conditions
from gan_jax import data
from gan_jax import hardware
from gan_jax import losses
from gan_jax import regularizers
from gan_jax.models import layers


@flax.struct.dataclass
class GANState:
  """Everything a resume needs: both nets, their optimizers, the EMA generator, the step."""

  step: jax.Array
  g_params: Any
  g_stats: Any  # G's non-trainable collections (batch norm running statistics).
  g_opt: Any
  d_params: Any
  d_stats: Any  # D's non-trainable collections (e.g. spectral-norm power-iteration vectors).
  d_opt: Any
  ema_params: Any
  lecam: regularizers.LeCamState  # EMAs of D's outputs (used when loss.lecam_weight > 0).


@dataclasses.dataclass(frozen=True)
class GAN:
  """The static parts of a GAN experiment: networks, optimizers, loss and hyper-parameters."""

  generator: nn.Module
  discriminator: nn.Module
  g_tx: optax.GradientTransformation
  d_tx: optax.GradientTransformation
  loss: losses.GANLoss
  latent_dim: int
  num_classes: int  # 0: unconditional.
  image_shape: tuple[int, int, int]
  ema_decay: float
  ema_warmup: bool
  augment_policy: str = ''  # DiffAugment policy applied to every D input ('' = none).
  acgan_weight: float = 0.0  # > 0: D also classifies (AC-GAN) instead of projecting labels.
  r1_gamma: float = 0.0  # gamma / 2 * E||grad D(real)||^2.
  r2_gamma: float = 0.0  # gamma / 2 * E||grad D(fake)||^2.
  # Both gammas follow a cosine from 1x to `gamma_final` x over `schedule_steps` (0 = constant).
  schedule_steps: int = 0
  gamma_final: float = 1.0
  gp_weight: float = 0.0  # WGAN-GP lambda.
  # Lazy regularisation (StyleGAN2): R1, R2 and GP only every k-th step, weighted k times.
  penalty_every: int = 1
  # PacGAN (Lin et al. 2018): D judges `pack` examples at once, stacked along channels.
  pack: int = 1
  lecam_weight: float = 0.0
  lecam_decay: float = 0.99
  # The networks compute in this dtype (config.model.dtype); parameters, optimizer state, EMA,
  # batch-norm statistics, images handed out, logits, losses and penalties are float32.
  compute_dtype: Any = jnp.float32
  # Batch slices per convolution (gan_jax/hardware.py): how the backend runs the networks,
  # not what they compute.
  conv_batch_slices: int = 1
  # Columns of the continuous condition vector (gan_jax/conditions.py; 0 = none). G reads it
  # beside z; D projects it, or with `regression_weight` > 0 predicts it from its features
  # (fitted on real images, G pays for fakes that miss their request).
  vector_size: int = 0
  regression_weight: float = 0.0
  modulate: bool = False  # The vector also modulates G's batch norms (FiLM; dcgan only).
  # Text conditioning (gan_jax/models/text.py): words per sentence (0 = none). D also learns
  # to call a real image fake beside a sentence that contradicts it, weighted so.
  text_words: int = 0
  mismatch_weight: float = 0.0
  # > 0: D also classifies each image's digit and thickness and slant terciles (TAC-GAN,
  # Dash et al. 2017), fitted on real digits; G pays this x the error on what its sentence names.
  text_aux_weight: float = 0.0
  text_classes: int = 0  # The digits a sentence may name.

  def apply_generator(self, params, stats, z, condition, train: bool):
    """(float32 images, new_stats); batch-norm statistics update only when `train`.
    `condition` is labels (B,), a conditions.Condition, or None."""
    labels, vector = conditions.split(condition)
    cast = functools.partial(layers.cast_floating, dtype=self.compute_dtype)
    extra = {}
    if vector is not None:  # The condition vector joins the noise.
      z = jnp.concatenate([z, vector.astype(z.dtype)], axis=-1)
      extra = {'modulation': cast(vector)} if self.modulate else {}
    if self.text_words:  # G's own encoder reads the sentence.
      extra = {'text': conditions.text_of(condition)}
    variables = {'params': cast(params), **stats}
    with hardware.conv_batch_slices(self.conv_batch_slices):
      if not train:
        images = self.generator.apply(variables, cast(z), labels, train=False, **extra)
        return images.astype(jnp.float32), stats
      images, new_stats = self.generator.apply(
        variables, cast(z), labels, train=True, mutable=list(stats), **extra
      )
    return images.astype(jnp.float32), dict(new_stats)

  def discriminate(self, params, stats, images, condition, train: bool) -> 'Judgement':
    """D's float32 outputs and new_stats; `condition` as for apply_generator."""
    labels, vector = conditions.split(condition)
    cast = functools.partial(layers.cast_floating, dtype=self.compute_dtype)
    variables = {'params': cast(params), **stats}
    extra = {} if vector is None else {'vector': cast(vector)}
    if self.text_words:
      extra = {'text': conditions.text_of(condition)}
    with hardware.conv_batch_slices(self.conv_batch_slices):
      if train and stats:
        out, new_stats = self.discriminator.apply(
          variables, cast(images), labels, train=True, mutable=list(stats), **extra
        )
        stats = dict(new_stats)
      else:
        out = self.discriminator.apply(variables, cast(images), labels, train=train, **extra)
    out = out.astype(jnp.float32)
    predicted = None
    if self.regression_weight and vector is not None:
      out, predicted = out[:, : -self.vector_size], out[:, -self.vector_size :]
      out = out if self.acgan_weight else out[:, 0]
    if self.acgan_weight or self.text_aux_weight:
      return Judgement(out[:, 0], out[:, 1:], stats, predicted)
    return Judgement(out, None, stats, predicted)

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

  def augment(self, images, rng):
    return augment.diff_augment(images, rng, self.augment_policy) if self.augment_policy else images

  def sample_noise(self, rng, batch_size: int):
    z_rng, y_rng = jax.random.split(rng)
    z = jax.random.normal(z_rng, (batch_size, self.latent_dim))
    labels = (
      jax.random.randint(y_rng, (batch_size,), 0, self.num_classes) if self.num_classes else None
    )
    return z, labels

  def init(self, rng) -> GANState:
    g_rng, d_rng = jax.random.split(rng)
    z, labels = self.sample_noise(g_rng, 2)
    d_extra, g_extra = {}, {}
    if self.vector_size:  # G reads the vector beside z (apply_generator).
      vector = jnp.zeros((2, self.vector_size))
      z = jnp.concatenate([z, vector], axis=-1)
      d_extra = {'vector': vector}
      g_extra = {'modulation': vector} if self.modulate else {}
    if self.text_words:
      d_extra = g_extra = {'text': jnp.zeros((2, self.text_words), jnp.int32)}
    g_vars = dict(self.generator.init(g_rng, z, labels, train=False, **g_extra))
    d_vars = dict(
      self.discriminator.init(
        d_rng,
        self.pack_images(jnp.zeros((2 * self.pack, *self.image_shape))),
        labels,
        train=False,
        **d_extra,
      )
    )
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
    )

  def penalty_due(self, step: int) -> bool:
    """Whether the step numbered `step` (a host int) takes the gradient penalties."""
    return self.penalty_every <= 1 or step % self.penalty_every == 0

  def gamma_scale_at(self, step):
    """The factor on r1_gamma and r2_gamma at `step` (R3GAN decays gamma with the lr)."""
    return cosine_ramp(1.0, self.gamma_final, self.schedule_steps)(step)

  def ema_decay_at(self, step):
    """The EMA decay, warmed up as min(decay, (1+t)/(10+t)) so it forgets the random init."""
    if not self.ema_warmup:
      return jnp.asarray(self.ema_decay, jnp.float32)
    return jnp.minimum(self.ema_decay, (1.0 + step) / (10.0 + step))


class Judgement(NamedTuple):
  """What D says of a batch: float32 logits (B,), class logits (B, C) for AC-GAN, its new
  stats, and its prediction of the condition vector (B, k) with a regression head."""

  logits: jax.Array
  class_logits: jax.Array | None
  stats: Any
  predicted_vector: jax.Array | None


def _class_loss(class_logits, labels):
  return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(class_logits, labels))


def _regression_loss(predicted, vector):
  return jnp.mean(jnp.square(predicted - vector))


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


def train_step(
  gan: GAN, state: GANState, batch, key, penalize: bool | None = None
) -> tuple[GANState, dict]:
  """One discriminator update, then one generator update through the updated D.

  With lazy penalties (`penalty_every` > 1), `penalize` says whether this step takes them; the
  train loop passes it as a static argument (`GAN.penalty_due`), so it compiles a step with and
  one without them. None decides on device with `lax.cond`, which XLA:CPU runs several times
  slower than either static step (docs/performance.md).
  """
  rngs = jax.random.split(jax.random.fold_in(key, state.step), 5)
  real = data.to_float(batch['image'])
  # The condition: None, labels, or with a condition vector a conditions.Condition.
  real_cond = batch['label'] if gan.num_classes else None
  if gan.vector_size:
    real_cond = conditions.Condition(real_cond, batch['condition'])
  mismatched = None
  if gan.text_words:
    text_key = jax.random.fold_in(jax.random.fold_in(key, state.step), 1)
    real_cond, mismatched = _sentences(batch, text_key)
    mismatched = mismatched if gan.mismatch_weight else None
  gamma_scale = gan.gamma_scale_at(state.step)
  truth = None
  if gan.text_aux_weight:
    truth = jnp.concatenate([batch['label'][:, None], batch['codes'].astype(jnp.int32)], axis=-1)
  d = discriminator_update(
    gan, state, real, real_cond, rngs, penalize, gamma_scale, mismatched, truth
  )
  g = generator_update(gan, state, d.params, d.stats, real, real_cond, rngs)
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
  )
  scale = {'gamma_scale': gamma_scale} if gan.r1_gamma or gan.r2_gamma else {}
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
  }
  return new_state, metrics


class Mismatched(NamedTuple):
  """Sentences of other digits in the batch, and which of them contradict their new image."""

  condition: conditions.Condition
  contradicts: jax.Array  # (B,) bool


def _sentences(batch, rng) -> tuple[conditions.Condition, Mismatched]:
  """Each real digit's sentence, one of its captions (batch['text'], (B, K, L)) drawn at
  random, and a mismatched sentence: another digit's, which contradicts this digit when it
  names another digit or a tercile this one is not in (batch['named'], batch['codes'])."""
  pick_rng, order_rng = jax.random.split(rng)
  b, k = batch['text'].shape[:2]
  pick = jax.random.randint(pick_rng, (b,), 0, k)
  rows = jnp.arange(b)
  text, named = batch['text'][rows, pick], batch['named'][rows, pick]
  order = jax.random.permutation(order_rng, b)
  other_named = named[order].astype(jnp.int32)
  codes = batch['codes'].astype(jnp.int32)
  contradicts = (batch['label'][order] != batch['label']) | jnp.any(
    (other_named >= 0) & (other_named != codes), axis=-1
  )
  said = jnp.concatenate([batch['label'][:, None], named.astype(jnp.int32)], axis=-1)
  real = conditions.Condition(None, None, text, said)
  return real, Mismatched(conditions.Condition(None, None, text[order], said[order]), contradicts)


def text_aux_loss(logits, targets, num_classes: int):
  """The auxiliary classifier's loss: cross-entropy of the digit (`num_classes` logits) and of
  the thickness and slant terciles (3 each), each averaged over the examples whose target is
  not -1 ("any"), summed over the three."""
  total = 0.0
  heads = jnp.split(logits, [num_classes, num_classes + 3], axis=-1)
  for head, target in zip(heads, targets.T):
    known = (target >= 0).astype(jnp.float32)
    each = optax.softmax_cross_entropy_with_integer_labels(head, jnp.maximum(target, 0))
    total += jnp.sum(each * known) / jnp.maximum(jnp.sum(known), 1.0)
  return total


def _fake_condition(gan: GAN, sampled, real_cond, rng):
  """The fakes' condition. A paired (relativistic) loss compares each fake with the real
  example beside it, so conditional fakes take the real conditions (as R3GAN does). Label-only
  models draw uniform labels (`sampled`); with a condition vector, fakes take whole rows of the
  real batch in a random order, so a digit's label and attributes stay together."""
  if gan.loss.paired and real_cond is not None:
    return real_cond
  if not gan.vector_size and not gan.text_words:
    return sampled
  order = jax.random.permutation(rng, jax.tree.leaves(real_cond)[0].shape[0])
  return jax.tree.map(lambda x: x[order], real_cond)


def _concat(a, b):
  """Two conditions (labels, Conditions or None) as one batch."""
  return jax.tree.map(lambda x, y: jnp.concatenate([x, y]), a, b)


def _lazily(gan: GAN, step, penalize, weight, penalty):
  """(weight, value) of a gradient penalty; every `penalty_every` steps, weighted that many
  times, and skipped (0) between them: double backprop through D is the costly part."""
  if gan.penalty_every <= 1:
    return weight, penalty()
  zero = lambda: jnp.zeros((), jnp.float32)
  if penalize is None:
    value = jax.lax.cond(step % gan.penalty_every == 0, penalty, zero)
  else:
    value = penalty() if penalize else zero()
  return weight * gan.penalty_every, value


def discriminator_update(
  gan: GAN,
  state: GANState,
  real,
  real_cond,
  rngs,
  penalize,
  gamma_scale,
  mismatched=None,
  truth=None,
) -> DiscriminatorUpdate:
  """D's step on real vs. fakes from the current G (a constant here), in one D call, with its
  penalties (R1/R2 weighted by `gamma_scale`) and, for text, real images beside `mismatched`
  sentences in the same call, and the real digits' `truth` (B, 3: digit, thickness and slant
  terciles) for the auxiliary classifier. Uses `rngs[0..2]`."""
  z, fake_cond = gan.sample_noise(rngs[0], real.shape[0])
  fake_cond = _fake_condition(gan, fake_cond, real_cond, jax.random.fold_in(rngs[0], 1))
  fake, _ = gan.apply_generator(state.g_params, state.g_stats, z, fake_cond, train=True)
  fake = jax.lax.stop_gradient(fake)
  both = jnp.concatenate([real, fake])
  both_cond = _concat(real_cond, fake_cond)
  if mismatched is not None:  # Real images beside contradicting sentences, a third part.
    both = jnp.concatenate([both, real])
    both_cond = _concat(both_cond, mismatched.condition)
  # With PacGAN's packing (unconditional only) D and its penalties see packs of examples;
  # the batch halves are packed apart, as the packs never mix real and fake examples.
  pack = gan.pack_images
  lazily = functools.partial(_lazily, gan, state.step, penalize)

  def d_loss_fn(d_params):
    logits, class_logits, d_stats, predicted = gan.discriminate(
      d_params, state.d_stats, pack(gan.augment(both, rngs[1])), both_cond, train=True
    )
    if mismatched is not None:
      real_logits, fake_logits, mismatched_logits = jnp.split(logits, 3)
    else:
      real_logits, fake_logits = jnp.split(logits, 2)
    d_of = lambda x: gan.discriminate(d_params, d_stats, x, real_cond, train=False)[0]
    d_of_fake = lambda x: gan.discriminate(d_params, d_stats, x, fake_cond, train=False)[0]
    terms = {}  # name -> (weight, value)
    if gan.text_aux_weight:  # Fitted on real digits, whose digit and terciles are all known.
      real_class_logits = class_logits[: real.shape[0]]
      terms['d_text_aux'] = (
        gan.text_aux_weight,
        text_aux_loss(real_class_logits, truth, gan.text_classes),
      )
    if mismatched is not None:
      terms['d_mismatch'] = (
        gan.mismatch_weight,
        losses.mismatch(gan.loss, real_logits, mismatched_logits, mismatched.contradicts),
      )
    if gan.acgan_weight:
      terms['d_class_loss'] = (
        gan.acgan_weight,
        _class_loss(class_logits, conditions.split(both_cond)[0]),
      )
    if predicted is not None:  # D learns to read the condition from real images only.
      real_predicted = jnp.split(predicted, 2)[0]
      regression = _regression_loss(real_predicted, real_cond.vector)
      terms['d_regression'] = (gan.regression_weight, regression)
    if gan.r1_gamma:
      r1 = lambda: regularizers.r1_penalty(d_of, pack(real))
      terms['r1'] = lazily(gamma_scale * gan.r1_gamma / 2, r1)
    if gan.r2_gamma:
      r2 = lambda: regularizers.r2_penalty(d_of_fake, pack(fake))
      terms['r2'] = lazily(gamma_scale * gan.r2_gamma / 2, r2)
    if gan.gp_weight:
      gp = lambda: regularizers.gradient_penalty(d_of, pack(real), pack(fake), rngs[2])
      terms['gp'] = lazily(gan.gp_weight, gp)
    if gan.lecam_weight:
      lecam_value = regularizers.lecam_penalty(state.lecam, real_logits, fake_logits)
      terms['lecam'] = (gan.lecam_weight, lecam_value)
    adversarial = gan.loss.d(real_logits, fake_logits)
    total = adversarial + sum(w * v for w, v in terms.values())
    values = {k: v for k, (_, v) in terms.items()}
    return total, (d_stats, real_logits, fake_logits, adversarial, values)

  (_, aux), d_grads = jax.value_and_grad(d_loss_fn, has_aux=True)(state.d_params)
  d_stats, real_logits, fake_logits, d_loss, terms = aux
  d_updates, d_opt = gan.d_tx.update(d_grads, state.d_opt, state.d_params)
  d_params = optax.apply_updates(state.d_params, d_updates)
  lecam = state.lecam
  if gan.lecam_weight:
    lecam = regularizers.lecam_update(lecam, real_logits, fake_logits, gan.lecam_decay)
  return DiscriminatorUpdate(
    d_params, d_stats, d_opt, lecam, d_loss, terms, real_logits, fake_logits, d_grads
  )


def generator_update(
  gan: GAN, state: GANState, d_params, d_stats, real, real_cond, rngs
) -> GeneratorUpdate:
  """G's step through the updated D: fakes are made inside the loss, so the gradient reaches
  G's parameters. Uses `rngs[3..4]`."""
  z, fake_cond = gan.sample_noise(rngs[3], real.shape[0])
  fake_cond = _fake_condition(gan, fake_cond, real_cond, jax.random.fold_in(rngs[3], 1))
  pack = gan.pack_images
  paired_real_logits = None
  if gan.loss.paired:  # D(real) under the updated D: a constant for G's gradient.
    paired_real_logits = gan.discriminate(
      d_params,
      d_stats,
      pack(gan.augment(real, jax.random.fold_in(rngs[4], 1))),
      real_cond,
      train=False,
    )[0]

  def g_loss_fn(g_params):
    fake, g_stats = gan.apply_generator(g_params, state.g_stats, z, fake_cond, train=True)
    logits, class_logits, _, predicted = gan.discriminate(
      d_params, d_stats, pack(gan.augment(fake, rngs[4])), fake_cond, train=False
    )
    loss = gan.loss.g(paired_real_logits, logits)
    if gan.acgan_weight:
      loss += gan.acgan_weight * _class_loss(class_logits, conditions.split(fake_cond)[0])
    terms = {}
    if gan.text_aux_weight:  # What the fake's sentence names, and nothing it leaves open.
      terms['g_text_aux'] = text_aux_loss(class_logits, fake_cond.named, gan.text_classes)
      loss += gan.text_aux_weight * terms['g_text_aux']
    if predicted is not None:  # How far D reads the fakes' attributes from what they were asked.
      terms['g_regression'] = _regression_loss(predicted, fake_cond.vector)
      loss += gan.regression_weight * terms['g_regression']
    return loss, (g_stats, terms)

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
