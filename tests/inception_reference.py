"""Fixtures from pytorch-fid itself, for the Flax port of its FID Inception (run by hand).

CI has no torchvision (the CPU torch wheel of `.[bench]` has no matching one), so this script
runs once in an environment that has pytorch-fid, and writes what pytorch-fid computes into
tests/data/; tests/test_inception.py checks gan_jax against those files. The network's weights
are seeded random numbers made by `seeded_state_dict` from the names and shapes of pytorch-fid's
own state dict, so the tests rebuild the same weights without storing 95 MB.

  python -m venv /tmp/fidenv && /tmp/fidenv/bin/pip install torch==2.14.1 torchvision==0.29.1 \
      pytorch-fid==0.3.0 && /tmp/fidenv/bin/pip install -e .
  /tmp/fidenv/bin/python tests/inception_reference.py fixtures   # -> tests/data/inception_*
  /tmp/fidenv/bin/python tests/inception_reference.py parity     # -> docs/inception_parity.txt

`parity` is the full proof: it saves the seeded network as a .pth, reads it with gan_jax's
torch-free loader, compares 2048-d features on the same images at 28, 32 and 299 px, and runs
`python -m pytorch_fid` and `python -m gan_jax.fid` on the same two folders.
"""

import os
import sys
import zlib

import numpy as np

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'data')
FIXTURES = os.path.join(DATA, 'inception_fixtures.npz')
SEED = 20151205


def seeded_state_dict(names, shapes, seed: int = SEED) -> dict:
  """A pytorch-fid-shaped state dict of seeded random numbers that keep activations O(1):
  He-scaled conv weights, and batch norms whose running statistics and affine terms are not the
  identity. Each entry has its own generator (seeded by its name), so order does not matter."""
  out = {}
  for name, shape in zip(names, shapes):
    shape = tuple(int(s) for s in shape)
    rng = np.random.default_rng([seed, zlib.crc32(name.encode())])
    if name.endswith('num_batches_tracked'):
      out[name] = np.array(1000, np.int64)
    elif name.endswith('conv.weight'):
      fan_in = int(np.prod(shape[1:]))
      out[name] = (rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)).astype(np.float32)
    elif name.endswith('bn.weight'):
      out[name] = rng.uniform(0.7, 1.3, shape).astype(np.float32)
    elif name.endswith('bn.running_var'):
      out[name] = rng.uniform(0.5, 2.0, shape).astype(np.float32)
    elif name.endswith(('bn.bias', 'bn.running_mean')):
      out[name] = (0.2 * rng.standard_normal(shape)).astype(np.float32)
    elif name == 'fc.weight':
      out[name] = (rng.standard_normal(shape) / np.sqrt(shape[1])).astype(np.float32)
    else:  # fc.bias
      out[name] = (0.1 * rng.standard_normal(shape)).astype(np.float32)
  return out


# Per-block inputs (N, C, H, W): small spatial sizes keep the fixture file small; every block is
# fully convolutional, so its arithmetic is the same as at full size.
BLOCK_INPUTS = {
  'Conv2d_1a_3x3': (2, 3, 17, 17),
  'Conv2d_2a_3x3': (2, 32, 9, 9),
  'Conv2d_2b_3x3': (2, 32, 7, 7),
  'Conv2d_3b_1x1': (2, 64, 5, 5),
  'Conv2d_4a_3x3': (2, 80, 7, 7),
  'Mixed_5b': (1, 192, 5, 5),
  'Mixed_5c': (1, 256, 5, 5),
  'Mixed_5d': (1, 288, 5, 5),
  'Mixed_6a': (1, 288, 7, 7),
  'Mixed_6b': (1, 768, 4, 4),
  'Mixed_6c': (1, 768, 4, 4),
  'Mixed_6d': (1, 768, 4, 4),
  'Mixed_6e': (1, 768, 4, 4),
  'Mixed_7a': (1, 768, 7, 7),
  'Mixed_7b': (1, 1280, 3, 3),
  'Mixed_7c': (1, 2048, 3, 3),
}
# Images for the whole network and its preprocessing: (count, height, width, channels).
IMAGE_SETS = {'28': (2, 28, 28, 1), '32': (2, 32, 32, 3), '299': (2, 299, 299, 3)}
RESIZE_SETS = {'28': (1, 28, 28, 3), '32': (1, 32, 32, 3), '400x350': (1, 400, 350, 3)}
RESIZE_STRIDE = 4  # The 299x299 resize outputs are stored every 4th row and column.


