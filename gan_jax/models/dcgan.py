"""DCGAN (Radford et al. 2016) for 28 or 32 px images, optionally class-conditional.

Generator: z -> Dense -> (s x s x 4w) -> [UpConv2x, BN, ReLU] x n -> Conv3x3 -> tanh, where
s * 2^n is the image size (7 * 4 = 28, 4 * 8 = 32). Discriminator: [Conv4x4 stride 2, LeakyReLU]
x n -> Dense -> one logit; no batch norm in D, so real and fake batches never mix statistics
and gradient penalties stay per-example. Conditioning (num_classes > 0): G concatenates a label
embedding to z; D adds a projection term <embed(y), features> (Miyato & Koyama 2018). A
condition vector may also modulate G's batch norms (FiLM).
"""

import flax.linen as nn
import jax.numpy as jnp

from gan_jax.models import layers


def start_size(image_size: int) -> tuple[int, int]:
  """The smallest feature map (4..7 px) and the number of x2 upsamplings to reach image_size."""
  size, n = image_size, 0
  while size > 7 and size % 2 == 0:
    size, n = size // 2, n + 1
  if size < 4 or n == 0:
    raise ValueError(f'image size {image_size} must be 4..7 px times a power of two, e.g. 28, 32')
  return size, n


class Generator(nn.Module):
  """z (B, latent) [+ labels (B,)] -> images (B, H, W, C) in [-1, 1]."""

  image_shape: tuple[int, int, int]
  width: int = 64
  num_classes: int = 0

  @nn.compact
  def __call__(self, z, labels=None, train: bool = True, modulation=None):
    """`modulation` (B, k), when given, scales and shifts every batch norm's output per
    channel (FiLM, Perez et al. 2018), from zero-initialised maps: the condition vector
    reaches every resolution, not only the first layer."""
    size, n = start_size(self.image_shape[0])
    batch_norm = lambda: nn.BatchNorm(use_running_average=not train, momentum=0.9)

    def norm(x):
      x = batch_norm()(x)
      if modulation is None:
        return x
      film = nn.Dense(2 * x.shape[-1], kernel_init=nn.initializers.zeros)(modulation)
      scale, shift = jnp.split(film.astype(x.dtype)[:, None, None, :], 2, axis=-1)
      return x * (1.0 + scale) + shift

    if self.num_classes:
      z = jnp.concatenate([z, nn.Embed(self.num_classes, z.shape[-1])(labels)], axis=-1)
    channels = self.width * 2**n
    x = nn.Dense(size * size * channels, use_bias=False)(z)
    x = nn.relu(norm(x.reshape(-1, size, size, channels)))
    for i in range(n):
      x = layers.UpConv2x(self.width * 2 ** (n - 1 - i), use_bias=False)(x)
      x = nn.relu(norm(x))
    return jnp.tanh(layers.Conv(self.image_shape[-1], (3, 3))(x))


class Discriminator(nn.Module):
  """images (B, H, W, C) [+ labels (B,)] -> logits (B,), or (B, 1 + classes) for AC-GAN."""

  width: int = 64
  num_classes: int = 0
  conditioning: str = 'projection'  # Or 'acgan': an auxiliary classifier head, labels unused.
  spectral_norm: bool = False
  vector_conditioning: str = 'projection'  # How a condition vector is judged (layers.vector_head).

  @nn.compact
  def __call__(self, x, labels=None, train: bool = True, vector=None):
    # The power iteration advances only in D's own update (train, 'batch_stats' mutable).
    update = train and self.is_mutable_collection('batch_stats')
    sn = lambda layer, h: layers.maybe_spectral_norm(layer, self.spectral_norm, update)(h)
    _, n = start_size(x.shape[1])
    for i in range(n):
      layer = layers.Conv(self.width * 2**i, (4, 4), strides=2)
      x = nn.leaky_relu(sn(layer, x), 0.2)
    features = x.reshape(x.shape[0], -1)
    out = layers.discriminator_head(features, labels, self.num_classes, self.conditioning, sn)
    return layers.vector_head(out, features, vector, self.vector_conditioning, sn)
