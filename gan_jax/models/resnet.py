"""SNGAN's ResNet generator and discriminator (Miyato et al. 2018, CIFAR), scaled by `width`.

Generator: z -> Dense -> (s, s, ch) -> n x GBlock(up) -> BN -> ReLU -> Conv3x3 -> tanh, with
s * 2^n the image size (7 * 4 = 28, 4 * 8 = 32; see `dcgan.start_size`). A GBlock is
BN-ReLU-Upsample-Conv3x3-BN-ReLU-Conv3x3 plus an Upsample + Conv1x1 shortcut; conditional
(num_classes > 0), its batch norms take a class-dependent gain and bias (`ConditionalBatchNorm`).

Discriminator: an 'optimized' DBlock (Conv-ReLU-Conv-AvgPool, shortcut AvgPool-Conv1x1), more
downsampling DBlocks, then `plain_blocks` non-downsampling ones; ReLU, global sum pooling and
Dense -> one logit, plus the projection sum(embed(y) * h) when conditional (Miyato & Koyama 2018).
Every Conv/Dense/Embed of D is wrapped in `nn.SpectralNorm` (optional in G). Its power-iteration
vectors live in the 'batch_stats' collection, i.e. in the train state's `d_stats`, and advance
one step per apply with `train=True` and 'batch_stats' mutable. Flax's `init` stores each wrapped
weight already divided by its first sigma estimate, so initial kernels have spectral norm ~1
rather than the initializer's scale; the normalised forward pass does not depend on that scale.
"""

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp

from gan_jax.models import dcgan
from gan_jax.models import layers

# SNGAN's initialisation: Glorot uniform, with gain sqrt(2) on the residual-branch convs (each
# follows a ReLU) and gain 1 on shortcuts and the input/output layers.
_RESIDUAL_INIT = nn.initializers.variance_scaling(2.0, 'fan_avg', 'uniform')
_INIT = nn.initializers.xavier_uniform()
_BN_MOMENTUM = 0.9


def _upsample(x: jax.Array) -> jax.Array:
  """Nearest-neighbour x2 upsampling of NHWC maps."""
  return jnp.repeat(jnp.repeat(x, 2, axis=1), 2, axis=2)


def _avg_pool(x: jax.Array) -> jax.Array:
  return nn.avg_pool(x, (2, 2), strides=(2, 2))


def _check_labels(num_classes: int, labels):
  if num_classes and labels is None:
    raise ValueError(f'a conditional model ({num_classes} classes) needs labels')


class ConditionalBatchNorm(nn.Module):
  """Batch norm whose per-channel gain and bias are embeddings of the class label.

  (B, ..., C) maps and (B,) int labels -> (B, ..., C). The normalisation is a BatchNorm without
  its own scale and bias; gains start at 1 and biases at 0, so at initialisation this equals
  a plain BatchNorm whatever the label.
  """

  num_classes: int
  momentum: float = _BN_MOMENTUM
  epsilon: float = 1e-5

  @nn.compact
  def __call__(self, x, labels, train: bool = True):
    x = nn.BatchNorm(
      use_running_average=not train,
      momentum=self.momentum,
      epsilon=self.epsilon,
      use_scale=False,
      use_bias=False,
      name='bn',
    )(x)
    features = x.shape[-1]
    shape = (x.shape[0],) + (1,) * (x.ndim - 2) + (features,)
    gain = nn.Embed(self.num_classes, features, embedding_init=nn.initializers.ones, name='gain')(
      labels
    )
    bias = nn.Embed(self.num_classes, features, embedding_init=nn.initializers.zeros, name='bias')(
      labels
    )
    return x * gain.reshape(shape) + bias.reshape(shape)


def _conv(features, spectral_norm, update_stats, kernel, init, name):
  """A k x k 'SAME' conv with bias, spectrally normalised if asked."""
  layer = layers.Conv(features, (kernel, kernel), kernel_init=init, name=name)
  return layers.maybe_spectral_norm(layer, spectral_norm, update_stats)


def _batch_norm(x, labels, num_classes: int, train: bool, name: str):
  """A conditional batch norm when `num_classes` > 0, else a plain one (scale and bias)."""
  if num_classes:
    return ConditionalBatchNorm(num_classes, name=name)(x, labels, train)
  return nn.BatchNorm(use_running_average=not train, momentum=_BN_MOMENTUM, name=name)(x)


class GBlock(nn.Module):
  """Residual x2 upsampling block: (B, H, W, cin) -> (B, 2H, 2W, features)."""

  features: int
  num_classes: int = 0
  spectral_norm: bool = False

  @nn.compact
  def __call__(self, x, labels=None, train: bool = True):
    conv = functools.partial(_conv, self.features, self.spectral_norm, train)

    h = nn.relu(_batch_norm(x, labels, self.num_classes, train, 'bn1'))
    h = conv(3, _RESIDUAL_INIT, 'conv1')(_upsample(h))
    h = nn.relu(_batch_norm(h, labels, self.num_classes, train, 'bn2'))
    h = conv(3, _RESIDUAL_INIT, 'conv2')(h)
    # SNGAN upsamples, then applies the 1x1 conv; the two commute, and convolving first is 4x
    # cheaper.
    return h + _upsample(conv(1, _INIT, 'shortcut')(x))