def seeded_images(shape, seed):
  return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def _pytorch_fid_network(state_dict):
  """pytorch-fid's InceptionV3 (2048-d pool output) with `state_dict` in place of the download."""
  from pytorch_fid import inception as pf
  import torch

  tensors = {k: torch.from_numpy(np.array(v)) for k, v in state_dict.items()}
  original = pf.load_state_dict_from_url
  pf.load_state_dict_from_url = lambda *a, **k: tensors
  try:
    model = pf.InceptionV3([pf.InceptionV3.BLOCK_INDEX_BY_DIM[2048]]).eval()
    full = pf.fid_inception_v3().eval()  # For fc and block-by-block access.
  finally:
    pf.load_state_dict_from_url = original
  return model, full


def _structure():
  """Names and shapes of the state dict pytorch-fid's `fid_inception_v3` loads."""
  from pytorch_fid import inception as pf
  import torchvision

  built = []
  saved = pf.load_state_dict_from_url, torchvision.models.Inception3.load_state_dict
  pf.load_state_dict_from_url = lambda *a, **k: None
  torchvision.models.Inception3.load_state_dict = lambda self, *a, **k: built.append(self)
  try:
    pf.fid_inception_v3()
  finally:
    pf.load_state_dict_from_url, torchvision.models.Inception3.load_state_dict = saved
  state = built[0].state_dict()
  return list(state), [tuple(v.shape) for v in state.values()]


def _nhwc(t):
  return t.detach().numpy().transpose(0, 2, 3, 1)


def fixtures():
  import torch

  torch.manual_seed(0)
  names, shapes = _structure()
  state = seeded_state_dict(names, shapes)
  model, full = _pytorch_fid_network(state)
  out = {
    'names': np.array(names),
    'shapes': np.array([list(s) + [0] * (4 - len(s)) for s in shapes]),
  }
  out['ranks'] = np.array([len(s) for s in shapes])
  with torch.no_grad():
    for i, (block, shape) in enumerate(BLOCK_INPUTS.items()):
      x = np.abs(np.random.default_rng(i).standard_normal(shape)).astype(np.float32)
      y = getattr(full, block)(torch.from_numpy(x))
      out[f'block_in_{block}'] = x.transpose(0, 2, 3, 1)
      out[f'block_out_{block}'] = _nhwc(y)
    captured = []
    hook = model.blocks[0].register_forward_pre_hook(lambda m, args: captured.append(args[0]))
    for i, (key, shape) in enumerate(RESIZE_SETS.items()):
      images = seeded_images(shape, 100 + i)
      model(torch.from_numpy(images.transpose(0, 3, 1, 2).astype(np.float32) / 255.0))
      out[f'resize_out_{key}'] = _nhwc(captured.pop())[:, ::RESIZE_STRIDE, ::RESIZE_STRIDE]
    hook.remove()
    fc = torch.from_numpy(state['fc.weight'])
    for i, (key, shape) in enumerate(IMAGE_SETS.items()):
      images = seeded_images(shape, 200 + i)
      rgb = np.repeat(images, 3, -1) if shape[-1] == 1 else images  # PIL's convert('RGB').
      x = torch.from_numpy(rgb.transpose(0, 3, 1, 2).astype(np.float32) / 255.0)
      pool = model(x)[0][:, :, 0, 0]
      out[f'net_pool_{key}'] = pool.numpy()
      out[f'net_logits_{key}'] = (pool @ fc.T).numpy()
  os.makedirs(DATA, exist_ok=True)
  np.savez_compressed(FIXTURES, **out)
  _loader_fixtures()
  print(f'wrote {FIXTURES} ({os.path.getsize(FIXTURES) / 1e6:.2f} MB) and the loader fixtures')


def _loader_fixtures():
  """Small files written by torch.save in both layouts, and the arrays they must read as."""
  import collections

  import torch

  g = torch.Generator().manual_seed(1)
  state = collections.OrderedDict(
    [
      ('conv.weight', torch.randn(4, 3, 3, 3, generator=g)),
      ('bn.running_var', torch.rand(4, generator=g) + 0.5),
      ('bn.num_batches_tracked', torch.tensor(7)),
      ('transposed', torch.randn(3, 5, generator=g).t()),  # non-contiguous strides
      ('sliced', torch.randn(10, generator=g)[3:8]),  # storage offset
      ('half', torch.randn(6, generator=g).half()),
      ('scalar', torch.tensor(2.5)),
    ]
  )
  torch.save(state, os.path.join(DATA, 'state_dict_zip.pth'))
  torch.save(
    state, os.path.join(DATA, 'state_dict_legacy.pth'), _use_new_zipfile_serialization=False
  )
  np.savez(
    os.path.join(DATA, 'state_dict_expected.npz'), **{k: v.numpy() for k, v in state.items()}
  )


