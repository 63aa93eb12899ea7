"""Judging generators: with the project's own classifier, and with the user's Inception file.

A trained classifier workdir (`config.eval.classifier_workdir`) supplies features and class
probabilities; FID, KID, the Inception-Score analogue, precision/recall and density/coverage
are computed on them (gan_jax/metrics.py). These are classifier-feature metrics: comparable
with each other for the same classifier, split and sample count, not with published numbers.
Reference (real-data) features are computed once per (data set, split, classifier checkpoint)
and cached as .npz (loaded without pickle) in the classifier's workdir.

With `config.eval.inception_weights` (pytorch-fid's weights file), the Inception evaluator adds
the same metrics on Inception-v3 pool features, prefixed `inception_` (gan_jax/fid.py): the
numbers papers print. Their reference features are cached per (data set, split, weights file
hash). gan_jax/evaluators.py runs these as the evaluators a config names.
"""

import dataclasses
import os
import re

import jax
import numpy as np
from scipy import special

from gan_jax import classifier as classifier_lib
from gan_jax import data
from gan_jax import experiment as experiment_lib
from gan_jax import fid
from gan_jax import generation
from gan_jax import metrics


@dataclasses.dataclass
class Judge:
  """A trained classifier: its model, parameters and where it came from."""

  model: object
  params: object
  workdir: str
  step: int

  def predict(self, images: np.ndarray):
    return classifier_lib.predict_all(self.model, self.params, images)

  @property
  def name(self) -> str:
    return f'{self.workdir}@{self.step}'


def load_judge(classifier_workdir: str) -> Judge:
  """The classifier trained in `classifier_workdir` (its config.json says which one)."""
  model, params, step = experiment_lib.load_classifier(classifier_workdir)
  return Judge(model, params, os.path.abspath(classifier_workdir), step)


def _cached_arrays(directory: str, parts, compute) -> dict:
  """Arrays kept in `directory`/<parts>.npz (loaded without pickle), computed once."""
  key = re.sub(r'[^A-Za-z0-9_.-]+', '_', '_'.join(str(p) for p in parts))
  path = os.path.join(directory, key + '.npz')
  if os.path.exists(path):
    with np.load(path, allow_pickle=False) as f:
      return dict(f)
  arrays = compute()
  if jax.process_index() == 0:
    os.makedirs(directory, exist_ok=True)
    np.savez(path + '.tmp.npz', **arrays)
    os.replace(path + '.tmp.npz', path)
  return arrays


def reference_features(judge: Judge, source_name: str, split: str, data_config=None):
  """(features, probabilities, labels) of a real split, cached in the classifier's workdir."""

  def compute():
    images, labels = data.all_images(data.load(source_name, split, data_config, whole=True))
    probs, features = judge.predict(images)
    return {'features': features, 'probs': probs, 'labels': labels}

  directory = os.path.join(judge.workdir, 'reference_stats')
  cached = _cached_arrays(directory, (source_name, split, f'step{judge.step}'), compute)
  return cached['features'], cached['probs'], cached['labels']


def judge_generator(judge: Judge, gan, state, eval_config, data_config) -> dict:
  """All metrics of the generator in `state`, with what they were measured against."""
  images, labels = generation.generate_images(
    gan, state, eval_config.num_samples, eval_config.sample_seed, eval_config.truncation
  )
  return judge_images(judge, images, eval_config, data_config, labels, gan.num_classes)


STACKED = 'embedded:stacked_mnist'


def stacked_mode_metrics(judge: Judge, images) -> dict:
  """Stacked MNIST's protocol: the MNIST judge reads each channel's digit; `modes` counts the
  distinct (a, b, c) of the images (of 1,000) and `mode_kl` is KL(their histogram || uniform)."""
  images = np.asarray(images)
  per_digit = images.transpose(0, 3, 1, 2).reshape(-1, *images.shape[1:3], 1)
  probs, _ = judge.predict(per_digit)
  return metrics.mode_coverage(
    metrics.stacked_modes(probs, images.shape[-1]), 10 ** images.shape[-1]
  )


