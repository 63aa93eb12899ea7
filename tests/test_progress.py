"""gan_jax/progress.py: a line per ~10 s into a log, redrawn in place on a terminal, rate and
ETA right, silent for work under a second and where disabled."""

import io

from gan_jax import progress


class Clock:
  def __init__(self):
    self.now = 100.0

  def __call__(self):
    return self.now


class Terminal(io.StringIO):
  def isatty(self):
    return True


def test_a_log_gets_one_line_per_ten_seconds_with_rate_and_eta():
  clock, out = Clock(), io.StringIO()
  meter = progress.Meter(1000, 'Inception features', 'images', stream=out, clock=clock)
  for _ in range(100):  # 10 images/s for 100 s.
    clock.now += 1.0
    meter.update(10)
  lines = out.getvalue().splitlines()
  assert len(lines) == 10, lines
  assert lines[0] == 'Inception features: 100/1000 images (10%)  10.0 images/s  ETA 1m30s'
  meter.close()
  assert out.getvalue().splitlines()[-1] == (
    'Inception features: 1000/1000 images in 1m40s (10.0 images/s)'
  )


def test_a_terminal_line_is_redrawn_in_place_and_ended():
  clock, out = Clock(), Terminal()
  meter = progress.Meter(4, 'prepare', 'images', stream=out, clock=clock)
  for _ in range(4):
    clock.now += 0.25
    meter.update(1)
  meter.close()
  text = out.getvalue()
  assert text.count('\r\033[K') == 3 and text.endswith(
    'prepare: 4/4 images in 0m01s (4.0 images/s)\n'
  )


def test_short_or_disabled_work_prints_nothing():
  clock, out = Clock(), io.StringIO()
  meter = progress.Meter(10, 'sample', 'images', stream=out, clock=clock)
  clock.now += 0.5
  meter.update(10)
  meter.close()
  meter = progress.Meter(10, 'sample', 'images', enabled=False, stream=out, clock=clock)
  clock.now += 60
  meter.update(10)
  meter.close()
  assert out.getvalue() == ''
