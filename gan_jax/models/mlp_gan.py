"""The article's GAN, made correct: a dense-then-conv generator from 100-d noise and a conv D.

The article's Keras code stacks Dense 256-512-1024-(7x7x256) with LeakyReLU and batch norm
(momentum 0.8), then 3x3 convs of 128 channels. Its bugs are fixed here: stride-2 convs
*downsampled* 7 px maps (now the maps are upsampled x2 twice to 28 px, nearest + conv,
Keras' UpSampling2D idiom); the last layer gave 10 channels with batch norm after tanh (now one
channel per image channel, tanh last); Dense layers applied ReLU then LeakyReLU (now LeakyReLU
only); D ended in a sigmoid (now a logit; the loss applies the sigmoid stably); D used batch
norm on mixed real/fake batches (dropped). `width` (default 64, the article's 128) sets the
conv channels so the config can trade quality for CPU time.
"""

import flax.linen as nn
import jax.numpy as jnp

from gan_jax.models import layers


class Generator(nn.Module):
  image_shape: tuple[int, int, int]
  width: int = 64
  dense_widths: tuple[int, ...] = (256, 512, 1024)
  num_classes: int = 0

  @nn.compact
  def __call__(self, z, labels=None, train: bool = True):
    height, width, channels = self.image_shape
    norm = lambda: nn.BatchNorm(use_running_average=not train, momentum=0.8)
    if self.num_classes:
      z = jnp.concatenate([z, nn.Embed(self.num_classes, z.shape[-1])(labels)], axis=-1)
    x = z
    for features in (*self.dense_widths, height // 4 * width // 4 * 256):
      x = norm()(nn.leaky_relu(nn.Dense(features, use_bias=False)(x), 0.2))
    x = x.reshape(-1, height // 4, width // 4, 256)
    for convs in (2, 2):  # Up to 14 px, two convs; up to 28 px, two convs.
      x = jnp.repeat(jnp.repeat(x, 2, axis=1), 2, axis=2)
      for _ in range(convs):
        layer = layers.Conv(self.width, (3, 3), use_bias=False)
        x = nn.leaky_relu(norm()(layer(x)), 0.2)
    return jnp.tanh(layers.Conv(channels, (3, 3))(x))


class Discriminator(nn.Module):
  width: int = 64
  dense_widths: tuple[int, ...] = (512, 256)
  num_classes: int = 0
  conditioning: str = 'projection'  # Or 'acgan'.
  spectral_norm: bool = False
  vector_conditioning: str = 'projection'  # How a condition vector is judged (layers.vector_head).

  @nn.compact
  def __call__(self, x, labels=None, train: bool = True, vector=None):
    # The power iteration advances only in D's own update (train, 'batch_stats' mutable).
    update = train and self.is_mutable_collection('batch_stats')
    sn = lambda layer, h: layers.maybe_spectral_norm(layer, self.spectral_norm, update)(h)
    for strides in (2, 1, 1, 1):  # The article's D: one stride-2 conv, then three more.
      layer = layers.Conv(self.width, (3, 3), strides=strides)
      x = nn.leaky_relu(sn(layer, x), 0.2)
    features = x.reshape(x.shape[0], -1)
    for width in self.dense_widths:
      features = nn.leaky_relu(sn(nn.Dense(width), features), 0.2)
    out = layers.discriminator_head(features, labels, self.num_classes, self.conditioning, sn)
    return layers.vector_head(out, features, vector, self.vector_conditioning, sn)
