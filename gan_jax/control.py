"""Measured control: how closely a generator conditioned on attributes draws what it is asked.

The request grid sweeps each conditioned attribute in turn, for each class, over `levels`
values from the 5th to the 95th percentile of that class's training digits, the other
attributes held at the class's median; each request gets `per_request` samples. Morpho-MNIST
(gan_jax/morpho.py) measures every sample, and per attribute a:

  r_a        Pearson r between requested and measured a over a's sweep, pooled over classes
  r_a_digit_min / r_a_digit_mean  the same within each class (its worst, its mean)
  mae_a      mean |requested - measured| over a's sweep, in morpho.py's units
  mae_sd_a   mae_a over the training deviation of a
  leak_a_b   the slope of measured b (in training deviations) against requested a (the same),
             within classes, over a's sweep: how far asking for a moves b (slope_a_a is a's own)
"""

from collections.abc import Sequence
import dataclasses

import numpy as np

from gan_jax import captions
from gan_jax import conditions


@dataclasses.dataclass
class Grid:
  """The requests of the control grid, one per (swept attribute, class, level)."""

  requests: list[dict]
  swept: np.ndarray  # (R,) index into the conditioned attributes of the swept one
  labels: np.ndarray  # (R,) class (-1 without labels)


def request_grid(table: conditions.Table, levels: int) -> Grid:
  names = table.conditioned_attributes
  classes = range(table.num_classes) if table.has_label else [None]
  requests, swept, labels = [], [], []
  for i, name in enumerate(names):
    for label in classes:
      chosen = np.ones(len(table.labels), bool) if label is None else table.labels == label
      median = {b: float(np.median(table.attributes[b][chosen])) for b in names}
      values = np.percentile(table.attributes[name][chosen], np.linspace(5, 95, levels))
      for v in values:
        request = {**median, name: float(v)}
        if label is not None:
          request[conditions.LABEL] = int(label)
        requests.append(request)
        swept.append(i)
        labels.append(-1 if label is None else label)
  return Grid(requests, np.array(swept), np.array(labels))


def _pearson(x: np.ndarray, y: np.ndarray) -> float:
  x, y = x - x.mean(), y - y.mean()
  denominator = np.sqrt(np.sum(x * x) * np.sum(y * y))
  return float(np.sum(x * y) / denominator) if denominator > 0 else float('nan')


def _within(values: np.ndarray, groups: np.ndarray) -> np.ndarray:
  """`values` less the mean of their group."""
  out = values.astype(np.float64).copy()
  for g in np.unique(groups):
    out[groups == g] -= out[groups == g].mean()
  return out


def metrics(
  table: conditions.Table, grid: Grid, per_request: int, measured: dict[str, np.ndarray]
) -> dict:
  """The control scalars (module docstring) of samples made for `grid`, `per_request` each,
  request after request, whose morphometrics are `measured`."""
  names = table.conditioned_attributes
  swept = np.repeat(grid.swept, per_request)
  labels = np.repeat(grid.labels, per_request)
  asked = {a: np.repeat([r[a] for r in grid.requests], per_request) for a in names}
  out = {}
  for i, a in enumerate(names):
    on = swept == i
    got, want = measured[a][on], asked[a][on]
    ok = np.isfinite(got)
    sd = table.attribute_std(a)
    out[f'r_{a}'] = _pearson(want[ok], got[ok])
    per_digit = [
      _pearson(want[ok & (labels[on] == c)], got[ok & (labels[on] == c)])
      for c in np.unique(labels[on])
    ]
    out[f'r_{a}_digit_min'] = float(np.nanmin(per_digit))
    out[f'r_{a}_digit_mean'] = float(np.nanmean(per_digit))
    out[f'mae_{a}'] = float(np.mean(np.abs(got[ok] - want[ok])))
    out[f'mae_sd_{a}'] = out[f'mae_{a}'] / sd
    out[f'unmeasurable_{a}'] = float(np.mean(~ok))
    x = _within(want[ok] / sd, labels[on][ok])
    for b in names:
      y_all = measured[b][on][ok] / table.attribute_std(b)
      fine = np.isfinite(y_all)
      y = _within(y_all[fine], labels[on][ok][fine])
      xs = x[fine]
      out[f'leak_{a}_{b}'] = float(np.sum(xs * y) / np.sum(xs * xs))
  return out


def leakage_table(result: dict, names: Sequence[str], prefix: str = '') -> str:
  """The leak_a_b slopes as a small text matrix: rows = requested, columns = measured."""
  width = max(len(n) for n in names) + 2
  lines = ['requested \\ measured'.ljust(width + 10) + ''.join(n.rjust(width) for n in names)]
  for a in names:
    row = ''.join(f'{result[f"{prefix}leak_{a}_{b}"]:{width}.3f}' for b in names)
    lines.append(a.ljust(width + 10) + row)
  return '\n'.join(lines)


def retrieval_ranks(sample_features: np.ndarray, real_features: np.ndarray) -> np.ndarray:
  """For image i, 1 + the number of real images j closer than image i itself to the mean of
  i's samples: (n,) ranks from `sample_features` (n, per_image, F) and `real_features`
  (n, F), 1 = its samples point at it before any other."""
  centres = sample_features.mean(axis=1).astype(np.float64)
  real = real_features.astype(np.float64)
  distance = (
    np.sum(centres**2, axis=1)[:, None] - 2.0 * centres @ real.T + np.sum(real**2, axis=1)[None]
  )
  own = np.diag(distance)
  return 1 + np.sum(distance < own[:, None], axis=1)


def sentence_requests(table: conditions.Table, compositions) -> list[dict]:
  """The structured requests a rule reads from complete sentences: the digit, and for each
  named tercile the median of the class's training values inside it."""
  text = table.text
  requests = []
  for c in compositions:
    request = {conditions.LABEL: c.digit}
    for name, code in zip(captions.ATTRIBUTES, c.codes):
      values = table.attributes[name][table.labels == c.digit]
      request[name] = text.terciles.middle(c.digit, name, code, values)
    requests.append(request)
  return requests


def obedience(
  compositions, held: np.ndarray, per: int, predicted: np.ndarray, codes: np.ndarray
) -> dict:
  """How often samples obey complete sentences: `per` samples of each composition in turn,
  the judge's class `predicted` (n,) and measured terciles `codes` (n, 2). A sample obeys
  when both its digit and both terciles are what it was asked for. `held` (len(compositions),)
  marks the held-out ones; figures are means over the samples of each group."""
  asked = np.repeat(np.array([(c.digit, *c.codes) for c in compositions]), per, axis=0)
  group = np.repeat(held, per)
  digit = predicted == asked[:, 0]
  terciles = codes == asked[:, 1:]
  obeys = digit & np.all(terciles, axis=1)
  out = {}
  for name, chosen in (('seen', ~group), ('held_out', group)):
    if not np.any(chosen):
      continue
    out[f'obedience_{name}'] = float(np.mean(obeys[chosen]))
    out[f'digit_accuracy_{name}'] = float(np.mean(digit[chosen]))
    for i, attribute in enumerate(captions.ATTRIBUTES):
      out[f'{attribute}_accuracy_{name}'] = float(np.mean(terciles[chosen, i]))
  out['digit_accuracy'] = float(np.mean(digit))
  return out
