"""R3GAN's minimalist modern ResNet (Huang, Gokaslan, Kuleshov, Tompkin, NeurIPS 2024).

"The GAN is dead; long live the GAN! A Modern GAN Baseline": with the regularised relativistic
loss (losses 'rpgan' + R1 + R2) a plain ResNet trains without normalisation layers, minibatch
statistics, mapping networks or style modulation. As in the official code:

* A residual block is 1x1 conv (expand) -> bias + leaky ReLU -> grouped 3x3 conv -> bias +
  leaky ReLU -> 1x1 conv (project back), added to its input. Convs have no bias; the biases
  live in the activations.
* Fix-up style initialisation: weights are N(0, gain^2 / fan_in) with the leaky ReLU's gain
  scaled by L^(-1/4) (L = residual blocks in the network), and the block's last conv starts at
  zero, so every residual branch outputs 0 and every block is the identity at initialisation.
* G: z [+ class embedding] -> a learned s x s basis scaled per channel by a linear map of z
  -> blocks -> [1x1 conv if the width changes, bilinear x2 upsampling, blocks] x n -> 1x1 conv
  to the image channels (no tanh).
* D: 1x1 conv from the image -> [blocks, bilinear /2 downsampling, 1x1 conv if the width
  changes] x n -> blocks -> a depthwise s x s conv (the 'discriminative basis') -> linear
  (optionally through one hidden layer first, `head_width`: not in the paper).
  Conditional: the linear layer outputs an embedding that is dotted with a class embedding.

Simplified for small images (docs/r3gan.md): the basis is s x s with
s = 7 for 28 px (4 for 32 px, as in the paper), stage widths default to one width for every
stage (the paper's CIFAR-10 preset does the same), and the [1, 2, 1] resampling filter is
`jax.image.resize`'s bilinear kernel, which equals it inside the image and renormalises at the
border instead of padding with zeros.
"""

from collections.abc import Sequence
import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from gan_jax.models import dcgan
from gan_jax.models import layers

LEAKY_SLOPE = 0.2
# The gain that keeps a leaky ReLU's output variance equal to its input's (He et al. 2015).
ACTIVATION_GAIN = math.sqrt(2.0 / (1.0 + LEAKY_SLOPE**2))


def msr_init(gain: float = 1.0):
  """N(0, gain^2 / fan_in) weights (fan_in counts one group's inputs for grouped convs)."""
  if gain == 0:
    return nn.initializers.zeros_init()
  return nn.initializers.variance_scaling(gain**2, 'fan_in', 'normal')


def _upsample_axis(x: jax.Array, axis: int) -> jax.Array:
  """x2 along `axis`: output 2m is 3/4 of input m and 1/4 of m - 1, output 2m + 1 3/4 of m and
  1/4 of m + 1; the border repeats its edge pixel (jax.image.resize's renormalised weights)."""
  n = x.shape[axis]
  pad = [(0, 0)] * x.ndim
  pad[axis] = (1, 1)
  padded = jnp.pad(x, pad, mode='edge')
  part = lambda start: jax.lax.slice_in_dim(padded, start, start + n, axis=axis)
  centre = 0.75 * part(1)
  pairs = jnp.stack([centre + 0.25 * part(0), centre + 0.25 * part(2)], axis=axis + 1)
  return pairs.reshape(x.shape[:axis] + (2 * n,) + x.shape[axis + 1 :])


def _downsample_axis(x: jax.Array, axis: int) -> jax.Array:
  """/2 along `axis` (even length): output m is [1, 3, 3, 1] / 8 over inputs 2m - 1 .. 2m + 2,
  the weights renormalised over the inputs that exist at the two borders (as
  jax.image.resize's antialiased linear kernel)."""
  n = x.shape[axis] // 2
  pad = [(0, 0)] * x.ndim
  pad[axis] = (1, 1)
  padded = jnp.pad(x, pad)
  shape = x.shape[:axis] + (n, 2) + x.shape[axis + 1 :]
  pairs = lambda start: jax.lax.slice_in_dim(padded, start, start + 2 * n, axis=axis).reshape(shape)
  tap = lambda t, k: jax.lax.index_in_dim(t, k, axis + 1, keepdims=False)
  left, right = pairs(0), pairs(2)
  y = (tap(left, 0) + 3 * tap(left, 1) + 3 * tap(right, 0) + tap(right, 1)) / 8
  border = np.ones(n, np.float32)
  border[0] = border[-1] = 8 / 7  # One tap of weight 1/8 falls outside.
  # In x's dtype: a float32 weight would promote a bfloat16 D to float32 from here on.
  return y * jnp.asarray(border.reshape((n,) + (1,) * (x.ndim - axis - 1)), x.dtype)


