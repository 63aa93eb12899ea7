"""curves.png: a run's losses and judged metrics against step and against training time.

Reads the run's `metrics.jsonl` only, so it can redraw any run, old or live. matplotlib is
imported inside `write_curves`: importing this module costs nothing.
"""

import json
import math
import os
import re

# Judged metrics in the order their rows are drawn; any others follow alphabetically.
PRIORITY = (
  'fid',
  'inception_fid',
  'kid',
  'class_accuracy',
  'modes',
  'mode_kl',
  'test_accuracy',
  'precision',
  'recall',
)
MAX_METRIC_ROWS = 8
# Training-row series drawn in rows of their own: an augmentation's state (ADA's p and r_t).
STATE_PREFIX = 'augment_'
# Positive metrics that span orders of magnitude over a run: drawn on a log axis.
LOG_SCALE = ('fid', 'inception_fid', 'kid', 'inception_kid', 'mode_kl')


def read_rows(path: str) -> list[dict]:
  """The JSON objects of a JSON-lines file; lines that do not parse (cut by a kill) skipped."""
  rows = []
  try:
    with open(path) as f:
      lines = f.readlines()
  except FileNotFoundError:
    return rows
  for line in lines:
    try:
      row = json.loads(line)
    except json.JSONDecodeError:
      continue
    if isinstance(row, dict) and isinstance(row.get('step'), (int, float)):
      rows.append(row)
  return rows


def _number(value) -> bool:
  return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _judged(key: str) -> bool:
  """A judged metric, not provenance, the real-data floor, a per-class value or a spread."""
  return not (
    key in ('step', 'train_time_s', 'steps_per_sec', 'test_loss')
    or key.startswith(('eval_', 'floor_'))
    or key.endswith('_std')
    or re.search(r'_\d+$', key)
  )


def curves(rows: list[dict]) -> tuple[dict, dict]:
  """({loss: points}, {metric: points}) of metrics.jsonl rows, each point (step, time or None,
  value). Training rows carry steps_per_sec; evaluation rows are the others, except the rows
  of --mode=eval (`"mode": "eval"`), which belong to no point of training. Training rows'
  `augment_*` series count as metrics."""
  losses, judged = {}, {}
  for row in rows:
    if row.get('mode') == 'eval':
      continue
    time_s = row.get('train_time_s')
    time_s = float(time_s) if _number(time_s) else None
    training = 'steps_per_sec' in row
    for key, value in row.items():
      if not _number(value):
        continue
      if training and 'loss' in key and key != 'test_loss':
        losses.setdefault(key, []).append((row['step'], time_s, float(value)))
      elif training and key.startswith(STATE_PREFIX):
        judged.setdefault(key, []).append((row['step'], time_s, float(value)))
      elif not training and _judged(key):
        judged.setdefault(key, []).append((row['step'], time_s, float(value)))
  order = {k: i for i, k in enumerate(PRIORITY)}
  names = sorted(judged, key=lambda k: (order.get(k, len(order)), k))[:MAX_METRIC_ROWS]
  return losses, {k: sorted(judged[k]) for k in names}


def write_curves(workdir: str) -> str | None:
  """Draws `workdir/metrics.jsonl` to `workdir/curves.png` (written atomically); returns its
  path, or None when there is nothing to draw.

  Left column against step, right column against training time (`train_time_s`, absent from
  runs older than it: then the column is left out). The first row holds the training losses,
  then one row per judged metric, at most MAX_METRIC_ROWS of them in PRIORITY order.
  """
  losses, judged = curves(read_rows(os.path.join(workdir, 'metrics.jsonl')))
  if not losses and not judged:
    return None
  # A Figure on an Agg canvas: no display and no pyplot state, safe inside a training process.
  from matplotlib import figure  # pylint: disable=g-import-not-at-top
  from matplotlib import ticker  # pylint: disable=g-import-not-at-top
  from matplotlib.backends import backend_agg  # pylint: disable=g-import-not-at-top

  panels = ([('loss', losses)] if losses else []) + [(k, {k: v}) for k, v in judged.items()]
  timed = any(t is not None for _, lines in panels for p in lines.values() for _, t, _ in p)
  columns = 2 if timed else 1
  width, height = 6.0 * columns, 1.0 + 2.0 * len(panels)  # Inches.
  fig = figure.Figure(figsize=(width, height), dpi=100)
  backend_agg.FigureCanvasAgg(fig)
  # Fixed margins in inches: tight_layout would draw the figure twice.
  fig.subplots_adjust(
    left=0.9 / width,
    right=1 - 0.2 / width,
    top=1 - 0.6 / height,
    bottom=0.5 / height,
    hspace=0.15,
    wspace=1.0 / 6.0,
  )
  axes = fig.subplots(len(panels), columns, squeeze=False, sharex='col')
  for r, (name, lines) in enumerate(panels):
    for c in range(columns):
      ax = axes[r][c]
      for key, points in lines.items():
        if c:
          xy = [(t, v) for _, t, v in points if t is not None]
        else:
          xy = [(s, v) for s, _, v in points]
        if not xy:
          continue
        xs, ys = zip(*xy)
        lines_only = name == 'loss' or name.startswith(STATE_PREFIX)
        style = {'linewidth': 1.0} if lines_only else {'marker': 'o', 'markersize': 3}
        ax.plot(xs, ys, label=key, **style)
        if name in LOG_SCALE and min(ys) > 0:
          ax.set_yscale('log')
          # Plain numbers, not mathtext's 10^x (quicker to draw, easier to read).
          ax.yaxis.set_major_formatter(ticker.LogFormatter())
          ax.yaxis.set_minor_formatter(ticker.LogFormatter(labelOnlyBase=False))
      ax.set_ylabel(name)
      ax.grid(True, alpha=0.3)
      if name == 'loss' and len(lines) > 1:
        ax.legend(fontsize='small', loc='upper right')
  axes[-1][0].set_xlabel('step')
  if timed:
    axes[-1][1].set_xlabel('training time (s)')
  fig.suptitle(os.path.basename(os.path.abspath(workdir)))
  path = os.path.join(workdir, 'curves.png')
  tmp = os.path.join(workdir, f'.curves.png.{os.getpid()}.tmp')  # Same folder: replace is atomic.
  try:
    with open(tmp, 'wb') as f:
      fig.savefig(f, format='png')
    os.replace(tmp, path)
  finally:
    if os.path.exists(tmp):
      os.unlink(tmp)
  return path
