"""Layers and helpers shared by the models.

`Conv` is flax's `nn.Conv` on the convolution that gan_jax/hardware.py slices by batch where
the backend runs faster that way. `UpConv2x` is PyTorch's `nn.ConvTranspose2d(cin, cout,
kernel_size=4, stride=2, padding=1)` computed without a strided transposed convolution, whose
kernel gradient is pathologically slow on XLA:CPU. Also: mixed-precision casts, spectral norm
on any layer, and the conditional discriminator head.
"""

from collections.abc import Callable
import functools

import flax.linen as nn
import jax
from jax import lax
import jax.numpy as jnp

from gan_jax import hardware

_DIMENSION_NUMBERS = ('NHWC', 'HWIO', 'NHWC')
# config.model.dtype: the dtype a model computes in. Parameters, optimizer state, EMA, batch-norm
# statistics and every loss and penalty stay float32 (see `cast_floating`).
COMPUTE_DTYPES = {'float32': jnp.float32, 'bfloat16': jnp.bfloat16}


def compute_dtype(name: str):
  """The jnp dtype `config.model.dtype` names."""
  if name not in COMPUTE_DTYPES:
    raise ValueError(f"dtype '{name}' is not one of {sorted(COMPUTE_DTYPES)}")
  return COMPUTE_DTYPES[name]


def cast_floating(tree, dtype):
  """Mixed precision at a model's boundary: float leaves of `tree` (parameters, inputs) cast to
  the compute dtype, so every layer computes in it; the float32 originals keep their dtype and
  autodiff casts their gradients back to float32. Integer leaves (labels) are left alone."""
  if dtype == jnp.float32:
    return tree
  return jax.tree.map(
    lambda x: x.astype(dtype) if jnp.issubdtype(jnp.asarray(x).dtype, jnp.floating) else x, tree
  )


# Every model convolution: nn.Conv with batch slicing applied by the hardware layer.
Conv = functools.partial(nn.Conv, conv_general_dilated=hardware.conv_general_dilated)

METHODS = ('phase', 'phase3x3', 'transpose')


def upconv2x_flops(batch: int, height: int, width: int, cin: int, cout: int) -> int:
  """Architecture FLOPs (2 per multiply-add) of one forward ``UpConv2x``.

  Every output pixel receives 2x2 of the 16 taps, so the multiply-adds are
  ``batch * (2*height) * (2*width) * 4 * cin * cout``
  (= ``batch * height * width * 16 * cin * cout``, the usual dense count of a
  4x4 transposed conv, zero padding included). This does not depend on the
  ``method``: 'phase3x3' really executes 2.25x that and 'transpose' may
  multiply zeros, but MFU should count architecture FLOPs. Backward adds
  about twice the forward (input and kernel gradients).
  """
  return 2 * batch * (2 * height) * (2 * width) * 4 * cin * cout


def _depth_to_space(phases: jax.Array) -> jax.Array:
  """(B, H, W, 2, 2, C) indexed [.., m, n, a, b, :] -> (B, 2H, 2W, C) at (2m+a, 2n+b)."""
  batch, height, width, _, _, channels = phases.shape
  interleaved = phases.transpose(0, 1, 3, 2, 4, 5)  # (B, H, a, W, b, C)
  return interleaved.reshape(batch, 2 * height, 2 * width, channels)


def _conv(x: jax.Array, kernel: jax.Array, padding) -> jax.Array:
  return lax.conv_general_dilated(x, kernel, (1, 1), padding, dimension_numbers=_DIMENSION_NUMBERS)


def upconv2x(x: jax.Array, kernel: jax.Array, method: str = 'phase') -> jax.Array:
  """torch ConvTranspose2d(k=4, s=2, p=1) of NHWC ``x`` with HWIO ``kernel``.

  In 1-D, torch's definition ``out[2i - 1 + k] += x[i] * w[k]`` gives
      out[2m + 0] = x[m-1] * w[3] + x[m]   * w[1]
      out[2m + 1] = x[m]   * w[2] + x[m+1] * w[0]
  i.e. output phase ``a`` is a 2-tap correlation of the input padded by
  (1-a, a) with taps ``w[::-1][a::2]``. In 2-D the four phases (a, b) are
  four stride-1 2x2 convolutions whose outputs are interleaved.
  """
  flipped = kernel[::-1, ::-1]
  if method == 'phase':
    # Padding inside the conv (rather than jnp.pad + slicing) is ~1.5-2x
    # faster in forward+backward on XLA:CPU.
    phases = [
      [_conv(x, flipped[a::2, b::2], ((1 - a, a), (1 - b, b))) for b in (0, 1)] for a in (0, 1)
    ]
    return _depth_to_space(jnp.stack([jnp.stack(row, -2) for row in phases], -3))
  if method == 'phase3x3':
    # One 3x3 conv over the 1-padded input: phase (a, b) reads rows a..a+1 and
    # columns b..b+1 of each 3x3 window; the other 5 taps are zeros.
    cin, cout = kernel.shape[2:]
    embedded = jnp.zeros((3, 3, cin, 2, 2, cout), kernel.dtype)
    for a in (0, 1):
      for b in (0, 1):
        embedded = embedded.at[a : a + 2, b : b + 2, :, a, b].set(flipped[a::2, b::2])
    out = _conv(x, embedded.reshape(3, 3, cin, 4 * cout), ((1, 1), (1, 1)))
    return _depth_to_space(out.reshape(*out.shape[:3], 2, 2, cout))
  if method == 'transpose':
    # Reference: the input dilated by 2, padded by k - 1 - p = 2, correlated
    # with the spatially flipped kernel (same op as flax nn.ConvTranspose).
    return lax.conv_transpose(
      x, flipped, (2, 2), ((2, 2), (2, 2)), dimension_numbers=_DIMENSION_NUMBERS
    )
  raise ValueError(f'unknown method {method!r}; expected one of {METHODS}')


