"""The gan_jax default DCGAN and its train step, written plainly in PyTorch (benchmark only).

Same architecture, loss, optimizers and update order as gan_jax.gan.train_step with
configs/mnist_dcgan.py (see bench/train_step.py, which times and cross-checks it):

  G: z(100) -> Linear(7*7*4w, no bias) -> BN -> ReLU -> ConvTranspose2d(4w, 2w, 4, 2, 1, no bias)
     -> BN -> ReLU -> ConvTranspose2d(2w, w, 4, 2, 1, no bias) -> BN -> ReLU
     -> Conv2d(w, 1, 3, SAME) -> tanh
  D: Conv2d(1, w, 4, stride 2, SAME) -> LeakyReLU(0.2) -> Conv2d(w, 2w, 4, stride 2, SAME)
     -> LeakyReLU(0.2) -> flatten -> Linear(1)

Tensors are NCHW (torch's native layout); `load_flax` maps the flax NHWC/HWIO parameters in,
including the flatten orders of G's first and D's last Linear, so that equal weights give equal
outputs. torch is a benchmark-only dependency: gan_jax never imports this module.
"""

import torch
from torch import nn
import torch.nn.functional as F

LATENT_DIM = 100
BN_MOMENTUM = 0.1  # torch convention: flax's momentum 0.9 keeps 0.9 of the old running value.
BN_EPS = 1e-5
LR, BETAS, ADAM_EPS = 2e-4, (0.5, 0.999), 1e-8  # optax.adam's eps is 1e-8 as well.
EMA_DECAY = 0.999
BATCH_SIZE = 64  # mnist_dcgan's; bench/time_to_quality.py trains at it.