def resample(x: jax.Array, factor: float) -> jax.Array:
  """Bilinear x2 (`factor` 2) or antialiased /2 (`factor` 0.5) resampling of NHWC maps with
  R3GAN's [1, 2, 1] interpolative filter ([1, 3, 3, 1] / 8): jax.image.resize(x, ...,
  'linear', antialias=True) to float rounding, written as shifted slices because XLA:CPU ran
  resize's general gather-and-contract form ~16% of a whole mnist_r3gan step slower."""
  if factor == 2.0:
    return _upsample_axis(_upsample_axis(x, 1), 2)
  if factor == 0.5:
    if x.shape[1] % 2 or x.shape[2] % 2:
      raise ValueError(f'/2 resampling needs even map sizes, got {x.shape[1:3]}')
    return _downsample_axis(_downsample_axis(x, 1), 2)
  raise ValueError(f'resample supports factors 2 and 0.5, got {factor}')


def stage_widths(width: int, stages: int, widths: Sequence[int]) -> tuple[int, ...]:
  """Widths of the `stages` stages from the smallest resolution up: `widths` if given, else
  `width` for every stage."""
  if not widths:
    return (width,) * stages
  if len(widths) != stages:
    raise ValueError(f'{len(widths)} stage widths for {stages} stages')
  return tuple(widths)


class BiasedActivation(nn.Module):
  """A per-channel bias, then leaky ReLU (0.2): where R3GAN's biases live."""

  @nn.compact
  def __call__(self, x):
    return nn.leaky_relu(
      x + self.param('bias', nn.initializers.zeros_init(), (x.shape[-1],)), LEAKY_SLOPE
    )


