"""Counterfactuals of real digits, measured (the `counterfactual` evaluator; its bench).

bench/counterfactual.py runs it on a trained model and keeps the numbers.

Held-out digits with their true labels are projected (gan_jax/projection.py); each is then
remade with one conditioned attribute moved by each of DELTAS training SDs, and with another
class (the attributes kept). What is measured, as the Morpho-MNIST counterfactual literature
does (Pawlowski et al. 2020; Monteiro et al. 2023; Melistas et al. 2024):

  composition     the null edit (the reconstruction) against its digit: pixel L1, and the
                  digit's rank among all held-out digits by distance in a second
                  classifier's features (1 = nearest), as the `instance` evaluator ranks
  effectiveness   per attribute, the measured change against the requested one, both taken
                  from the reconstruction's measured value: Pearson r and MAE in SDs
  minimality      the other attributes' drift (mean |change| in SDs) and the class kept (the
                  second classifier's reading); for class swaps the new class read and the
                  attributes' drift
  identity        the digit's rank after +-1 SD edits of the first attribute
  reversibility   an edited image projected, edited back and compared with the reconstruction
                  (pixel L1), beside the null edit's L1
  realism         classifier-FID of the edited images against the held-out digits

`measure` takes the noise to edit: the projected z, or fresh noise for the baseline (what
--condition alone gives: the same condition, new z).
"""

import time

import jax
import numpy as np

from gan_jax import control
from gan_jax import generation
from gan_jax import metrics
from gan_jax import morpho
from gan_jax import projection

DELTAS = (-1.0, -0.5, 0.5, 1.0)


def _l1(a, b) -> np.ndarray:
  """Per-image mean absolute pixel difference, in [0, 1]."""
  diff = np.abs(a.astype(np.float32) - b.astype(np.float32)) / 255.0
  return diff.reshape(len(a), -1).mean(axis=1)


def _ranks(ranker, images, real_features) -> np.ndarray:
  return control.retrieval_ranks(ranker.predict(images)[1][:, None], real_features)


def shifted(table, raw, name: str, delta: float) -> np.ndarray:
  """`raw` (natural units) with attribute `name` moved by `delta` training SDs."""
  raw = np.array(raw, np.float64)
  raw[:, table.column(name)] += delta * table.attribute_std(name)
  return raw


def _effect(table, name: str, before: dict, after: dict, target: np.ndarray) -> dict:
  """Requested vs measured change of `name` from the reconstruction's measured value (SDs),
  and the other attributes' drift."""
  sd = table.attribute_std(name)
  asked, got = (target - before[name]) / sd, (after[name] - before[name]) / sd
  ok = np.isfinite(asked) & np.isfinite(got)
  out = {
    'r': float(np.corrcoef(asked[ok], got[ok])[0, 1]),
    'mae_sd': float(np.mean(np.abs(got[ok] - asked[ok]))),
  }
  for other in table.conditioned_attributes:
    if other != name:
      drift = np.abs(after[other] - before[other]) / table.attribute_std(other)
      out[f'drift_{other}_sd'] = float(np.nanmean(drift))
  return out


def attribute_edits(table, make, labels, raw, before, ranker):
  """Per conditioned attribute, its edits by DELTAS: effectiveness, minimality and (first
  attribute, +-1 SD) the edited images for identity and round trips; `before` is the
  reconstruction's morphometrics. Returns (metrics, {delta: images} of the first attribute,
  every edited image)."""
  out, first, every = {}, {}, []
  for i, name in enumerate(table.conditioned_attributes):
    images, targets = [], []
    for delta in DELTAS:
      moved = shifted(table, raw, name, delta)
      edited = make(labels, moved)
      images.append(edited)
      targets.append(moved[:, table.column(name)])
      if i == 0 and abs(delta) == 1.0:
        first[delta] = edited
    stacked = np.concatenate(images)
    measured = morpho.measure(stacked)
    tile = lambda d: {k: np.tile(v, len(DELTAS)) for k, v in d.items()}
    effect = _effect(table, name, tile(before), measured, np.concatenate(targets))
    out.update({f'{name}_{k}': v for k, v in effect.items()})
    probs, _ = ranker.predict(stacked)
    out[f'{name}_class_kept'] = float(np.mean(np.argmax(probs, -1) == np.tile(labels, len(DELTAS))))
    every.append(stacked)
  return out, first, every


