"""The GAN experiment: its train state, initialisation and the pure train step.

The whole update, discriminator then generator, is `train_step` below.
"""

import dataclasses
import functools
from typing import Any

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from gan_jax import augment
from gan_jax import data
from gan_jax import generate
from gan_jax import images as image_lib
from gan_jax import losses
from gan_jax import models
from gan_jax import regularizers
from gan_jax.errors import UserError
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

  def generate(self, params, stats, z, labels, train: bool):
    """(float32 images, new_stats); batch-norm statistics update only when `train`."""
    cast = functools.partial(layers.cast_floating, dtype=self.compute_dtype)
    variables = {'params': cast(params), **stats}
    if not train:
      images = self.generator.apply(variables, cast(z), labels, train=False)
      return images.astype(jnp.float32), stats
    images, new_stats = self.generator.apply(
      variables, cast(z), labels, train=True, mutable=list(stats)
    )
    return images.astype(jnp.float32), dict(new_stats)

  def discriminate(self, params, stats, images, labels, train: bool):
    """(float32 logits (B,), class logits (B, C) for AC-GAN else None, new_stats)."""
    cast = functools.partial(layers.cast_floating, dtype=self.compute_dtype)
    variables = {'params': cast(params), **stats}
    if train and stats:
      out, new_stats = self.discriminator.apply(
        variables, cast(images), labels, train=True, mutable=list(stats)
      )
      stats = dict(new_stats)
    else:
      out = self.discriminator.apply(variables, cast(images), labels, train=train)
    out = out.astype(jnp.float32)
    if self.acgan_weight:
      return out[:, 0], out[:, 1:], stats
    return out, None, stats

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
    g_vars = dict(self.generator.init(g_rng, z, labels, train=False))
    d_vars = dict(
      self.discriminator.init(
        d_rng, self.pack_images(jnp.zeros((2 * self.pack, *self.image_shape))), labels, train=False
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


def _class_loss(class_logits, labels):
  return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(class_logits, labels))


def train_step(
  gan: GAN, state: GANState, batch, key, penalize: bool | None = None
) -> tuple[GANState, dict]:
  """One discriminator update, then one generator update through the updated D.

  With lazy penalties (`penalty_every` > 1), `penalize` says whether this step takes them; the
  train loop passes it as a static argument (`GAN.penalty_due`), so it compiles a step with and
  one without them. None decides on device with `lax.cond`, which XLA:CPU runs several times
  slower than either static step (bench/time_to_quality's README section).
  """
  rngs = jax.random.split(jax.random.fold_in(key, state.step), 5)
  real = data.to_float(batch['image'])
  real_labels = batch['label'] if gan.num_classes else None
  batch_size = real.shape[0]

  # A paired (relativistic) loss compares each fake with the real example beside it, so
  # conditional fakes take the real labels (as R3GAN does).
  pair_labels = gan.loss.paired and real_labels is not None
  gamma_scale = gan.gamma_scale_at(state.step)

  def lazily(weight, penalty):
    """(weight, value) of a gradient penalty; every `penalty_every` steps, weighted that many
    times, and skipped (0) between them: double backprop through D is the costly part."""
    if gan.penalty_every <= 1:
      return weight, penalty()
    zero = lambda: jnp.zeros((), jnp.float32)
    if penalize is None:
      value = jax.lax.cond(state.step % gan.penalty_every == 0, penalty, zero)
    else:
      value = penalty() if penalize else zero()
    return weight * gan.penalty_every, value

  # Discriminator: real vs. fakes from the current G (a constant here), in one D call.
  z, fake_labels = gan.sample_noise(rngs[0], batch_size)
  fake_labels = real_labels if pair_labels else fake_labels
  fake, _ = gan.generate(state.g_params, state.g_stats, z, fake_labels, train=True)
  fake = jax.lax.stop_gradient(fake)
  both = jnp.concatenate([real, fake])
  both_labels = None if real_labels is None else jnp.concatenate([real_labels, fake_labels])
  # With PacGAN's packing (unconditional only) D and its penalties see packs of examples;
  # the batch halves are packed apart, as the packs never mix real and fake examples.
  pack = gan.pack_images

  def d_loss_fn(d_params):
    logits, class_logits, d_stats = gan.discriminate(
      d_params, state.d_stats, pack(gan.augment(both, rngs[1])), both_labels, train=True
    )
    real_logits, fake_logits = jnp.split(logits, 2)
    d_of = lambda x: gan.discriminate(d_params, d_stats, x, real_labels, train=False)[0]
    d_of_fake = lambda x: gan.discriminate(d_params, d_stats, x, fake_labels, train=False)[0]
    terms = {}  # name -> (weight, value)
    if gan.acgan_weight:
      terms['d_class_loss'] = (gan.acgan_weight, _class_loss(class_logits, both_labels))
    if gan.r1_gamma:
      terms['r1'] = lazily(
        gamma_scale * gan.r1_gamma / 2, lambda: regularizers.r1_penalty(d_of, pack(real))
      )
    if gan.r2_gamma:
      terms['r2'] = lazily(
        gamma_scale * gan.r2_gamma / 2, lambda: regularizers.r2_penalty(d_of_fake, pack(fake))
      )
    if gan.gp_weight:
      terms['gp'] = lazily(
        gan.gp_weight, lambda: regularizers.gradient_penalty(d_of, pack(real), pack(fake), rngs[2])
      )
    if gan.lecam_weight:
      terms['lecam'] = (
        gan.lecam_weight,
        regularizers.lecam_penalty(state.lecam, real_logits, fake_logits),
      )
    adversarial = gan.loss.d(real_logits, fake_logits)
    total = adversarial + sum(w * v for w, v in terms.values())
    return total, (
      d_stats,
      real_logits,
      fake_logits,
      adversarial,
      {k: v for k, (_, v) in terms.items()},
    )

  (_, (d_stats, real_logits, fake_logits, d_loss, d_terms)), d_grads = jax.value_and_grad(
    d_loss_fn, has_aux=True
  )(state.d_params)
  d_updates, d_opt = gan.d_tx.update(d_grads, state.d_opt, state.d_params)
  d_params = optax.apply_updates(state.d_params, d_updates)
  lecam = state.lecam
  if gan.lecam_weight:
    lecam = regularizers.lecam_update(lecam, real_logits, fake_logits, gan.lecam_decay)

  # Generator: fakes are made inside the loss, so the gradient reaches G's parameters.
  z, fake_labels = gan.sample_noise(rngs[3], batch_size)
  fake_labels = real_labels if pair_labels else fake_labels
  paired_real_logits = None
  if gan.loss.paired:  # D(real) under the updated D: a constant for G's gradient.
    paired_real_logits = gan.discriminate(
      d_params,
      d_stats,
      pack(gan.augment(real, jax.random.fold_in(rngs[4], 1))),
      real_labels,
      train=False,
    )[0]

  def g_loss_fn(g_params):
    fake, g_stats = gan.generate(g_params, state.g_stats, z, fake_labels, train=True)
    logits, class_logits, _ = gan.discriminate(
      d_params, d_stats, pack(gan.augment(fake, rngs[4])), fake_labels, train=False
    )
    loss = gan.loss.g(paired_real_logits, logits)
    if gan.acgan_weight:
      loss += gan.acgan_weight * _class_loss(class_logits, fake_labels)
    return loss, g_stats

  (g_loss, g_stats), g_grads = jax.value_and_grad(g_loss_fn, has_aux=True)(state.g_params)
  g_updates, g_opt = gan.g_tx.update(g_grads, state.g_opt, state.g_params)
  g_params = optax.apply_updates(state.g_params, g_updates)

  decay = gan.ema_decay_at(state.step)
  ema_params = jax.tree.map(lambda e, p: decay * e + (1.0 - decay) * p, state.ema_params, g_params)
  new_state = GANState(
    step=state.step + 1,
    g_params=g_params,
    g_stats=g_stats,
    g_opt=g_opt,
    d_params=d_params,
    d_stats=d_stats,
    d_opt=d_opt,
    ema_params=ema_params,
    lecam=lecam,
  )
  if gan.r1_gamma or gan.r2_gamma:
    d_terms['gamma_scale'] = gamma_scale
  metrics = {
    'd_loss': d_loss,
    'g_loss': g_loss,
    **d_terms,
    'd_real': jnp.mean(real_logits),
    'd_fake': jnp.mean(fake_logits),
    'd_grad_norm': optax.tree.norm(d_grads),
    'g_grad_norm': optax.tree.norm(g_grads),
  }
  return new_state, metrics


def cosine_ramp(start: float, final: float, steps: int) -> optax.Schedule:
  """`start` moving to `final` along half a cosine over `steps` steps, then `final`; the
  constant `start` when `steps` is 0. R3GAN ramps lr, beta2 and gamma this way."""
  if steps <= 0 or start == final:
    return optax.constant_schedule(start)
  return optax.cosine_decay_schedule(start, steps, alpha=final / start)


def make_optimizer(optim_config, schedule) -> optax.GradientTransformation:
  """Adam; with `schedule.steps` > 0 its learning rate and beta2 follow cosine ramps (lr to
  `learning_rate_final` x, beta2 from `b2_start` to b2), injected as optax hyperparameters."""
  lr, b1, b2 = optim_config.learning_rate, optim_config.b1, optim_config.b2
  b2_start = schedule.b2_start or b2
  if schedule.steps <= 0 or (schedule.learning_rate_final == 1.0 and b2_start == b2):
    return optax.adam(lr, b1=b1, b2=b2)
  return optax.inject_hyperparams(optax.adam)(
    learning_rate=cosine_ramp(lr, lr * schedule.learning_rate_final, schedule.steps),
    b1=b1,
    b2=cosine_ramp(b2_start, b2, schedule.steps),
  )


def _check_numbers(config) -> None:
  """Refuses penalty weights and schedules that make no sense, before anything runs."""
  loss, sched = config.loss, config.schedule
  for name in ('r1_gamma', 'r2_gamma', 'gp_weight', 'lecam_weight'):
    if loss[name] < 0:
      raise UserError(f'config.loss.{name} must be >= 0, got {loss[name]}')
  if loss.penalty_every < 1:
    raise UserError(f'config.loss.penalty_every must be >= 1, got {loss.penalty_every}')
  if sched.steps < 0:
    raise UserError(f'config.schedule.steps must be >= 0 (0 = constant), got {sched.steps}')
  if sched.learning_rate_final < 0 or sched.gamma_final < 0:
    raise UserError(
      'config.schedule.learning_rate_final and gamma_final are fractions of the '
      f'start values and must be >= 0, got {sched.learning_rate_final} and '
      f'{sched.gamma_final}'
    )
  if not 0 <= sched.b2_start < 1:
    raise UserError(
      f'config.schedule.b2_start must be in [0, 1) (0 = no ramp), got {sched.b2_start}'
    )
  for net in ('g', 'd'):
    o = config.optim[net]
    if o.learning_rate <= 0 or not 0 <= o.b1 < 1 or not 0 <= o.b2 < 1:
      raise UserError(
        f'config.optim.{net}: learning_rate must be > 0 and b1, b2 in [0, 1), '
        f'got {o.learning_rate}, {o.b1}, {o.b2}'
      )


def model_options(model_config, name: str, role: str = 'generator') -> dict:
  """Options only one model takes live in a section named after it (config.model.r3gan).
  `d_stage_widths` there, when not empty, replaces `stage_widths` for the discriminator
  (`role`), so G and D can be sized apart as R3GAN's own configs do; `d_head_width` reaches
  the discriminator only (its `head_width`)."""
  section = model_config.get(name)
  options = dict(section) if section is not None else {}
  d_widths = options.pop('d_stage_widths', ())
  d_head = options.pop('d_head_width', None)
  if role == 'discriminator':
    if d_widths:
      options['stage_widths'] = tuple(d_widths)
    if d_head is not None:
      options['head_width'] = d_head
  return options


def default_conv_chunks() -> int:
  """config.model.conv_chunks = 0: split convolutions into 4 batch slices on XLA:CPU, where
  they run 1.1-1.3x faster per train step (README, Performance; `python -m bench.train_step
  --configs mnist_dcgan,mnist_dcgan:model.conv_chunks=1`), else none."""
  return 4 if jax.default_backend() == 'cpu' else 1


def build(config, image_shape, num_classes: int) -> GAN:
  """The GAN a config describes, for images of `image_shape`."""
  m, loss = config.model, config.loss
  classes = num_classes if m.conditional else 0
  if m.conditional and num_classes < 2:
    raise UserError(
      f'a conditional model needs labelled data; {config.data.source} has {num_classes} class(es)'
    )
  if m.conditioning not in ('projection', 'acgan'):
    raise UserError(
      f"unknown config.model.conditioning '{m.conditioning}': use projection or acgan"
    )
  try:
    augment.parse_policy(config.augment.policy)
  except ValueError as e:
    raise UserError(f'config.augment.policy: {e}') from e
  if m.conv_chunks < 0:
    raise UserError(f'config.model.conv_chunks must be >= 0 (0 = auto), got {m.conv_chunks}')
  _check_numbers(config)
  pack = m.get('pack', 1)
  if not isinstance(pack, int) or pack < 1:
    raise UserError(f'config.model.pack must be an integer >= 1 (1 = no packing), got {pack}')
  if pack > 1 and classes:
    raise UserError('config.model.pack > 1 (PacGAN) is for unconditional models only')
  if config.train.batch_size % pack:
    raise UserError(
      f'config.train.batch_size {config.train.batch_size} does not split into packs of {pack}'
    )
  conv_chunks = m.conv_chunks or default_conv_chunks()
  acgan = bool(classes) and m.conditioning == 'acgan'
  return GAN(
    generator=models.generator(
      m.generator,
      image_shape=tuple(image_shape),
      width=m.g_width,
      num_classes=classes,
      conv_chunks=conv_chunks,
      **model_options(m, m.generator),
    ),
    discriminator=models.discriminator(
      m.discriminator,
      width=m.d_width,
      num_classes=classes,
      conditioning=m.conditioning,
      spectral_norm=m.spectral_norm,
      conv_chunks=conv_chunks,
      **model_options(m, m.discriminator, 'discriminator'),
    ),
    g_tx=make_optimizer(config.optim.g, config.schedule),
    d_tx=make_optimizer(config.optim.d, config.schedule),
    loss=losses.get(loss.name),
    latent_dim=m.latent_dim,
    num_classes=classes,
    image_shape=tuple(image_shape),
    ema_decay=config.train.ema_decay,
    ema_warmup=config.train.ema_warmup,
    augment_policy=config.augment.policy,
    acgan_weight=loss.acgan_weight if acgan else 0.0,
    r1_gamma=loss.r1_gamma,
    r2_gamma=loss.r2_gamma,
    penalty_every=loss.penalty_every,
    schedule_steps=config.schedule.steps,
    gamma_final=config.schedule.gamma_final,
    gp_weight=loss.gp_weight,
    compute_dtype=layers.compute_dtype(m.get('dtype', 'float32')),
    lecam_weight=loss.lecam_weight,
    lecam_decay=loss.lecam_decay,
    pack=pack,
  )


class Experiment:
  """A GAN run for the shared train loop: fixed-noise sample grids at each evaluation, scored
  by `run.judge` (evaluate.Judge) when the caller hands one in."""

  progress_keys = ('d_loss', 'g_loss')

  def __init__(self, run):
    self.config = run.config
    self.gan = build(run.config, run.source.image_shape, run.source.num_classes)
    self.train_step = functools.partial(train_step, self.gan)
    self.init = self.gan.init
    if self.gan.penalty_every > 1:  # Two compiled steps, with and without the penalties.
      self.step_options = lambda step: {'penalize': self.gan.penalty_due(step)}
    self.sample_z, self.sample_labels = generate.fixed_noise(self.gan, run.config)
    self.judge = run.judge  # Scores samples at each evaluation when the caller hands one in.

  def evaluate(self, state, step):
    """A fixed-noise sample grid, and classifier-feature metrics if a judge is configured."""
    del step
    images = data.to_uint8(
      jax.device_get(generate.generate_ema(self.gan, state, self.sample_z, self.sample_labels))
    )
    classes = self.gan.num_classes
    rows = classes if classes and len(images) % classes == 0 else None  # A row per class.
    scalars = {}
    if self.judge is not None:
      scalars = self.judge.score(self.gan, state, self.config.eval, self.config.data)
    return scalars, {'samples': image_lib.grid(images, rows)}