def same_pads(size: int, kernel: int, stride: int) -> tuple[int, int]:
  """XLA/flax 'SAME' padding (low, high) of one spatial dimension."""
  out = -(-size // stride)
  total = max((out - 1) * stride + kernel - size, 0)
  return total // 2, total - total // 2


class SameConv2d(nn.Conv2d):
  """nn.Conv2d with flax's padding='SAME' for a given input size (asymmetric pads via F.pad)."""

  def __init__(self, cin, cout, kernel, stride, size, bias=True):
    lo, hi = same_pads(size, kernel, stride)
    self.pads = None if lo == hi else (lo, hi, lo, hi)
    super().__init__(cin, cout, kernel, stride, padding=lo if lo == hi else 0, bias=bias)

  def forward(self, x):
    return super().forward(x if self.pads is None else F.pad(x, self.pads))


class Generator(nn.Module):
  def __init__(self, width=32, latent_dim=LATENT_DIM, channels=1, size=7):
    super().__init__()
    self.size, self.c0 = size, 4 * width
    self.fc = nn.Linear(latent_dim, size * size * 4 * width, bias=False)
    self.bn0 = nn.BatchNorm2d(4 * width, eps=BN_EPS, momentum=BN_MOMENTUM)
    self.up1 = nn.ConvTranspose2d(4 * width, 2 * width, 4, 2, 1, bias=False)
    self.bn1 = nn.BatchNorm2d(2 * width, eps=BN_EPS, momentum=BN_MOMENTUM)
    self.up2 = nn.ConvTranspose2d(2 * width, width, 4, 2, 1, bias=False)
    self.bn2 = nn.BatchNorm2d(width, eps=BN_EPS, momentum=BN_MOMENTUM)
    self.out = SameConv2d(width, channels, 3, 1, 4 * size)

  def forward(self, z):
    x = self.fc(z).view(-1, self.c0, self.size, self.size)
    x = F.relu(self.bn0(x))
    x = F.relu(self.bn1(self.up1(x)))
    x = F.relu(self.bn2(self.up2(x)))
    return torch.tanh(self.out(x))


class Discriminator(nn.Module):
  def __init__(self, width=32, channels=1, image_size=28):
    super().__init__()
    self.conv1 = SameConv2d(channels, width, 4, 2, image_size)
    self.conv2 = SameConv2d(width, 2 * width, 4, 2, image_size // 2)
    self.fc = nn.Linear((image_size // 4) ** 2 * 2 * width, 1)

  def forward(self, x):
    x = F.leaky_relu(self.conv1(x), 0.2)
    x = F.leaky_relu(self.conv2(x), 0.2)
    return self.fc(x.flatten(1))[:, 0]


class TorchDCGAN:
  """Both nets, both Adams, the EMA generator and the train step of gan_jax, in eager torch.

  `compile=True` wraps G and D in torch.compile (the optimizer steps stay eager).
  """

  def __init__(self, width=32, seed=0, compile=False):
    torch.manual_seed(seed)
    self.G, self.D = Generator(width), Discriminator(width)
    self.opt_g = torch.optim.Adam(self.G.parameters(), LR, betas=BETAS, eps=ADAM_EPS)
    self.opt_d = torch.optim.Adam(self.D.parameters(), LR, betas=BETAS, eps=ADAM_EPS)
    self.reset_ema()
    self.steps = 0
    self.g, self.d = self.G, self.D
    if compile:
      import torch._dynamo as dynamo  # pylint: disable=g-import-not-at-top

      # Keep one static graph per batch size (2B for D's update, B for G's) rather than a
      # dynamic-shape recompile on the second batch size seen.
      dynamo.config.automatic_dynamic_shapes = False
      self.g, self.d = torch.compile(self.G), torch.compile(self.D)

  def reset_ema(self):
    self.ema = [p.detach().clone() for p in self.G.parameters()]

  def step(self, real_u8, z1=None, z2=None, metrics=False):
    """One D update on [real, G(z1)] in one D call, then one G update through the new D."""
    real = torch.as_tensor(real_u8).permute(0, 3, 1, 2).float() * (2.0 / 255.0) - 1.0
    batch = real.shape[0]
    z1 = torch.randn(batch, LATENT_DIM) if z1 is None else z1
    z2 = torch.randn(batch, LATENT_DIM) if z2 is None else z2

    with torch.no_grad():
      fake = self.g(z1)
    logits = self.d(torch.cat([real, fake]))
    real_logits, fake_logits = logits[:batch], logits[batch:]
    d_loss = F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()
    self.opt_d.zero_grad(set_to_none=True)
    d_loss.backward()
    d_norm = _grad_norm(self.D) if metrics else None
    self.opt_d.step()

    self.D.requires_grad_(False)  # D frozen: only the input gradient flows back through it.
    g_loss = F.softplus(-self.d(self.g(z2))).mean()
    self.opt_g.zero_grad(set_to_none=True)
    g_loss.backward()
    self.D.requires_grad_(True)
    g_norm = _grad_norm(self.G) if metrics else None
    self.opt_g.step()

    decay = min(EMA_DECAY, (1.0 + self.steps) / (10.0 + self.steps))  # gan_jax's EMA warm-up.
    with torch.no_grad():
      torch._foreach_lerp_(self.ema, list(self.G.parameters()), 1.0 - decay)
    self.steps += 1
    if not metrics:
      return None
    return {
      'd_loss': d_loss.item(),
      'g_loss': g_loss.item(),
      'd_real': real_logits.mean().item(),
      'd_fake': fake_logits.mean().item(),
      'd_grad_norm': d_norm,
      'g_grad_norm': g_norm,
    }

  def load_flax(self, g_params, d_params):
    """Copies flax DCGAN parameters (numpy trees from gan_jax) into G and D."""
    t = lambda a: torch.as_tensor(a.copy())
    g, d = g_params, d_params
    size, c0 = self.G.size, self.G.c0
    with torch.no_grad():
      # flax Dense (in, out) with out ordered (h, w, c); torch's view wants (c, h, w).
      k = g['Dense_0']['kernel']
      self.G.fc.weight.copy_(
        t(k.reshape(-1, size, size, c0).transpose(3, 1, 2, 0).reshape(size * size * c0, -1))
      )
      for i, bn in enumerate((self.G.bn0, self.G.bn1, self.G.bn2)):
        bn.weight.copy_(t(g[f'BatchNorm_{i}']['scale']))
        bn.bias.copy_(t(g[f'BatchNorm_{i}']['bias']))
      for i, up in enumerate((self.G.up1, self.G.up2)):
        up.weight.copy_(t(g[f'UpConv2x_{i}']['kernel'].transpose(2, 3, 0, 1)))  # HWIO -> IOHW
      self.G.out.weight.copy_(t(g['Conv_0']['kernel'].transpose(3, 2, 0, 1)))  # HWIO -> OIHW
      self.G.out.bias.copy_(t(g['Conv_0']['bias']))
      for i, conv in enumerate((self.D.conv1, self.D.conv2)):
        conv.weight.copy_(t(d[f'Conv_{i}']['kernel'].transpose(3, 2, 0, 1)))
        conv.bias.copy_(t(d[f'Conv_{i}']['bias']))
      head = dense_key(d)
      k = d[head]['kernel']  # (h*w*c, 1) in NHWC flatten order; torch flattens (c, h, w).
      side = int(round((k.shape[0] / self.D.conv2.out_channels) ** 0.5))
      self.D.fc.weight.copy_(t(k.reshape(side, side, -1, 1).transpose(3, 2, 0, 1).reshape(1, -1)))
      self.D.fc.bias.copy_(t(d[head]['bias']))
    self.reset_ema()


def dense_key(d_params) -> str:
  """The name of D's head Dense in gan_jax's parameter tree ('dense', formerly 'Dense_0')."""
  keys = [k for k in d_params if not k.startswith('Conv_')]
  if len(keys) != 1:
    raise KeyError(f'expected one Dense besides the convs in D, got {sorted(d_params)}')
  return keys[0]


def _grad_norm(module):
  return float(torch.sqrt(sum((p.grad.double() ** 2).sum() for p in module.parameters())))


def ema_state_dict(model: TorchDCGAN) -> dict:
  """A Generator state_dict of `model`'s EMA weights with G's batch-norm running statistics."""
  names = [name for name, _ in model.G.named_parameters()]
  state = {name: ema.detach().clone() for name, ema in zip(names, model.ema)}
  state.update({name: b.detach().clone() for name, b in model.G.named_buffers()})
  return state


def sample(state_dict: dict, num_samples: int, seed: int = 0):
  """`num_samples` uint8 NHWC images from a Generator state_dict, in eval mode, seeded."""
  from gan_jax import data  # pylint: disable=g-import-not-at-top

  g = Generator(32)
  g.load_state_dict(state_dict)
  g.eval()
  with torch.no_grad():
    z = torch.randn(num_samples, LATENT_DIM, generator=torch.Generator().manual_seed(seed + 1))
    fakes = g(z)
  return data.to_uint8(fakes.permute(0, 2, 3, 1).numpy())


def train_for(
  seconds: float,
  num_samples: int = 0,
  out: str = '',
  seed: int = 0,
  snapshot_every: float = 0.0,
  workdir: str = '',
) -> dict:
  """Trains TorchDCGAN on the embedded MNIST training digits for `seconds` of training time,
  counted from this process's start (imports included, as for gan_jax's train.time_budget_s)
  and excluding the time spent saving snapshots. Returns the run's facts.

  `snapshot_every` > 0: every that many seconds of training time, the EMA generator's
  state_dict goes to `workdir`/snapshots/step_N.pt and {"step", "train_time_s"} is appended to
  `workdir`/snapshots/index.jsonl (gan_jax's train.snapshot_every_secs writes the same index).
  `out`: `num_samples` uint8 images of the final EMA generator to that .npz.
  """
  import json  # pylint: disable=g-import-not-at-top
  import os  # pylint: disable=g-import-not-at-top
  import time  # pylint: disable=g-import-not-at-top

  import numpy as np  # pylint: disable=g-import-not-at-top
  import psutil  # pylint: disable=g-import-not-at-top

  from gan_jax import data  # pylint: disable=g-import-not-at-top

  started, saving_s = psutil.Process().create_time(), 0.0
  train_time = lambda: time.time() - started - saving_s
  torch.set_num_threads(max(1, len(psutil.Process().cpu_affinity())))
  images = data.load('embedded:mnist', 'train').images  # (N, 28, 28, 1) uint8.
  rng = np.random.default_rng(seed)
  model, batch, steps = TorchDCGAN(width=32, seed=seed), BATCH_SIZE, 0
  order, cursor = rng.permutation(len(images)), 0
  snapshots = os.path.join(workdir, 'snapshots')
  taken = 0
  if snapshot_every > 0:
    os.makedirs(snapshots, exist_ok=True)
  while train_time() < seconds:
    if cursor + batch > len(order):
      order, cursor = rng.permutation(len(images)), 0
    model.step(images[order[cursor : cursor + batch]])
    cursor, steps = cursor + batch, steps + 1
    # As in gan_jax's loop: the k-th snapshot is due at k * snapshot_every, so a slow step
    # that passes several such times is followed by one snapshot per step until caught up.
    if snapshot_every > 0 and train_time() >= snapshot_every * (taken + 1):
      train_s, save_start = train_time(), time.time()
      torch.save(ema_state_dict(model), os.path.join(snapshots, f'step_{steps}.pt'))
      with open(os.path.join(snapshots, 'index.jsonl'), 'a') as f:
        f.write(json.dumps({'step': steps, 'train_time_s': train_s}) + '\n')
      saving_s, taken = saving_s + time.time() - save_start, taken + 1
  train_s = train_time()
  if out:
    np.savez(out, images=sample(ema_state_dict(model), num_samples, seed))
  return {'steps': steps, 'batch_size': batch, 'train_s': train_s}


if __name__ == '__main__':
  import argparse  # pylint: disable=g-import-not-at-top
  import json  # pylint: disable=g-import-not-at-top

  parser = argparse.ArgumentParser(
    description='Train the PyTorch DCGAN for a training-time budget.'
  )
  parser.add_argument('--seconds', type=float, required=True)
  parser.add_argument('--num_samples', type=int, default=2000)
  parser.add_argument('--out', default='', help='.npz for images of the final EMA generator')
  parser.add_argument('--seed', type=int, default=0)
  parser.add_argument(
    '--snapshot_every', type=float, default=0.0, help='seconds of training time (0 = none)'
  )
  parser.add_argument('--workdir', default='.', help='snapshots go to WORKDIR/snapshots')
  args = parser.parse_args()
  facts = train_for(
    args.seconds, args.num_samples, args.out, args.seed, args.snapshot_every, args.workdir
  )
  print(json.dumps(facts), flush=True)