class ResidualBlock(nn.Module):
  """x + conv1x1(act(grouped conv3x3(act(conv1x1(x))))); the branch starts at exactly 0."""

  expansion: int = 2
  group_size: int = 16  # Channels per group of the 3x3 conv (R3GAN's cardinality = C / this).
  num_blocks: int = 1  # L, the network's residual block count, for the branch init scale.
  spectral_norm: bool = False
  update_stats: bool = False

  @nn.compact
  def __call__(self, x):
    channels = x.shape[-1]
    expanded = channels * self.expansion
    group_size = min(self.group_size, expanded)  # Divides it: gan_jax/config_checks.py.
    gain = ACTIVATION_GAIN * self.num_blocks**-0.25

    def conv(features, kernel, init, groups, name):
      layer = layers.Conv(
        features,
        (kernel, kernel),
        use_bias=False,
        kernel_init=init,
        feature_group_count=groups,
        name=name,
      )
      return layers.maybe_spectral_norm(layer, self.spectral_norm, self.update_stats)

    y = conv(expanded, 1, msr_init(gain), 1, 'expand')(x)
    y = BiasedActivation(name='act1')(y)
    y = conv(expanded, 3, msr_init(gain), expanded // group_size, 'grouped')(y)
    y = BiasedActivation(name='act2')(y)
    return x + conv(channels, 1, msr_init(0.0), 1, 'project')(y)


class DiscriminativeBasis(nn.Module):
  """R3GAN's discriminative basis: one s x s filter per channel over the whole s x s map, i.e.
  a depthwise VALID conv to 1 x 1, computed as the contraction it is. XLA:CPU runs the
  depthwise conv form (feature_group_count = channels), and its double backprop for R1/R2,
  an order of magnitude slower. The kernel keeps nn.Conv's depthwise layout (s, s, 1, C)."""

  @nn.compact
  def __call__(self, x):
    kernel = self.param('kernel', msr_init(), (x.shape[1], x.shape[2], 1, x.shape[3]))
    return jnp.einsum('bhwc,hwc->bc', x, kernel[:, :, 0, :])


def _conv1x1(features, spectral_norm, update_stats, name):
  layer = layers.Conv(features, (1, 1), use_bias=False, kernel_init=msr_init(), name=name)
  return layers.maybe_spectral_norm(layer, spectral_norm, update_stats)


def _block(net, stages: int, update_stats: bool, i: int, j: int) -> ResidualBlock:
  """Block j of stage i of a Generator or Discriminator `net` (L = its blocks in all)."""
  return ResidualBlock(
    net.expansion,
    net.group_size,
    net.blocks_per_stage * (stages + 1),
    net.spectral_norm,
    update_stats,
    name=f'stage{i}_block{j}',
  )


class Generator(nn.Module):
  """z (B, latent) [+ labels (B,)] -> images (B, H, W, C), roughly in [-1, 1] (no tanh)."""

  image_shape: tuple[int, int, int]
  width: int = 64
  num_classes: int = 0
  blocks_per_stage: int = 2
  expansion: int = 2
  group_size: int = 16
  stage_widths: Sequence[int] = ()
  spectral_norm: bool = False

  @nn.compact
  def __call__(self, z, labels=None, train: bool = True):
    size, n = dcgan.start_size(self.image_shape[0])
    widths = stage_widths(self.width, n + 1, self.stage_widths)
    if self.num_classes:
      if labels is None:
        raise ValueError(f'a conditional generator ({self.num_classes} classes) needs labels')
      # R3GAN: a bias-free linear map of the one-hot label, as wide as the noise.
      embed = nn.Embed(
        self.num_classes,
        z.shape[-1],
        name='class_embed',
        embedding_init=nn.initializers.normal(self.num_classes**-0.5),
      )
      z = jnp.concatenate([z, embed(labels)], axis=-1)
    block = lambda i, j: _block(self, n, train, i, j)
    basis = self.param('basis', nn.initializers.normal(1.0), (size, size, widths[0]))
    x = (
      basis
      * nn.Dense(widths[0], use_bias=False, kernel_init=msr_init(), name='basis_scale')(z)[
        :, None, None, :
      ]
    )
    for i, width in enumerate(widths):
      if i:
        if width != widths[i - 1]:
          x = _conv1x1(width, self.spectral_norm, train, f'stage{i}_width')(x)
        x = resample(x, 2.0)
      for j in range(self.blocks_per_stage):
        x = block(i, j)(x)
    return _conv1x1(self.image_shape[-1], self.spectral_norm, train, 'to_image')(x)


class Discriminator(nn.Module):
  """images (B, H, W, C) [+ labels (B,)] -> logits (B,), or (B, 1 + classes) for AC-GAN."""

  width: int = 64
  num_classes: int = 0
  conditioning: str = 'projection'  # R3GAN's embedding product, or 'acgan'.
  spectral_norm: bool = False  # Not part of R3GAN; available for ablations.
  blocks_per_stage: int = 2
  expansion: int = 2
  group_size: int = 16
  stage_widths: Sequence[int] = ()  # Smallest resolution first, as for the generator.
  # > 0: a hidden layer of this width (dense -> bias + leaky ReLU) between the basis features
  # and the output, so the logit can depend on conjunctions of global features (e.g. which
  # digit is in each of Stacked MNIST's channels) and not only on their sum. 0: R3GAN's head.
  head_width: int = 0
  vector_conditioning: str = 'projection'  # How a condition vector is judged (layers.vector_head).

  @nn.compact
  def __call__(self, x, labels=None, train: bool = True, vector=None):
    size, n = dcgan.start_size(x.shape[1])
    widths = stage_widths(self.width, n + 1, self.stage_widths)[::-1]  # Largest first.
    update = train and self.is_mutable_collection('batch_stats')  # SN power iteration only.
    conv1x1 = lambda w, name: _conv1x1(w, self.spectral_norm, update, name)
    sn = lambda layer, h: layers.maybe_spectral_norm(layer, self.spectral_norm, update)(h)
    x = conv1x1(widths[0], 'from_image')(x)
    for i, width in enumerate(widths):
      for j in range(self.blocks_per_stage):
        x = _block(self, n, update, i, j)(x)
      if i < n:
        x = resample(x, 0.5)
        if widths[i + 1] != width:
          x = conv1x1(widths[i + 1], f'stage{i}_width')(x)
    if x.shape[1:3] != (size, size):
      raise ValueError(f'expected {size}x{size} maps before the basis, got {x.shape[1:3]}')
    # The discriminative basis: one s x s filter per channel, no padding -> (B, C).
    features = sn(DiscriminativeBasis(name='basis'), x)
    if self.head_width:
      hidden = nn.Dense(
        self.head_width, use_bias=False, kernel_init=msr_init(ACTIVATION_GAIN), name='hidden'
      )
      features = BiasedActivation(name='hidden_act')(sn(hidden, features))
    if self.num_classes and self.conditioning == 'projection':
      if labels is None:
        raise ValueError(f'a conditional discriminator ({self.num_classes} classes) needs labels')
      # R3GAN: the features map to an embedding, dotted with the class's embedding.
      dim = widths[0]  # As R3GAN: the width of D's first stage.
      out = sn(nn.Dense(dim, use_bias=False, kernel_init=msr_init(), name='out'), features)
      embed = nn.Embed(
        self.num_classes,
        dim,
        name='class_embed',
        embedding_init=nn.initializers.normal((dim * self.num_classes) ** -0.5),
      )
      logit = jnp.sum(out * sn(embed, labels), axis=-1)
    else:
      logit = layers.discriminator_head(
        features, labels, self.num_classes, self.conditioning, sn, kernel_init=msr_init()
      )
    return layers.vector_head(logit, features, vector, self.vector_conditioning, sn, msr_init())
