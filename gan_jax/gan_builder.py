"""Building a GAN (gan_jax/gan.py) from a config: its networks, optimizers, loss and weights."""

import optax

from gan_jax import augmentations
from gan_jax import conditioning
from gan_jax import config_checks
from gan_jax import gan as gan_lib
from gan_jax import losses
from gan_jax import models
from gan_jax.models import layers


def make_optimizer(optim_config, schedule) -> optax.GradientTransformation:
  """Adam; with `schedule.steps` > 0 its learning rate and beta2 follow cosine ramps (lr to
  `learning_rate_final` x, beta2 from `b2_start` to b2), injected as optax hyperparameters."""
  lr, b1, b2 = optim_config.learning_rate, optim_config.b1, optim_config.b2
  b2_start = schedule.b2_start or b2
  if schedule.steps <= 0 or (schedule.learning_rate_final == 1.0 and b2_start == b2):
    return optax.adam(lr, b1=b1, b2=b2)
  return optax.inject_hyperparams(optax.adam)(
    learning_rate=gan_lib.cosine_ramp(lr, lr * schedule.learning_rate_final, schedule.steps),
    b1=b1,
    b2=gan_lib.cosine_ramp(b2_start, b2, schedule.steps),
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


def build(
  config, image_shape, num_classes: int, conv_batch_slices: int = 1, sizes=None
) -> gan_lib.GAN:
  """The GAN a (checked) config describes, for images of `image_shape` and data with
  `num_classes` classes, conditioned on the kinds config.model.condition names
  (gan_jax/conditioning/; `sizes`: kind name -> what its training data measured, e.g. the
  columns of a feature vector); `conv_batch_slices` comes from the hardware layer
  (gan_jax/hardware.py) and changes speed, not results."""
  config_checks.check(config)
  config_checks.check_data_fits(config, image_shape, num_classes)
  m, loss = config.model, config.loss
  condition = conditioning.from_config(config, num_classes, sizes)
  generator = models.generator(
    m.generator,
    image_shape=tuple(image_shape),
    width=m.g_width,
    **condition.model_options(config, 'generator'),
    **model_options(m, m.generator),
  )
  discriminator = models.discriminator(
    m.discriminator,
    width=m.d_width,
    spectral_norm=m.spectral_norm,
    **condition.model_options(config, 'discriminator'),
    **model_options(m, m.discriminator, 'discriminator'),
  )
  generator, discriminator = condition.wrap(config, generator, discriminator)
  return gan_lib.GAN(
    generator=generator,
    discriminator=discriminator,
    g_tx=make_optimizer(config.optim.g, config.schedule),
    d_tx=make_optimizer(config.optim.d, config.schedule),
    loss=losses.get(loss.name),
    latent_dim=m.latent_dim,
    image_shape=tuple(image_shape),
    ema_decay=config.train.ema_decay,
    ema_warmup=config.train.ema_warmup,
    condition=condition,
    penalties=gan_lib.Penalties(
      r1_gamma=loss.r1_gamma,
      r2_gamma=loss.r2_gamma,
      schedule_steps=config.schedule.steps,
      gamma_final=config.schedule.gamma_final,
      gp_weight=loss.gp_weight,
      every=loss.penalty_every,
      lecam_weight=loss.lecam_weight,
      lecam_decay=loss.lecam_decay,
    ),
    augmentation=augmentations.from_config(config),
    pack=m.get('pack', 1),
    compute_dtype=layers.compute_dtype(m.get('dtype', 'float32')),
    conv_batch_slices=conv_batch_slices,
  )