class DBlock(nn.Module):
  """Residual discriminator block: (B, H, W, cin) -> (B, H/2, W/2, features) if `downsample`.

  `optimized` is SNGAN's first block, applied to the images: no ReLU before the first conv,
  and an AvgPool-Conv1x1 shortcut that always exists.
  """

  features: int
  downsample: bool = True
  optimized: bool = False
  spectral_norm: bool = True

  @nn.compact
  def __call__(self, x, update_stats: bool):
    conv = functools.partial(_conv, self.features, self.spectral_norm, update_stats)

    pool = _avg_pool if self.downsample else (lambda h: h)
    h = x if self.optimized else nn.relu(x)
    h = conv(3, _RESIDUAL_INIT, 'conv1')(h)
    h = pool(conv(3, _RESIDUAL_INIT, 'conv2')(nn.relu(h)))
    if self.optimized or self.downsample or x.shape[-1] != self.features:
      # SNGAN's non-optimized blocks convolve, then pool; both are linear, so pooling first
      # gives the same result 4x cheaper.
      return h + conv(1, _INIT, 'shortcut')(pool(x))
    return h + x


class Generator(nn.Module):
  """z (B, latent) [+ labels (B,)] -> images (B, H, W, C) in [-1, 1].

  Every block has `width * channel_multiplier` channels (SNGAN CIFAR: width 64 -> 256).
  """

  image_shape: tuple[int, int, int]
  width: int = 64
  num_classes: int = 0
  channel_multiplier: int = 4
  spectral_norm: bool = False  # SN on every Conv/Dense (not on the class gains/biases).

  @nn.compact
  def __call__(self, z, labels=None, train: bool = True):
    _check_labels(self.num_classes, labels)
    size, n = dcgan.start_size(self.image_shape[0])
    channels = self.width * self.channel_multiplier
    dense = nn.Dense(size * size * channels, kernel_init=_INIT, name='dense')
    x = layers.maybe_spectral_norm(dense, self.spectral_norm, train)(z)
    x = x.reshape(-1, size, size, channels)
    for i in range(n):
      x = GBlock(channels, self.num_classes, self.spectral_norm, name=f'block{i}')(x, labels, train)
    # SNGAN's last batch norm is unconditional.
    x = nn.relu(nn.BatchNorm(use_running_average=not train, momentum=_BN_MOMENTUM, name='bn')(x))
    out = layers.Conv(self.image_shape[-1], (3, 3), kernel_init=_INIT, name='conv_out')
    return jnp.tanh(layers.maybe_spectral_norm(out, self.spectral_norm, train)(x))


class Discriminator(nn.Module):
  """images (B, H, W, C) [+ labels (B,)] -> logits (B,).

  `down_blocks` downsampling blocks (None: down to the generator's start size, 7 px for 28,
  4 px for 32; SNGAN's CIFAR D is `down_blocks=2`), then `plain_blocks` blocks at that size,
  all with `width * channel_multiplier` channels (SNGAN CIFAR: width 64 -> 128).
  """

  width: int = 64
  num_classes: int = 0
  channel_multiplier: int = 2
  down_blocks: int | None = None
  plain_blocks: int = 2
  spectral_norm: bool = True
  conditioning: str = 'projection'  # Or 'acgan': an auxiliary classifier head.
  vector_conditioning: str = 'projection'  # How a condition vector is judged (layers.vector_head).

  @nn.compact
  def __call__(self, x, labels=None, train: bool = True, vector=None):
    if self.conditioning == 'projection':
      _check_labels(self.num_classes, labels)
    _, n = dcgan.start_size(x.shape[1])
    downs = n if self.down_blocks is None else self.down_blocks  # 1..n: config_checks.py.
    # The power iteration advances only in D's own update (train=True with 'batch_stats'
    # mutable). Inside G's update (train=False) it reads the stored vectors; an apply with
    # train=True but an immutable collection (e.g. a penalty closure) also leaves them alone
    # rather than failing.
    update = train and self.is_mutable_collection('batch_stats')
    channels = self.width * self.channel_multiplier
    for i in range(downs + self.plain_blocks):
      x = DBlock(
        channels,
        downsample=i < downs,
        optimized=i == 0,
        spectral_norm=self.spectral_norm,
        name=f'block{i}',
      )(x, update)
    features = jnp.sum(nn.relu(x), axis=(1, 2))  # Global sum pooling, as in SNGAN.
    sn = lambda layer, h: layers.maybe_spectral_norm(layer, self.spectral_norm, update)(h)
    out = layers.discriminator_head(
      features, labels, self.num_classes, self.conditioning, sn, kernel_init=_INIT
    )
    return layers.vector_head(out, features, vector, self.vector_conditioning, sn, _INIT)
