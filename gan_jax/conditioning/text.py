"""A sentence about the digit (gan_jax/captions.py), read by a small transformer encoder of
G's and one of D's own (gan_jax/models/text.py). Each step draws one of each real digit's
captions; D also learns to call a real image fake beside a sentence that contradicts it
(`loss.mismatch_weight`, Reed et al. 2016) and, with `loss.text_aux_weight`, to classify each
real digit's digit and thickness and slant terciles (TAC-GAN), G paying for what its sentence
names. Its value: {'ids': (B, L) word ids, 'named': (B, 3) digit and terciles (-1 = any)}."""

import dataclasses
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from gan_jax import captions
from gan_jax import losses
from gan_jax.conditioning import base
from gan_jax.errors import UserError
from gan_jax.models import text as text_models

TERCILE_HEADS = 2 * 3  # Logits of the thickness and slant terciles after the digit's.


class Mismatched(NamedTuple):
  """Sentences of other digits in the batch, and which of them contradict their new image."""

  value: dict
  contradicts: jax.Array  # (B,) bool


def sentences(batch, rng) -> tuple[dict, Mismatched]:
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
  real = {'ids': text, 'named': said}
  return real, Mismatched({'ids': text[order], 'named': said[order]}, contradicts)


def aux_loss(logits, targets, num_classes: int):
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


@dataclasses.dataclass
class TextRows:
  """The training rows' sentences (gan_jax/captions.py): each digit's thickness and slant
  terciles (`codes`, (N, 2)) and, for a text-conditioned model, `per_image` captions of it as
  word ids (N, K, L) with the terciles each names (N, K, 2; -1 = left out)."""

  vocabulary: captions.Vocabulary
  terciles: captions.Terciles
  codes: np.ndarray
  held_out: list  # captions.Named compositions whose digits were taken out of training
  kept: np.ndarray  # indices of the training split's examples kept (the rest are held out)
  ids: np.ndarray | None = None
  named: np.ndarray | None = None

  def prompt_condition(self, sentences, per_sentence: int, where='--prompt'):
    """(the condition of `per_sentence` samples per sentence, what each names): every sentence
    read by rule first, so a bad one is a one-line error naming `where` (one for all, or one
    per sentence)."""
    wheres = [where] * len(sentences) if isinstance(where, str) else list(where)
    named = [captions.parse(s, w, self.vocabulary.words) for s, w in zip(sentences, wheres)]
    ids = np.stack([self.vocabulary.encode(s, w) for s, w in zip(sentences, wheres)])
    return {'text': {'ids': np.repeat(ids, per_sentence, axis=0)}}, named


def text_rows(parts, labels, attributes, num_classes, text_config, vocabulary) -> TextRows:
  missing = [a for a in captions.ATTRIBUTES if a not in attributes]
  if missing:
    raise UserError(f'sentences need the morphometrics {missing} (greyscale digits)')
  bad = [a for a in captions.ATTRIBUTES if not np.all(np.isfinite(attributes[a]))]
  if bad:
    raise UserError(f'training image(s) are blank: {bad[0]} cannot be measured for captions')
  terciles = captions.terciles(labels, attributes, num_classes)
  codes = terciles.codes(labels, attributes)
  held_out = captions.held_out(text_config.held_out)
  kept = np.flatnonzero(~captions.is_held_out(labels, codes, held_out))
  vocabulary = vocabulary or captions.Vocabulary(captions.vocabulary_words())
  text = TextRows(vocabulary, terciles, codes[kept], held_out, kept)
  if 'text' in parts:
    text.ids, text.named = captions.training_captions(
      labels[kept],
      codes[kept],
      text_config.captions_per_image,
      text_config.omit_probability,
      text_config.caption_seed,
      vocabulary,
    )
  return text


