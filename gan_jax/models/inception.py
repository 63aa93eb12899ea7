"""pytorch-fid's "FID Inception" (Inception-v3 as in TensorFlow's FID code) in Flax, exactly.

The network every published FID, KID and Inception Score is computed with: torchvision's
Inception3 with 1,008 classes and pytorch-fid's patches (average pooling that leaves the padding
out of the mean in the A, C and first E blocks; max pooling in the last E block's pool branch).
Module and parameter names follow torch's, so a state dict maps onto the variables by name
(`variables_from_state_dict`). The input is float images in [0, 1], NHWC; like pytorch-fid, they
are resized to 299x299 bilinearly with align_corners=False semantics (no antialiasing) and scaled
to [-1, 1]. Greyscale images are repeated to three channels, as the literature does for MNIST.
Every conv and matmul runs at HIGHEST precision so that accelerators do not drop to TF32.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from gan_jax.errors import UserError

SIZE = 299
NUM_CLASSES = 1008
FEATURES = 2048
HIGHEST = jax.lax.Precision.HIGHEST


class BasicConv2d(nn.Module):
  """conv (no bias) -> batch norm (eps 1e-3, running statistics) -> ReLU."""

  features: int
  kernel: tuple[int, int]
  stride: int = 1
  padding: tuple[int, int] = (0, 0)

  @nn.compact
  def __call__(self, x):
    (ph, pw) = self.padding
    x = nn.Conv(
      self.features,
      self.kernel,
      strides=self.stride,
      padding=((ph, ph), (pw, pw)),
      use_bias=False,
      precision=HIGHEST,
      name='conv',
    )(x)
    x = nn.BatchNorm(use_running_average=True, epsilon=1e-3, name='bn')(x)
    return nn.relu(x)


def _conv(features, kernel=1, stride=1, padding=0, name=None):
  kernel = (kernel, kernel) if isinstance(kernel, int) else kernel
  padding = (padding, padding) if isinstance(padding, int) else padding
  return BasicConv2d(features, kernel, stride, padding, name=name)


def _avg_pool(x):  # TensorFlow's: the padded zeros do not count in the mean.
  return nn.avg_pool(x, (3, 3), (1, 1), ((1, 1), (1, 1)), count_include_pad=False)


def _max_pool(x, stride=2, padding=0):
  pad = ((padding, padding), (padding, padding))
  return nn.max_pool(x, (3, 3), (stride, stride), pad)


class InceptionA(nn.Module):
  pool_features: int

  @nn.compact
  def __call__(self, x):
    b1 = _conv(64, name='branch1x1')(x)
    b5 = _conv(48, name='branch5x5_1')(x)
    b5 = _conv(64, 5, padding=2, name='branch5x5_2')(b5)
    b3 = _conv(64, name='branch3x3dbl_1')(x)
    b3 = _conv(96, 3, padding=1, name='branch3x3dbl_2')(b3)
    b3 = _conv(96, 3, padding=1, name='branch3x3dbl_3')(b3)
    bp = _conv(self.pool_features, name='branch_pool')(_avg_pool(x))
    return jnp.concatenate([b1, b5, b3, bp], -1)


class InceptionB(nn.Module):
  @nn.compact
  def __call__(self, x):
    b3 = _conv(384, 3, stride=2, name='branch3x3')(x)
    bd = _conv(64, name='branch3x3dbl_1')(x)
    bd = _conv(96, 3, padding=1, name='branch3x3dbl_2')(bd)
    bd = _conv(96, 3, stride=2, name='branch3x3dbl_3')(bd)
    return jnp.concatenate([b3, bd, _max_pool(x)], -1)


class InceptionC(nn.Module):
  channels_7x7: int

  @nn.compact
  def __call__(self, x):
    c = self.channels_7x7
    b1 = _conv(192, name='branch1x1')(x)
    b7 = _conv(c, name='branch7x7_1')(x)
    b7 = _conv(c, (1, 7), padding=(0, 3), name='branch7x7_2')(b7)
    b7 = _conv(192, (7, 1), padding=(3, 0), name='branch7x7_3')(b7)
    bd = _conv(c, name='branch7x7dbl_1')(x)
    bd = _conv(c, (7, 1), padding=(3, 0), name='branch7x7dbl_2')(bd)
    bd = _conv(c, (1, 7), padding=(0, 3), name='branch7x7dbl_3')(bd)
    bd = _conv(c, (7, 1), padding=(3, 0), name='branch7x7dbl_4')(bd)
    bd = _conv(192, (1, 7), padding=(0, 3), name='branch7x7dbl_5')(bd)
    bp = _conv(192, name='branch_pool')(_avg_pool(x))
    return jnp.concatenate([b1, b7, bd, bp], -1)


class InceptionD(nn.Module):
  @nn.compact
  def __call__(self, x):
    b3 = _conv(192, name='branch3x3_1')(x)
    b3 = _conv(320, 3, stride=2, name='branch3x3_2')(b3)
    b7 = _conv(192, name='branch7x7x3_1')(x)
    b7 = _conv(192, (1, 7), padding=(0, 3), name='branch7x7x3_2')(b7)
    b7 = _conv(192, (7, 1), padding=(3, 0), name='branch7x7x3_3')(b7)
    b7 = _conv(192, 3, stride=2, name='branch7x7x3_4')(b7)
    return jnp.concatenate([b3, b7, _max_pool(x)], -1)


class InceptionE(nn.Module):
  """The 8x8 block; `max_pool` is pytorch-fid's patch for the last one (Mixed_7c)."""

  max_pool: bool = False

  @nn.compact
  def __call__(self, x):
    b1 = _conv(320, name='branch1x1')(x)
    b3 = _conv(384, name='branch3x3_1')(x)
    b3 = jnp.concatenate(
      [
        _conv(384, (1, 3), padding=(0, 1), name='branch3x3_2a')(b3),
        _conv(384, (3, 1), padding=(1, 0), name='branch3x3_2b')(b3),
      ],
      -1,
    )
    bd = _conv(448, name='branch3x3dbl_1')(x)
    bd = _conv(384, 3, padding=1, name='branch3x3dbl_2')(bd)
    bd = jnp.concatenate(
      [
        _conv(384, (1, 3), padding=(0, 1), name='branch3x3dbl_3a')(bd),
        _conv(384, (3, 1), padding=(1, 0), name='branch3x3dbl_3b')(bd),
      ],
      -1,
    )
    pooled = _max_pool(x, stride=1, padding=1) if self.max_pool else _avg_pool(x)
    bp = _conv(192, name='branch_pool')(pooled)
    return jnp.concatenate([b1, b3, bd, bp], -1)


