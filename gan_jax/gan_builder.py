"""Building a GAN (gan_jax/gan.py) from a config: its networks, optimizers, loss and weights."""

import optax

from gan_jax import captions
from gan_jax import conditions
from gan_jax import config_checks
from gan_jax import gan as gan_lib
from gan_jax import losses
from gan_jax import models
from gan_jax.models import layers
from gan_jax.models import text as text_models


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
  config,
  image_shape,
  num_classes: int,
  conv_batch_slices: int = 1,
  vector_size: int = 0,
  vocabulary_size: int = 0,
) -> gan_lib.GAN:
  """The GAN a (checked) config describes, for images of `image_shape`, data with
  `num_classes` classes, a condition vector of `vector_size` columns (conditions.Table) and,
  conditioned on text, sentences of a `vocabulary_size`-word vocabulary;
  `conv_batch_slices` comes from the hardware layer (gan_jax/hardware.py) and changes speed,
  not results."""
  config_checks.check(config)
  config_checks.check_data_fits(config, image_shape, num_classes)
  m, loss = config.model, config.loss
  classes = num_classes if conditions.LABEL in conditions.names(m) else 0
  acgan = bool(classes) and m.conditioning == 'acgan'
  vector_judge = m.get('vector_conditioning', 'projection')
  regression = (
    loss.get('regression_weight', 1.0) if vector_size and vector_judge == 'regression' else 0.0
  )
  text = conditions.TEXT in conditions.names(m)
  d_extra = {'vector_conditioning': vector_judge} if vector_size or text else {}
  text_aux = loss.get('text_aux_weight', 0.0) if text else 0.0
  d_classes, d_conditioning = classes, m.conditioning
  if text_aux:  # Logits of the digit, then of the thickness and slant terciles.
    d_classes, d_conditioning = num_classes + 2 * 3, 'acgan'

  generator = models.generator(
    m.generator,
    image_shape=tuple(image_shape),
    width=m.g_width,
    num_classes=classes,
    **model_options(m, m.generator),
  )
  discriminator = models.discriminator(
    m.discriminator,
    width=m.d_width,
    num_classes=d_classes,
    conditioning=d_conditioning,
    spectral_norm=m.spectral_norm,
    **d_extra,
    **model_options(m, m.discriminator, 'discriminator'),
  )
  if text:  # G and D each read the sentence with an encoder of their own.
    encoder = lambda: text_models.TextEncoder(
      vocabulary_size=vocabulary_size,
      max_words=captions.MAX_WORDS,
      width=config.text.encoder_width,
      depth=config.text.encoder_depth,
      heads=config.text.encoder_heads,
      features=config.text.encoder_features,
    )
    generator = text_models.TextGenerator(
      encoder(),
      generator,
      modulate=m.get('vector_modulation', False),
      code_noise=config.text.get('code_noise', 0.0),
      frozen=config.text.get('freeze_generator_encoder', False),
    )
    discriminator = text_models.TextDiscriminator(encoder(), discriminator)
  return gan_lib.GAN(
    generator=generator,
    discriminator=discriminator,
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
    pack=m.get('pack', 1),
    conv_batch_slices=conv_batch_slices,
    vector_size=vector_size,
    regression_weight=regression,
    modulate=bool(vector_size) and m.get('vector_modulation', False),
    text_words=captions.MAX_WORDS if text else 0,
    mismatch_weight=loss.get('mismatch_weight', 0.0) if text else 0.0,
    text_aux_weight=text_aux,
    text_classes=num_classes if text else 0,
  )