@base.register
@dataclasses.dataclass(frozen=True)
class Text(base.Kind):
  name = 'text'
  parts = ('text',)
  vocabulary_size: int = 0
  num_classes: int = 0  # The digits a sentence may name.
  mismatch_weight: float = 0.0
  aux_weight: float = 0.0

  @classmethod
  def build(cls, config, num_classes: int, size) -> 'Text':
    return cls(
      vocabulary_size=int(size or 0),
      num_classes=num_classes,
      mismatch_weight=config.loss.get('mismatch_weight', 0.0),
      aux_weight=config.loss.get('text_aux_weight', 0.0),
    )

  @classmethod
  def save_files(cls, table, workdir: str) -> None:
    table.text.vocabulary.save(workdir)  # The words the encoders read.

  def has_class_head(self) -> bool:
    return bool(self.aux_weight)

  def model_options(self, config, role: str) -> dict:
    if role == 'generator':
      return {}
    options = {'vector_conditioning': config.model.get('vector_conditioning', 'projection')}
    if self.aux_weight:  # Logits of the digit, then of the thickness and slant terciles.
      options.update(num_classes=self.num_classes + TERCILE_HEADS, conditioning='acgan')
    return options

  def wrap(self, config, generator, discriminator):
    """G and D each read the sentence with an encoder of their own."""
    t = config.text
    encoder = lambda: text_models.TextEncoder(
      vocabulary_size=self.vocabulary_size,
      max_words=captions.MAX_WORDS,
      width=t.encoder_width,
      depth=t.encoder_depth,
      heads=t.encoder_heads,
      features=t.encoder_features,
    )
    generator = text_models.TextGenerator(
      encoder(),
      generator,
      modulate=config.model.get('vector_modulation', False),
      code_noise=t.get('code_noise', 0.0),
      frozen=t.get('freeze_generator_encoder', False),
    )
    return generator, text_models.TextDiscriminator(encoder(), discriminator)

  def inputs(self, value) -> base.Inputs:
    return base.Inputs(kwargs={'text': value['ids']})

  def real(self, batch, key):
    real, mismatched = sentences(batch, jax.random.fold_in(key, 1))
    truth = None
    if self.aux_weight:
      codes = batch['codes'].astype(jnp.int32)
      truth = jnp.concatenate([batch['label'][:, None], codes], axis=-1)
    return real, (mismatched, truth)

  def dummy(self, n: int):
    return {'ids': jnp.zeros((n, captions.MAX_WORDS), jnp.int32)}

  def extra_parts(self, real_images, condition: dict, extra) -> list:
    if not self.mismatch_weight:
      return []
    return [('mismatched', real_images, {**condition, self.name: extra[0].value})]

  def d_terms(self, view: base.DView) -> dict:
    mismatched, truth = view.extra[self.name]
    terms = {}
    if self.aux_weight:  # Fitted on real digits, whose digit and terciles are all known.
      real_classes = view.heads['real']['classes']
      terms['d_text_aux'] = (self.aux_weight, aux_loss(real_classes, truth, self.num_classes))
    if self.mismatch_weight:
      value = losses.mismatch(
        view.loss, view.logits['real'], view.logits['mismatched'], mismatched.contradicts
      )
      terms['d_mismatch'] = (self.mismatch_weight, value)
    return terms

  def g_terms(self, view: base.GView) -> dict:
    if not self.aux_weight:  # What the fake's sentence names, and nothing it leaves open.
      return {}
    named = view.condition[self.name]['named']
    return {
      'g_text_aux': (self.aux_weight, aux_loss(view.heads['classes'], named, self.num_classes))
    }

  def pretrain(self, gan, state, table, config, rng):
    """The state with both encoders first trained to read what the training captions name
    (gan_jax/models/text.py's `pretrain`), with config.text.pretrain_steps > 0."""
    steps = config.text.get('pretrain_steps', 0)
    if not steps:
      return state
    rows = table.text
    k = rows.ids.shape[1]
    ids = rows.ids.reshape(-1, rows.ids.shape[-1])
    labels = np.repeat(table.labels, k)[:, None]
    said = np.concatenate([labels, rows.named.reshape(-1, rows.named.shape[-1])], axis=-1)
    encoder = gan.generator.encoder.clone(parent=None)
    params = text_models.pretrain(
      encoder,
      jnp.asarray(ids),
      jnp.asarray(said.astype(np.int32)),
      table.num_classes,
      jax.random.fold_in(rng, 7),
      steps,
    )
    g_params = dict(state.g_params, encoder=params)
    d_params = dict(state.d_params, encoder=jax.tree.map(jnp.copy, params))
    return state.replace(
      g_params=g_params, d_params=d_params, ema_params=jax.tree.map(jnp.copy, g_params)
    )
