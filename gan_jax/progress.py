"""A progress line for long work that is not training (preparing data, sampling, Inception
passes): done/total, rate and ETA on stderr, redrawn in place twice a second on a terminal, one
line every `QUIET_SECS` otherwise (a log file gets no flood), and a last line with the time
taken unless the work took under `SILENT_SECS`."""

import sys
import time

QUIET_SECS = 10.0
TERMINAL_SECS = 0.5
SILENT_SECS = 1.0


def _clock(seconds: float) -> str:
  seconds = int(max(seconds, 0))
  if seconds >= 3600:
    return f'{seconds // 3600}h{seconds // 60 % 60:02d}m'
  return f'{seconds // 60}m{seconds % 60:02d}s'


class Meter:
  """`update(n)` as work is done; `close()` at the end. `what` names the work, `unit` what
  is counted. Disabled (pass `enabled=jax.process_index() == 0` where several processes
  share the work), it prints nothing."""

  def __init__(
    self, total: int, what: str, unit: str, enabled: bool = True, stream=None, clock=time.monotonic
  ):
    self.total, self.what, self.unit, self.clock = total, what, unit, clock
    self.stream = stream or sys.stderr
    self.terminal = hasattr(self.stream, 'isatty') and self.stream.isatty()
    self.enabled = enabled
    self.every = TERMINAL_SECS if self.terminal else QUIET_SECS
    self.done, self._t0 = 0, clock()
    self._last, self._printed = self._t0, False

  def line(self) -> str:
    elapsed = self.clock() - self._t0
    rate = self.done / max(elapsed, 1e-9)
    eta = (self.total - self.done) / rate if rate > 0 else float('inf')
    percent = 100.0 * self.done / max(self.total, 1)
    return (
      f'{self.what}: {self.done}/{self.total} {self.unit} ({percent:.0f}%)  {rate:.1f} '
      f'{self.unit}/s  ETA {_clock(eta) if eta != float("inf") else "?"}'
    )

  def update(self, count: int = 1) -> None:
    self.done += count
    now = self.clock()
    if self.enabled and now - self._last >= self.every:
      self._last = now
      self._print(self.line())

  def _print(self, text: str, end: bool = False) -> None:
    if self.terminal:
      self.stream.write('\r\033[K' + text + ('\n' if end else ''))
    else:
      self.stream.write(text + '\n')
    self.stream.flush()
    self._printed = True

  def close(self) -> None:
    elapsed = self.clock() - self._t0
    if self.enabled and (elapsed >= SILENT_SECS or self._printed):
      rate = self.done / max(elapsed, 1e-9)
      self._print(
        f'{self.what}: {self.done}/{self.total} {self.unit} in {_clock(elapsed)} '
        f'({rate:.1f} {self.unit}/s)',
        end=True,
      )