def _resize_matrix(in_size: int, out_size: int) -> np.ndarray:
  """(out, in) weights of torch's bilinear resize, align_corners=False, no antialiasing."""
  scale = np.float32(in_size / out_size)
  src = (np.arange(out_size, dtype=np.float32) + np.float32(0.5)) * scale - np.float32(0.5)
  src = np.maximum(src, np.float32(0))
  lo = np.minimum(src.astype(np.int64), in_size - 1)
  hi = np.minimum(lo + 1, in_size - 1)
  frac = src - lo.astype(np.float32)
  m = np.zeros((out_size, in_size), np.float32)
  np.add.at(m, (np.arange(out_size), lo), 1 - frac)
  np.add.at(m, (np.arange(out_size), hi), frac)
  return m


def preprocess(images):
  """float NHWC images in [0, 1] -> 299x299x3 in [-1, 1], exactly as pytorch-fid does."""
  if images.shape[-1] == 1:
    images = jnp.repeat(images, 3, axis=-1)
  if images.shape[-1] != 3:
    raise UserError(f'Inception reads 1- or 3-channel images, got {images.shape[-1]} channels')
  rows = jnp.asarray(_resize_matrix(images.shape[1], SIZE))
  cols = jnp.asarray(_resize_matrix(images.shape[2], SIZE))
  x = jnp.einsum('oh,nhwc->nowc', rows, images.astype(jnp.float32), precision=HIGHEST)
  x = jnp.einsum('pw,nowc->nopc', cols, x, precision=HIGHEST)
  return 2 * x - 1