def class_swaps(table, make, labels, raw, before, ranker, seed: int):
  """Each digit remade as another class (drawn per digit), its attributes asked unchanged;
  `before` is the reconstruction's morphometrics."""
  rng = np.random.default_rng(seed)
  classes = table.num_classes
  new = ((labels + 1 + rng.integers(0, classes - 1, len(labels))) % classes).astype(np.int32)
  swapped = make(new, raw)
  probs, _ = ranker.predict(swapped)
  out = {'swap_class_accuracy': float(np.mean(np.argmax(probs, -1) == new))}
  after = morpho.measure(swapped)
  for name in table.conditioned_attributes:
    out[f'swap_drift_{name}_sd'] = float(
      np.nanmean(np.abs(after[name] - before[name])) / table.attribute_std(name)
    )
  return out, swapped


def remaker(gan, state, table, z):
  """make(labels, raw) -> uint8 images of noise `z` under labels and raw vector columns."""
  return lambda labels, raw: generation.ema_images(
    gan, state, z, table.condition_of_values(labels, raw)
  )


def measure(gan, state, table, z, images, labels, raw, ranker, real_features, seed=0):
  """Every measure but reversibility for noise `z` (n, latent) of held-out `images` with
  `labels` and measured attributes `raw` (n, k natural units). Returns (metrics, the first
  attribute's +-1 SD edits, the reconstruction)."""
  make = remaker(gan, state, table, z)
  recon = make(labels, raw)
  before = morpho.measure(recon)
  ranks = _ranks(ranker, recon, real_features)
  out = {
    'null_l1': float(np.mean(_l1(recon, images))),
    'rank_median': float(np.median(ranks)),
    'rank_p90': float(np.percentile(ranks, 90)),
  }
  edits, first, every = attribute_edits(table, make, labels, raw, before, ranker)
  out.update(edits)
  for delta, edited in first.items():
    out[f'identity_rank_median_{delta:+g}sd'] = float(
      np.median(_ranks(ranker, edited, real_features))
    )
  swaps, swapped = class_swaps(table, make, labels, raw, before, ranker, seed)
  out.update(swaps)
  edited_features = ranker.predict(np.concatenate([*every, swapped]))[1]
  out['fid_edited'] = float(metrics.fid(real_features, edited_features))
  return out, first, recon


def raw_of(table, condition) -> np.ndarray:
  """The natural-unit vector columns (attributes, then features) of a condition dict."""
  return np.asarray(table.vector_of(condition), np.float64) * table.std + table.mean


def round_trip(experiment, state, clf, settings, edited, labels, delta, recon) -> dict:
  """Reversibility: `edited` images (the first attribute moved by `delta` SDs) projected under
  their own measured condition, moved back by -delta SDs, against the reconstruction."""
  table = experiment.conditions
  condition = table.condition_of_images(edited, labels)
  z, _ = projection.optimise(experiment, state, clf, settings, condition, edited)
  back = shifted(table, raw_of(table, condition), table.conditioned_attributes[0], -delta)
  made = remaker(experiment.gan, state, table, z)(labels, back)
  return {f'round_trip_l1_{delta:+g}sd': float(np.mean(_l1(made, recon)))}


def evaluate(experiment, state, clf, settings, held_out, ranker, round_trips: int, seed: int):
  """(metrics, projected z) of held-out (images, labels, condition): projected, every measure,
  reversibility on `round_trips` of them spread evenly over the set (held-out splits may be
  sorted by class), and the fresh-noise baseline (`baseline_*`)."""
  images, labels, condition = held_out
  table, gan = experiment.conditions, experiment.gan
  start = time.perf_counter()
  z, _ = projection.optimise(experiment, state, clf, settings, condition, images)
  seconds = time.perf_counter() - start
  real_features = ranker.predict(images)[1]
  shared = (images, labels, raw_of(table, condition), ranker, real_features)
  result, first, recon = measure(gan, state, table, z, *shared, seed=seed)
  n = min(round_trips, len(images))
  pick = np.linspace(0, len(images) - 1, n).round().astype(int)
  for delta, edited in first.items() if n else ():  # optimise takes at least one image.
    trip = (edited[pick], labels[pick], delta, recon[pick])
    result.update(round_trip(experiment, state, clf, settings, *trip))
  fresh = np.asarray(jax.random.normal(jax.random.key(seed), z.shape))
  baseline, _, _ = measure(gan, state, table, fresh, *shared, seed=seed)
  result.update({f'baseline_{k}': v for k, v in baseline.items()})
  result.update(project_seconds=seconds, num_images=len(images), round_trips=n)
  return result, z
