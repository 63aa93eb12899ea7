"""Sentences into a GAN: a small Flax text encoder and the wrappers that give G and D each
their own.

TextEncoder: word ids (B, L), 0 = padding -> embedding + learned positions -> pre-norm
transformer blocks (self-attention over the words of the sentence, MLP) -> mean over the words
-> LayerNorm -> Dense -> (B, features). TextGenerator concatenates the encoding to z (and
optionally modulates G's batch norms with it); TextDiscriminator hands it to D as its condition
vector, judged by projection (<W e, phi(x)>). G and D train their encoders with their own losses.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax


class TextEncoder(nn.Module):
  vocabulary_size: int
  max_words: int
  width: int = 64
  depth: int = 1
  heads: int = 4
  features: int = 32

  @nn.compact
  def __call__(self, ids):
    words = ids > 0
    x = nn.Embed(self.vocabulary_size, self.width, name='embed')(ids)
    positions = self.param(
      'positions', nn.initializers.normal(0.02), (self.max_words, self.width)
    ).astype(x.dtype)
    x = x + positions[None, : ids.shape[1]]
    mask = nn.make_attention_mask(words, words)
    for i in range(self.depth):
      y = nn.LayerNorm(name=f'block{i}_norm1')(x)
      y = nn.MultiHeadDotProductAttention(num_heads=self.heads, name=f'block{i}_attention')(
        y, y, mask=mask
      )
      x = x + y
      y = nn.LayerNorm(name=f'block{i}_norm2')(x)
      y = nn.Dense(2 * self.width, name=f'block{i}_mlp1')(y)
      x = x + nn.Dense(self.width, name=f'block{i}_mlp2')(nn.gelu(y))
    weight = words[..., None].astype(x.dtype)
    pooled = jnp.sum(x * weight, axis=1) / jnp.maximum(jnp.sum(weight, axis=1), 1.0)
    return nn.Dense(self.features, name='out')(nn.LayerNorm(name='norm')(pooled))


class TextGenerator(nn.Module):
  """G conditioned on a sentence: its encoding joins z (and with `modulate`, FiLM)."""

  encoder: nn.Module
  generator: nn.Module
  modulate: bool = False
  code_noise: float = 0.0
  frozen: bool = False

  def __call__(self, z, labels=None, train: bool = True, text=None):
    encoded = self.encoder(text).astype(z.dtype)
    if self.frozen:
      encoded = jax.lax.stop_gradient(encoded)
    if self.code_noise:
      features = encoded.shape[-1]
      encoded = encoded - jnp.mean(encoded, axis=-1, keepdims=True)
      encoded = encoded * jax.lax.rsqrt(jnp.mean(encoded**2, axis=-1, keepdims=True) + 1e-6)
      encoded = encoded + self.code_noise * z[:, -features:]
      z = z[:, :-features]
    extra = {'modulation': encoded} if self.modulate else {}
    return self.generator(jnp.concatenate([z, encoded], axis=-1), labels, train=train, **extra)


class TextDiscriminator(nn.Module):
  """D judging (image, sentence) pairs: the sentence's encoding is D's condition vector."""

  encoder: nn.Module
  discriminator: nn.Module

  def __call__(self, x, labels=None, train: bool = True, text=None):
    return self.discriminator(x, labels, train=train, vector=self.encoder(text).astype(x.dtype))


class SentenceReader(nn.Module):
  """A text encoder with heads reading what a sentence names: the digit, and each attribute's
  tercile or "any" (class 3). Pretrains the encoder on the captions alone (`pretrain`)."""

  encoder: nn.Module
  num_classes: int

  @nn.compact
  def __call__(self, ids):
    return nn.Dense(self.num_classes + 2 * 4, name='heads')(nn.gelu(self.encoder(ids)))


def reader_loss(logits, said, num_classes: int):
  """Cross-entropy of the digit and of both attributes' terciles ("any" = class 3) from a
  SentenceReader's logits and `said` (B, 3): digit, thickness, slant (-1 = any)."""
  heads = jnp.split(logits, [num_classes, num_classes + 4], axis=-1)
  targets = jnp.where(said < 0, 3, said).at[:, 0].set(said[:, 0])
  total = 0.0
  for head, target in zip(heads, targets.T):
    total += jnp.mean(optax.softmax_cross_entropy_with_integer_labels(head, target))
  return total


def pretrain(encoder: nn.Module, ids, said, num_classes: int, rng, steps: int, batch_size=256):
  """The parameters of `encoder` trained for `steps` Adam steps to read what each sentence
  names: ids (N, L) int32 word ids, said (N, 3) int32 (digit, thickness, slant; -1 = any).
  Pure and deterministic for `rng`: it runs inside the GAN's jitted init."""
  reader = SentenceReader(encoder, num_classes)
  init_rng, loop_rng = jax.random.split(rng)
  params = reader.init(init_rng, ids[:2])['params']
  tx = optax.adam(1e-3)
  opt = tx.init(params)

  def step(i, carry):
    params, opt = carry
    rows = jax.random.randint(jax.random.fold_in(loop_rng, i), (batch_size,), 0, ids.shape[0])
    loss = lambda p: reader_loss(reader.apply({'params': p}, ids[rows]), said[rows], num_classes)
    grads = jax.grad(loss)(params)
    updates, opt = tx.update(grads, opt, params)
    return optax.apply_updates(params, updates), opt

  params, _ = jax.lax.fori_loop(0, steps, step, (params, opt))
  return params['encoder']