def parity(num_images: int = 500):
  """The whole proof through a .pth file, written to docs/inception_parity.txt."""
  import platform
  import subprocess
  import tempfile

  import jax
  from PIL import Image
  import torch

  from gan_jax import fid as gan_fid

  cpu = next(
    (x.split(':', 1)[1].strip() for x in open('/proc/cpuinfo') if x.startswith('model name')),
    platform.machine(),
  )
  lines = [
    f'# tests/inception_reference.py parity: pytorch-fid 0.3.0, torch {torch.__version__}, '
    f'gan_jax on JAX {jax.__version__}, {cpu}, {len(os.sched_getaffinity(0))} cores'
  ]
  names, shapes = _structure()
  state = seeded_state_dict(names, shapes)
  tmp = tempfile.mkdtemp()
  weights = os.path.join(tmp, 'seeded_fid_inception.pth')
  torch.save({k: torch.from_numpy(np.array(v)) for k, v in state.items()}, weights)
  model, _ = _pytorch_fid_network(state)
  variables = gan_fid.load_weights(weights, quiet=True)
  for i, (key, shape) in enumerate(IMAGE_SETS.items()):
    images = seeded_images((8, *shape[1:]), 300 + i)
    rgb = np.repeat(images, 3, -1) if shape[-1] == 1 else images
    with torch.no_grad():
      ref = model(torch.from_numpy(rgb.transpose(0, 3, 1, 2).astype(np.float32) / 255.0))[0]
    ref = ref[:, :, 0, 0].numpy()
    ours, _ = gan_fid.features(variables, images)
    rel = np.max(np.abs(ours - ref)) / np.max(np.abs(ref))
    lines.append(
      f'features at {key} px, 8 images: max |gan_jax - pytorch-fid| / max |pytorch-fid| = {rel:.2e}'
    )
  folders = []
  for j in range(2):
    folder = os.path.join(tmp, f'folder{j}')
    os.makedirs(folder)
    rng = np.random.default_rng(400 + j)
    base = rng.integers(0, 256, (1, 32, 32, 3))
    for k in range(num_images):  # Two different image distributions: noise around two means.
      img = np.clip(base + rng.normal(0, 40 + 20 * j, (32, 32, 3)), 0, 255).astype(np.uint8)[0]
      Image.fromarray(img).save(os.path.join(folder, f'{k:05d}.png'))
    folders.append(folder)
  env = dict(os.environ, CUDA_VISIBLE_DEVICES='')

  def last_line(*args):  # Each command's FID line, as a user would read it.
    run = subprocess.run(
      [sys.executable, *args], capture_output=True, text=True, env=env, check=True
    )
    return run.stdout.strip().splitlines()[-1]

  ref_out = last_line('-c', _PYTORCH_FID_CLI.format(weights=weights), *folders)
  our_out = last_line('-m', 'gan_jax.fid', *folders, '--weights', weights)
  ref_fid, our_fid = float(ref_out.split()[-1]), float(our_out.split()[-1])
  lines.append(f'pytorch_fid on two folders of {num_images} 32x32 PNGs: {ref_out}')
  lines.append(f'gan_jax.fid on the same folders:          {our_out}')
  lines.append(f'relative difference: {abs(our_fid - ref_fid) / abs(ref_fid):.2e}')
  text = '\n'.join(lines) + '\n'
  print(text)
  path = os.path.join(os.path.dirname(DATA), '..', 'docs', 'inception_parity.txt')
  with open(path, 'w') as f:
    f.write(text)


# pytorch-fid's own command line, with its download replaced by the seeded file.
_PYTORCH_FID_CLI = """
import sys, torch
from pytorch_fid import fid_score, inception
inception.load_state_dict_from_url = lambda *a, **k: torch.load({weights!r})
sys.argv = ['pytorch_fid', *sys.argv[1:], '--device', 'cpu']
fid_score.main()
"""


if __name__ == '__main__':
  {'fixtures': fixtures, 'parity': parity}[sys.argv[1]]()