def judge_images(
  judge: Judge, images, eval_config, data_config, labels=None, num_classes: int = 0
) -> dict:
  """All metrics of generated uint8 `images` (from any generator, e.g. another framework's),
  with per-class accuracy when the `labels` they were asked for are given. Stacked MNIST is
  judged by its mode coverage (`stacked_mode_metrics`)."""
  if data_config.source == STACKED:
    return stacked_mode_metrics(judge, images)
  real, _, _ = reference_features(
    judge, data_config.source, eval_config.reference_split, data_config
  )
  probs, features = judge.predict(images)
  result = metrics.summary(
    real, features, probs, kid_subset_size=min(1000, len(real)), seed=eval_config.sample_seed
  )
  if labels is not None:
    overall, per_class = metrics.class_accuracy(probs, labels, num_classes)
    result['class_accuracy'] = overall
    result.update({f'class_accuracy_{c}': float(a) for c, a in enumerate(per_class)})
  return result


def real_data_floor(judge: Judge, eval_config, data_config, num_samples: int = 0) -> dict:
  """The metrics of `num_samples` (0: eval_config.num_samples) real held-out images against
  the reference split: the best a G can do."""
  num_samples = num_samples or eval_config.num_samples
  if data_config.source == STACKED:  # Real stacked test digits, as many as the G is judged on.
    held = data.load(STACKED, eval_config.floor_split, data_config)
    count = min(num_samples, len(held))
    return stacked_mode_metrics(judge, np.stack([held[i]['image'] for i in range(count)]))
  real, _, _ = reference_features(
    judge, data_config.source, eval_config.reference_split, data_config
  )
  held, probs, _ = reference_features(
    judge, data_config.source, eval_config.floor_split, data_config
  )
  # A seeded shuffle first: splits may be stored in class order, and a prefix (or the IS
  # analogue's consecutive splits) of class-ordered data would measure a few classes only.
  order = np.random.default_rng(eval_config.sample_seed).permutation(len(held))
  keep = order[:num_samples]
  held, probs = held[keep], probs[keep]
  return metrics.summary(
    real, held, probs, kid_subset_size=min(1000, len(real), len(held)), seed=eval_config.sample_seed
  )


def inception_reference(weights, eval_config, data_config, mesh=None):
  """Inception pool features of the real reference split (all of it, or a seeded subset of
  `inception_reference_samples`), cached per (source, split, count, weights file hash)."""
  count, split = eval_config.inception_reference_samples, eval_config.reference_split

  def compute():
    images, _ = data.all_images(data.load(data_config.source, split, data_config, whole=True))
    if count and count < len(images):
      images = images[np.sort(np.random.default_rng(0).permutation(len(images))[:count])]
    return {
      'pool': fid.features(weights, images, mesh=mesh, what=f'Inception features of {split}')[0]
    }

  directory = eval_config.inception_cache_dir or os.path.join('~', '.cache', 'gan_jax', 'inception')
  parts = (data_config.source, split, f'n{count}' if count else 'all', weights.sha256[:16])
  return _cached_arrays(os.path.expanduser(directory), parts, compute)['pool']


def inception_metrics(weights, images, real_pool, seed: int, mesh=None) -> dict:
  """FID, KID, IS, precision/recall (and density/coverage) of uint8 `images` on Inception-v3
  pool features and softmax, against `real_pool`; keys prefixed `inception_`."""
  pool, logits = fid.features(weights, images, mesh=mesh, what='Inception features of samples')
  probs = special.softmax(logits.astype(np.float64), axis=-1)
  size = min(1000, len(real_pool), len(pool))
  result = metrics.summary(real_pool, pool, probs, kid_subset_size=size, seed=seed)
  return {f'inception_{k}': v for k, v in result.items()}


def provenance(judge: Judge, eval_config, num_samples: int = 0) -> dict:
  """What classifier-feature metrics were measured against, logged beside them."""
  return {
    'eval_classifier': judge.name,
    'eval_reference_split': eval_config.reference_split,
    'eval_num_samples': int(num_samples or eval_config.num_samples),
    'eval_truncation': float(eval_config.truncation),
  }


HEADLINE = (
  'fid',
  'kid',
  'is',
  'precision',
  'recall',
  'density',
  'coverage',
  'class_accuracy',
  'modes',
  'mode_kl',
)


def table(rows: dict[str, dict]) -> str:
  """A plain-text table: one row per name, one column per headline metric present."""
  columns = [m for m in HEADLINE if any(m in r for r in rows.values())]
  width = max(len(n) for n in rows) + 2
  cells = {c: max(12, len(c) + 2) for c in columns}
  lines = [' ' * width + ''.join(f'{c:>{cells[c]}}' for c in columns)]
  for name, row in rows.items():
    lines.append(
      f'{name:<{width}}'
      + ''.join(f'{row[c]:>{cells[c]}.4f}' if c in row else f'{"-":>{cells[c]}}' for c in columns)
    )
  return '\n'.join(lines)