class UpConv2x(nn.Module):
  """x2 upsampling layer equal to torch ``ConvTranspose2d(cin, features, 4, 2, 1)``.

  NHWC (B, H, W, cin) -> (B, 2H, 2W, features). The kernel has shape
  (4, 4, cin, features) and equals the torch weight (cin, cout, 4, 4)
  transposed by (2, 3, 0, 1). See ``upconv2x`` for the identity behind
  'phase' and ``upconv2x_flops`` for FLOP counting.
  """

  features: int
  use_bias: bool = True
  method: str = 'phase'
  kernel_init: Callable = nn.initializers.lecun_normal()
  bias_init: Callable = nn.initializers.zeros_init()

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    kernel = self.param('kernel', self.kernel_init, (4, 4, x.shape[-1], self.features))
    bias = self.param('bias', self.bias_init, (self.features,)) if self.use_bias else None
    x, kernel, bias = nn.dtypes.promote_dtype(x, kernel, bias)  # lax convs need equal dtypes
    y = hardware.sliced(upconv2x)(x, kernel, self.method)
    return y if bias is None else y + bias


def maybe_spectral_norm(layer: nn.Module, enabled: bool, update_stats: bool) -> Callable:
  """`layer`, or `layer` spectrally normalised (Miyato et al. 2018) when `enabled`.

  The power-iteration vectors live in the 'batch_stats' collection, i.e. in the train state,
  and advance one step per call with `update_stats` (the discriminator's own update).
  """
  if not enabled:
    return layer
  name = f'{layer.name}_sn' if layer.name else None

  def call(x, *args):
    # The normalised kernel in the input's dtype: mixed precision stays bfloat16 although the
    # power-iteration vectors and sigma are float32 (labels into an Embed: promote as usual).
    dtype = x.dtype if jnp.issubdtype(x.dtype, jnp.floating) else None
    return nn.SpectralNorm(layer, dtype=dtype, name=name)(x, *args, update_stats=update_stats)

  return call


def discriminator_head(
  features,
  labels,
  num_classes: int,
  conditioning: str,
  sn,
  kernel_init=nn.initializers.lecun_normal(),
):
  """The logit of a D's pooled features, conditioned on labels as `conditioning` says.

  Unconditional: Dense -> (B,). 'projection' (Miyato & Koyama 2018): the logit plus
  <embed(y), features>. 'acgan' (Odena et al. 2017): (B, 1 + num_classes) real/fake logit
  and class logits; labels are not an input. `sn(layer, x)` applies a layer (spectrally
  normalised or not). Call from inside a compact module.
  """
  logit = sn(nn.Dense(1, kernel_init=kernel_init, name='dense'), features)[:, 0]
  if not num_classes:
    return logit
  if conditioning == 'acgan':
    classes = nn.Dense(num_classes, kernel_init=kernel_init, name='class_dense')
    return jnp.concatenate([logit[:, None], sn(classes, features)], axis=-1)
  embed = nn.Embed(num_classes, features.shape[-1], embedding_init=kernel_init, name='embed')
  return logit + jnp.sum(sn(embed, labels) * features, axis=-1)


def vector_head(out, features, vector, mode: str, sn, kernel_init=nn.initializers.lecun_normal()):
  """D's judgement of a continuous condition vector (B, k), added to the head's `out` ((B,)
  logits, or (B, 1 + classes) for AC-GAN); `out` unchanged when `vector` is None.

  'projection' (Miyato & Koyama 2018, for a vector): the logit gains <W vector, features>.
  'regression': k predicted values are appended as the last columns of (B, 1 [+ classes] + k),
  which the loss fits to the real vector (an auxiliary regressor, as AC-GAN's classifier).
  """
  if vector is None:
    return out
  if mode == 'projection':
    dense = nn.Dense(
      features.shape[-1], use_bias=False, kernel_init=kernel_init, name='vector_embed'
    )
    term = jnp.sum(sn(dense, vector.astype(features.dtype)) * features, axis=-1)
    return out + term if out.ndim == 1 else out.at[:, 0].add(term)
  predicted = sn(nn.Dense(vector.shape[-1], kernel_init=kernel_init, name='vector_head'), features)
  return jnp.concatenate([out[:, None] if out.ndim == 1 else out, predicted], axis=-1)