class FIDInception(nn.Module):
  """Images in [0, 1] -> (2048-d pool features, 1,008 logits without the fc bias).

  The logits are pool @ fc.weight.T, without the bias: what the original TensorFlow Inception
  Score code (and torch-fidelity's 'logits_unbiased') reads."""

  @nn.compact
  def __call__(self, images):
    x = preprocess(images)
    x = _conv(32, 3, stride=2, name='Conv2d_1a_3x3')(x)
    x = _conv(32, 3, name='Conv2d_2a_3x3')(x)
    x = _conv(64, 3, padding=1, name='Conv2d_2b_3x3')(x)
    x = _max_pool(x)
    x = _conv(80, name='Conv2d_3b_1x1')(x)
    x = _conv(192, 3, name='Conv2d_4a_3x3')(x)
    x = _max_pool(x)
    for name, pool in (('Mixed_5b', 32), ('Mixed_5c', 64), ('Mixed_5d', 64)):
      x = InceptionA(pool, name=name)(x)
    x = InceptionB(name='Mixed_6a')(x)
    for name, c in (('Mixed_6b', 128), ('Mixed_6c', 160), ('Mixed_6d', 160), ('Mixed_6e', 192)):
      x = InceptionC(c, name=name)(x)
    x = InceptionD(name='Mixed_7a')(x)
    x = InceptionE(name='Mixed_7b')(x)
    x = InceptionE(max_pool=True, name='Mixed_7c')(x)
    pool = jnp.mean(x, axis=(1, 2))
    fc = self.param('fc', nn.initializers.lecun_normal(), (FEATURES, NUM_CLASSES))
    return pool, jnp.dot(pool, fc, precision=HIGHEST)


# Where each torch state-dict entry goes: (collection, flax leaf name, transform).
_LEAVES = {
  'conv.weight': (
    'params',
    'kernel',
    lambda w: w.transpose(2, 3, 1, 0) if w.ndim == 4 else w,
  ),  # OIHW -> HWIO
  'bn.weight': ('params', 'scale', None),
  'bn.bias': ('params', 'bias', None),
  'bn.running_mean': ('batch_stats', 'mean', None),
  'bn.running_var': ('batch_stats', 'var', None),
}


def variables_from_state_dict(state_dict: dict, source: str = 'the weights file') -> dict:
  """pytorch-fid's state dict ({name: array}) -> FIDInception's variables, checked in full:
  a missing, unexpected or misshapen entry is one UserError that names it."""
  variables = {'params': {}, 'batch_stats': {}}
  unexpected = []
  for name, value in state_dict.items():
    value = np.asarray(value)
    if name.endswith('num_batches_tracked'):
      continue
    if name == 'fc.weight':
      variables['params']['fc'] = value.T.astype(np.float32)
      continue
    if name == 'fc.bias':
      continue  # The logits are read without the bias (FIDInception's docstring says why).
    parts = name.split('.')
    leaf = _LEAVES.get('.'.join(parts[-2:]))
    if leaf is None:
      unexpected.append(name)
      continue
    collection, leaf_name, transform = leaf
    node = variables[collection]
    for part in parts[:-1]:
      node = node.setdefault(part, {})
    node[leaf_name] = (transform(value) if transform else value).astype(np.float32)
  expected = jax.eval_shape(
    FIDInception().init, jax.random.key(0), jax.ShapeDtypeStruct((1, SIZE, SIZE, 3), jnp.float32)
  )
  want = {
    jax.tree_util.keystr(p): v.shape for p, v in jax.tree_util.tree_leaves_with_path(expected)
  }
  have = {
    jax.tree_util.keystr(p): v.shape for p, v in jax.tree_util.tree_leaves_with_path(variables)
  }
  missing = sorted(set(want) - set(have))
  unexpected += sorted(set(have) - set(want))
  wrong = sorted(k for k in set(want) & set(have) if want[k] != have[k])
  for what, names in (('missing', missing), ('unexpected', unexpected), ('misshapen', wrong)):
    if names:
      raise UserError(
        f"{source} is not pytorch-fid's FID Inception: {len(names)} {what} entries, e.g. {names[0]}"
      )
  return variables
