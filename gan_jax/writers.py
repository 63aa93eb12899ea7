"""Metrics as JSON lines and TensorBoard events (tensorboardX: no TensorFlow needed)."""

import json
import os
import time

import numpy as np


class MetricWriter:
  """Writes `metrics.jsonl` and TensorBoard events in the workdir; a no-op when not enabled.

  On a resume from step S, rows of the lost timeline (step > S) are dropped from
  `metrics.jsonl`, and TensorBoard is told to purge them too, so each step is logged once.
  """

  def __init__(self, workdir: str, enabled: bool = True, resume_step: int | None = None):
    self.enabled = enabled
    self.path = os.path.join(workdir, 'metrics.jsonl')
    self._tb = None
    if not enabled:
      return
    if resume_step is not None and os.path.exists(self.path):
      self._drop_rows_after(resume_step)
    from tensorboardX import SummaryWriter  # pylint: disable=g-import-not-at-top

    self._tb = SummaryWriter(
      os.path.join(workdir, 'tensorboard'),
      purge_step=None if resume_step is None else resume_step + 1,
    )

  def _drop_rows_after(self, step: int) -> None:
    with open(self.path) as f:
      lines = f.readlines()
    kept = []
    for line in lines:
      try:
        if json.loads(line).get('step', 0) <= step:
          kept.append(line)
      except json.JSONDecodeError:  # A line cut short by a kill: part of the lost timeline.
        pass
    if len(kept) != len(lines):
      tmp = self.path + '.tmp'
      with open(tmp, 'w') as f:
        f.writelines(kept)
      os.replace(tmp, self.path)

  def scalars(self, step: int, scalars: dict) -> None:
    if not self.enabled:
      return
    row = {'step': int(step), **{k: _plain(v) for k, v in scalars.items()}}
    with open(self.path, 'a') as f:
      f.write(json.dumps(row) + '\n')
    for key, value in row.items():
      if key != 'step' and isinstance(value, (int, float)):
        self._tb.add_scalar(key, value, step)

  def image(self, step: int, name: str, image: np.ndarray) -> None:
    if self.enabled:
      self._tb.add_image(name, image, step, dataformats='HWC')

  def close(self) -> None:
    if self._tb:
      self._tb.close()


def _plain(value):
  value = np.asarray(value)
  return value.item() if value.ndim == 0 else value.tolist()


class Progress:
  """One terminal line every `every_secs`: step/total, chosen metrics, steps/s, ETA."""

  def __init__(self, total: int, start: int, every_secs: float, enabled: bool = True):
    self.total, self.enabled, self.every = total, enabled, every_secs
    self._t0 = self._last = time.monotonic()
    self._start = self._last_step = start
    self._restart_rate = 0.0

  def restart(self, step: int) -> None:
    """Counts rate and ETA from `step` on: call after the first step, whose time is mostly
    compilation, so the ETA is the training time left."""
    now = time.monotonic()
    self._restart_rate = (step - self._start) / max(now - self._t0, 1e-9)
    self._t0 = self._last = now
    self._start = self._last_step = step

  def steps_per_sec(self, step: int) -> float:
    if step == self._start and self._restart_rate:  # Right after a restart: the last rate.
      return self._restart_rate
    return (step - self._start) / max(time.monotonic() - self._t0, 1e-9)

  def due(self) -> bool:
    return self.enabled and time.monotonic() - self._last >= self.every

  def show(
    self, step: int, metrics: dict, force: bool = False, seconds_left: float | None = None
  ) -> None:
    """`seconds_left`, when training stops on a time budget, caps the ETA."""
    if not self.enabled or not (force or self.due()):
      return
    now = time.monotonic()
    rate = (step - self._last_step) / max(now - self._last, 1e-9)
    self._last, self._last_step = now, step
    eta = (self.total - step) / max(self.steps_per_sec(step), 1e-9)
    if seconds_left is not None:
      eta = min(eta, max(seconds_left, 0.0))
    shown = '  '.join(f'{k} {v:.4f}' for k, v in metrics.items())
    print(
      f'step {step}/{self.total}  {shown}  {rate:.1f} steps/s  '
      f'ETA {int(eta) // 60}m{int(eta) % 60:02d}s',
      flush=True,
    )
