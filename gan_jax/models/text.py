"""Sentences into a GAN: a small Flax text encoder and the wrappers that give G and D each
their own.

TextEncoder: word ids (B, L), 0 = padding -> embedding + learned positions -> pre-norm
transformer blocks (self-attention over the words of the sentence, MLP) -> mean over the words
-> LayerNorm -> Dense -> (B, features). TextGenerator concatenates the encoding to z (and
optionally modulates G's batch norms with it); TextDiscriminator hands it to D as its condition
vector, judged by projection (<W e, phi(x)>). G and D train their encoders with their own losses.
"""

import flax.linen as nn
import jax.numpy as jnp


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

  def __call__(self, z, labels=None, train: bool = True, text=None):
    encoded = self.encoder(text).astype(z.dtype)
    extra = {'modulation': encoded} if self.modulate else {}
    return self.generator(jnp.concatenate([z, encoded], axis=-1), labels, train=train, **extra)


class TextDiscriminator(nn.Module):
  """D judging (image, sentence) pairs: the sentence's encoding is D's condition vector."""

  encoder: nn.Module
  discriminator: nn.Module

  def __call__(self, x, labels=None, train: bool = True, text=None):
    return self.discriminator(x, labels, train=train, vector=self.encoder(text).astype(x.dtype))
