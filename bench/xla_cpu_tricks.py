"""Candidate XLA:CPU speed-ups for gan_jax's DCGAN, prototyped on the bench side only.

`conv_with_phase_dx` is a drop-in `conv_general_dilated` for flax `nn.Conv` whose input
gradient, for a 4x4 stride-2 conv padded (1, 1) (the DCGAN discriminator's, on even sizes),
is gan_jax's own `upconv2x` ('phase': four stride-1 2x2 convs) instead of XLA's transpose (one
lhs-dilated convolution, which XLA:CPU runs on its generic path: the 'convolution-base-dilated'
thunk in bench/profile_step.py). The identity: the transpose of torch Conv2d(k4, s2, p1) is
torch ConvTranspose2d(k4, s2, p1) with the same weight, and `upconv2x` is exactly that with
the HWIO kernel's in/out swapped. Everything else (forward, kernel gradient) is unchanged.

`patch_discriminator_convs()` makes every flax nn.Conv that gan_jax.models.dcgan builds in this
process use it (bench workers only: gan_jax itself is untouched).
"""

import functools

import jax
from jax import lax

from gan_jax.models.layers import upconv2x

_NHWC = ('NHWC', 'HWIO', 'NHWC')


def conv4x4s2(x, kernel):
  """NHWC/HWIO conv, 4x4 kernel, stride 2, padding (1, 1): the DCGAN discriminator's."""
  return lax.conv_general_dilated(x, kernel, (2, 2), ((1, 1), (1, 1)), dimension_numbers=_NHWC)


@jax.custom_vjp
def conv4x4s2_phase_dx(x, kernel):
  """NHWC/HWIO conv, 4x4 kernel, stride 2, padding (1, 1); input gradient via upconv2x."""
  return conv4x4s2(x, kernel)


def _fwd(x, kernel):
  return conv4x4s2(x, kernel), (x, kernel)


def _bwd(res, g):
  x, kernel = res
  dk = jax.vjp(lambda k: conv4x4s2(x, k), kernel)[1](g)[0]
  return upconv2x(g, kernel.transpose(0, 1, 3, 2), 'phase'), dk


conv4x4s2_phase_dx.defvjp(_fwd, _bwd)


def conv_with_phase_dx(lhs, rhs, window_strides, padding, lhs_dilation=None, rhs_dilation=None,
                       dimension_numbers=None, feature_group_count=1, precision=None, **kwargs):
  """lax.conv_general_dilated, routed to conv4x4s2_phase_dx where that is exact and useful."""
  spatial = tuple(lhs.shape[1:3])
  pads = (lax.padtype_to_pads(spatial, rhs.shape[:2], window_strides, padding)
          if isinstance(padding, str) else tuple(tuple(p) for p in padding))
  plain_dilation = all(d in (None, 1) for d in (lhs_dilation or (1,)) + (rhs_dilation or (1,)))
  if (tuple(rhs.shape[:2]) == (4, 4) and tuple(window_strides) == (2, 2)
      and tuple(map(tuple, pads)) == ((1, 1), (1, 1)) and plain_dilation
      and feature_group_count == 1 and lhs.shape[-1] > 1  # cin = 1: XLA's own dx is faster
      and _is_nhwc(dimension_numbers)):
    return conv4x4s2_phase_dx(lhs, rhs)
  return lax.conv_general_dilated(lhs, rhs, window_strides, padding, lhs_dilation=lhs_dilation,
                                  rhs_dilation=rhs_dilation, dimension_numbers=dimension_numbers,
                                  feature_group_count=feature_group_count, precision=precision,
                                  **kwargs)


def _is_nhwc(dimension_numbers):
  if dimension_numbers is None:
    return False
  if isinstance(dimension_numbers, lax.ConvDimensionNumbers):
    return dimension_numbers == lax.conv_dimension_numbers((1, 1, 1, 1), (1, 1, 1, 1), _NHWC)
  return tuple(dimension_numbers) == _NHWC


def patch_discriminator_convs():
  """Every nn.Conv that gan_jax.models.dcgan creates in this process uses conv_with_phase_dx."""
  import types  # pylint: disable=g-import-not-at-top
  import flax.linen as nn  # pylint: disable=g-import-not-at-top
  from gan_jax.models import dcgan  # pylint: disable=g-import-not-at-top
  proxy = types.ModuleType('flax_linen_with_phase_dx')
  proxy.__dict__.update({k: getattr(nn, k) for k in dir(nn) if not k.startswith('__')})
  proxy.Conv = functools.partial(nn.Conv, conv_general_dilated=conv_with_phase_dx)
  dcgan.nn = proxy
