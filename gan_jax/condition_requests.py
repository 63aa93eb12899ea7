"""Requests in natural units: `--condition='digit=7,thickness=3.5'` parsed and checked against
the training rows (gan_jax/conditions.py's Table), and the sweeps of the attribute grids. The
rows a request draws, and its condition, are the Table's (`requests_condition`)."""

import math

import numpy as np

from gan_jax import conditions
from gan_jax import morpho
from gan_jax.errors import UserError
from gan_jax.errors import clip
from gan_jax.errors import quote

ALIASES = {'digit': conditions.LABEL}
# A requested attribute may lie at most this many training deviations outside the training range.
MAX_DEVIATIONS_OUTSIDE = 3.0


def parse(table, text: str, where: str = '--condition') -> dict[str, float]:
  """'digit=7,thickness=3.5' -> {'label': 7, 'thickness': 3.5}, or a one-line UserError."""
  request = {}
  for item in text.split(','):
    item = item.strip()
    if not item:
      continue
    key, eq, value = item.partition('=')
    key, value = key.strip(), value.strip()
    if not eq or not key:
      raise UserError(f'{where}: {quote(item)} is not KEY=VALUE (e.g. digit=7,thickness=3.5)')
    name = part_name(table, key, where, request)
    try:
      number = float(value)
    except ValueError:
      raise UserError(f'{where}: {clip(key)}={quote(value)} is not a number') from None
    if not math.isfinite(number):
      raise UserError(f'{where}: {clip(key)}={clip(value)} is not a finite number')
    request[name] = checked(table, name, key, number, where)
  return request


def part_name(table, key: str, where: str, given=()) -> str:
  """The condition part a request's `key` names ('digit' is 'label'), or a one-line UserError:
  an unknown key, a part the model is not conditioned on, a part already `given`."""
  name = ALIASES.get(key, key)
  if name != conditions.LABEL and name not in morpho.ATTRIBUTES:
    known = [conditions.LABEL + ' (alias digit)', *morpho.ATTRIBUTES]
    raise UserError(f'{where}: unknown key {quote(key)}: keys are {", ".join(known)}')
  if name not in table.parts:
    raise UserError(
      f'{where}: this model is not conditioned on {quote(key)} (config.model.condition = '
      f'{table.parts})'
    )
  if name in given:
    raise UserError(f'{where}: {quote(key)} is given twice')
  return name


def checked(table, name: str, key: str, number: float, where: str) -> float:
  """`number` as the value of part `name`, or a one-line UserError: a class of the data, or an
  attribute at most MAX_DEVIATIONS_OUTSIDE training deviations outside the training range."""
  if name == conditions.LABEL:
    if number != int(number) or not 0 <= number < table.num_classes:
      raise UserError(
        f'{where}: {key}={number:g} is not a class of this data (0..{table.num_classes - 1})'
      )
    return int(number)
  values = table.attributes[name]
  lo, hi, sd = float(values.min()), float(values.max()), table.attribute_std(name)
  margin = MAX_DEVIATIONS_OUTSIDE * sd
  if not lo - margin <= number <= hi + margin:
    raise UserError(
      f'{where}: {key}={number:g} is more than {MAX_DEVIATIONS_OUTSIDE:g} training deviations '
      f'({sd:.3g} {morpho.UNITS[name]}) outside the training range {lo:.3g}..{hi:.3g}'
    )
  return number


def sweep_requests(table: conditions.Table, label, rows: int, columns: int):
  """Requests sweeping the first conditioned attribute down the rows and the second (if any)
  across the columns, each from the 5th to the 95th percentile of `label`'s training digits
  (None: all digits). Returns (requests, (rows, columns))."""
  names = table.conditioned_attributes[:2]
  chosen = np.ones(len(table.labels), bool) if label is None else table.labels == label
  levels = lambda name, n: np.percentile(table.attributes[name][chosen], np.linspace(5, 95, n))
  base = {} if label is None else {conditions.LABEL: int(label)}
  if len(names) == 1:
    return [{**base, names[0]: float(v)} for v in levels(names[0], columns)], (1, columns)
  return [
    {**base, names[0]: float(a), names[1]: float(b)}
    for a in levels(names[0], rows)
    for b in levels(names[1], columns)
  ], (rows, columns)
