"""Edits of projected images (--mode=sample --projected=projected.npz --edit=...): the noise that
--mode=project found for each image, its condition changed as asked, the rest kept. A
counterfactual in Pearl's three steps: abduction (projection), action (the edit), prediction.

An edit names conditioned parts (morpho.py's attributes, `digit`), comma-separated:
  thickness=+1sd        relative, in training standard deviations of the attribute
  slant=0.3             absolute, in morpho.py's units
  digit=3               another class, the style (z, attributes) kept
  none                  the reconstruction itself (the null edit)
Edited values are checked as --condition checks them (condition_requests.checked). Every
image is made once unedited (the reconstruction) and once per edit.
"""

import re

import numpy as np

from gan_jax import condition_requests
from gan_jax import conditions as conditions_lib
from gan_jax import morpho
from gan_jax import projection
from gan_jax import sample_requests
from gan_jax.errors import UserError
from gan_jax.errors import clip
from gan_jax.errors import quote

NULL = 'none'
_RELATIVE = re.compile(r'^([+-]?\d+(?:\.\d*)?|[+-]?\.\d+)sd$')


def parse(table, text: str, where: str = '--edit') -> dict[str, tuple[float, bool]]:
  """'thickness=+1sd,digit=3' -> {'thickness': (1.0, True), 'label': (3.0, False)}: each part's
  value and whether it is relative (in training SDs); 'none' -> {}."""
  if text.strip() == NULL:
    return {}
  edit = {}
  for item in (i.strip() for i in text.split(',')):
    key, eq, value = item.partition('=')
    key, value = key.strip(), value.strip()
    if not item or not eq or not key or not value:
      raise UserError(f'{where}: {quote(item)} is not KEY=VALUE (e.g. thickness=+1sd, digit=3)')
    name = condition_requests.part_name(table, key, where, edit)
    relative = _RELATIVE.match(value.lower())
    if relative and name == conditions_lib.LABEL:
      raise UserError(f'{where}: {clip(key)} takes a class, not a change in SDs')
    try:
      number = float(relative.group(1) if relative else value)
    except ValueError:
      raise UserError(
        f'{where}: {clip(key)}={quote(value)} is neither a number nor a change like +1sd'
      ) from None
    if not np.isfinite(number):
      raise UserError(f'{where}: {clip(key)}={clip(value)} is not a finite number')
    edit[name] = (number, bool(relative))
  return edit


def read(table, edit: str, edits_file: str) -> tuple[list[str], list[dict]]:
  """(the edits' texts, parsed) of --edit or --edits_file (one per line, '#' comments)."""
  if edit:
    return [edit], [parse(table, edit)]
  if not edits_file:
    return [], []
  lines = sample_requests.lines('--edits_file', edits_file)
  where = lambda n: f'--edits_file {edits_file}, line {n}'
  return [t for _, t in lines], [parse(table, t, where(n)) for n, t in lines]


def load(path: str, config, image_shape, step: int) -> dict:
  """projected.npz's arrays, or a one-line UserError when it is missing or unreadable, or was
  made by another model, checkpoint or image shape."""
  arrays = projection.read_npz(path, '--projected', ' (make one with --mode=project)')
  needed = ('z', 'images', 'config_digest', 'step', 'image_shape')
  if any(k not in arrays for k in needed):
    raise UserError(f'--projected: {path!r} is not a projected.npz (--mode=project writes one)')
  if tuple(arrays['image_shape']) != tuple(image_shape):
    raise UserError(
      f'--projected: {path!r} holds images of shape {tuple(arrays["image_shape"])}; this '
      f'model makes {tuple(image_shape)}'
    )
  if str(arrays['config_digest']) != projection.model_digest(config, image_shape):
    raise UserError(f'--projected: {path!r} was projected with another model (config.model)')
  if int(arrays['step']) != step:
    raise UserError(
      f'--projected: {path!r} was projected with the checkpoint of step {int(arrays["step"])}; '
      f'this run is at step {step}: project again'
    )
  return arrays


def _originals(table, projected) -> tuple[np.ndarray | None, np.ndarray | None]:
  """(labels, raw vector columns) each projected image was reconstructed under."""
  labels = projected.get('labels') if table is not None and table.has_label else None
  if table is None or not table.vector_parts:
    return labels, None
  names = table.conditioned_attributes
  columns = [np.asarray(projected[a], np.float64)[:, None] for a in names if a in projected]
  if conditions_lib.FEATURES in table.parts and 'features' in projected:
    columns.append(np.asarray(projected['features'], np.float64))
  if sum(c.shape[1] for c in columns) != table.vector_size:
    raise UserError('--projected: it does not record the condition this model takes')
  return labels, np.concatenate(columns, axis=1)


def _apply(table, edit: dict, labels, raw, where: str):
  """(labels, raw) with `edit` applied; an edited value out of --condition's range is refused."""
  labels = None if labels is None else np.array(labels, np.int32)
  raw = None if raw is None else np.array(raw, np.float64)
  for name, (value, relative) in edit.items():
    if name == conditions_lib.LABEL:
      labels[:] = condition_requests.checked(table, name, 'digit', value, where)
      continue
    column = table.column(name)
    new = (
      raw[:, column] + value * table.attribute_std(name) if relative else np.full(len(raw), value)
    )
    for extreme in (float(new.min()), float(new.max())):
      condition_requests.checked(table, name, name, extreme, where)
    raw[:, column] = new
  return labels, raw


def plan(config, experiment, step: int, request) -> sample_requests.Plan:
  """The images of --projected with --edit / --edits_file: per projected image (a grid row),
  its reconstruction and then each edit; every bad edit fails here, before any image."""
  table = experiment.conditions
  if table is None and experiment.gan.num_classes:
    table = conditions_lib.Table.labels_only(experiment.gan.num_classes)
  projected = load(request.projected, config, experiment.gan.image_shape, step)
  if table is None and (request.edit or request.edits_file):
    raise UserError('--edit: this model is unconditional (config.model.condition): nothing to edit')
  texts, parsed = read(table, request.edit, request.edits_file) if table else ([], [])
  labels, raw = _originals(table, projected)
  wheres = [
    '--edit' if request.edit else f'--edits_file {request.edits_file}, line {i + 1}'
    for i in range(len(parsed))
  ]
  columns = [(labels, raw)] + [_apply(table, e, labels, raw, w) for e, w in zip(parsed, wheres)]
  n, per = len(projected['z']), len(columns)
  stack = lambda parts: (
    None if parts[0] is None else np.stack(parts, axis=1).reshape(n * per, *parts[0].shape[1:])
  )
  condition = None
  if table is not None:
    condition = table.condition_of_values(
      stack([c[0] for c in columns]), stack([c[1] for c in columns])
    )
  arrays = {} if table is None else sample_requests.condition_arrays(table, condition)
  for name in [k for k in (*morpho.ATTRIBUTES, 'labels') if k in projected]:
    arrays[f'original_{name}'] = np.repeat(projected[name], per, axis=0)
  arrays.update(
    source_index=np.repeat(np.arange(n), per),
    edit_index=np.tile(np.arange(per), n),
    edit=np.tile(np.array([NULL, *texts], dtype=np.str_), n),
  )
  key = sample_requests.digest(projected['z'].tobytes(), texts)
  z = np.repeat(np.asarray(projected['z'], np.float32), per, axis=0)
  return sample_requests.Plan(condition, per, n, arrays, key, projected['images'], z)
