"""Evaluators chosen by config, as big_vision's `config.evals`.

  config.evals.NAME = dict(type=TYPE, every=STEPS, num_samples=N)

`type` names a class registered here with `@register(TYPE)`; `every` > 0 runs it every that
many training steps, 0 at the loop's `train.eval_every`, and < 0 only at --mode=eval;
`num_samples` 0 takes the `config.eval` default. An evaluator whose judge is not configured
(e.g. no `config.eval.classifier_workdir`) is inactive and skipped. The train loop and
--mode=eval run whatever the config names and know no metric names: each evaluator returns
its scalars and says which of them (`headline`) belong in the one-line log. A new evaluator
is a registered class; nothing else changes.
"""

import dataclasses
import math
import os

import jax
import numpy as np

from gan_jax import captions
from gan_jax import classifier as classifier_lib
from gan_jax import conditions
from gan_jax import config_checks
from gan_jax import control
from gan_jax import counterfactual
from gan_jax import data
from gan_jax import evaluate
from gan_jax import experiment as experiment_lib
from gan_jax import fid
from gan_jax import generation
from gan_jax import morpho
from gan_jax import projection
from gan_jax import sharding
from gan_jax import writers
from gan_jax.errors import UserError

REGISTRY: dict[str, type] = {}


def register(type_name: str):
  """Class decorator: makes an evaluator available as `config.evals.NAME.type = type_name`."""

  def add(cls):
    REGISTRY[type_name] = cls
    return cls

  return add


class Evaluator:
  """What the loop needs of an evaluator. Subclasses set `experiments` (the config.experiment
  kinds they judge) and `headline`, and implement `run`; `report` (for --mode=eval) may print
  more, such as a real-data floor."""

  experiments: tuple[str, ...] = ('gan',)
  headline: tuple[str, ...] = ()
  # Options this evaluator alone reads, set in its own `config.evals.NAME` entry (big_vision's
  # from_config): name -> its default, or 'eval.FIELD' to fall back on that shared field.
  options: dict = {}

  def __init__(self, config, experiment, num_samples: int, spec=None):
    self.config, self.experiment, self.num_samples = config, experiment, num_samples
    self.spec = spec

  @classmethod
  def option(cls, config, spec, name: str):
    """Option `name`: the evaluator's own entry if it sets it, else its default."""
    value = spec.get(name) if spec is not None else None
    if value is not None and value != '':
      return value
    default = cls.options[name]
    if isinstance(default, str) and default.startswith('eval.'):
      return config.eval.get(default.removeprefix('eval.'), '')
    return default

  def own(self, name: str):
    return self.option(self.config, self.spec, name)

  @classmethod
  def configured(cls, config, spec=None) -> bool:
    """Whether the config supplies what this evaluator needs (e.g. a judge); if not, it is
    skipped."""
    del config, spec
    return True

  def run(self, state, step: int) -> dict:
    raise NotImplementedError

  def report(self, state, step: int) -> dict:
    result = self.run(state, step)
    print(f'{type(self).__name__} at step {step}: ' + _headline(result, self.headline))
    return result


def _headline(scalars: dict, keys) -> str:
  return '  '.join(f'{k} {scalars[k]:.4f}' for k in keys if k in scalars)


class _Judged(Evaluator):
  """Base of the evaluators that score generated images with the project's classifier."""

  options = {'classifier_workdir': 'eval.classifier_workdir'}

  def __init__(self, config, experiment, num_samples: int, spec=None):
    super().__init__(config, experiment, num_samples or config.eval.num_samples, spec)
    self.judge = evaluate.load_judge(self.own('classifier_workdir'))  # A bad run fails now.

  @classmethod
  def configured(cls, config, spec=None) -> bool:
    return bool(cls.option(config, spec, 'classifier_workdir'))

  def images(self, state):
    e = self.config.eval
    return self.experiment.generate_images(state, self.num_samples, e.sample_seed, e.truncation)

  def report_with_floor(self, result: dict, title: str) -> dict:
    """Prints `title` and `result` beside the real-data floor (held-out real images judged the
    same way); returns `result` with the floor's scalars as `floor_*`."""
    e = self.config.eval
    floor = evaluate.real_data_floor(self.judge, e, self.config.data, self.num_samples)
    print(title)
    print(evaluate.table({'generator': result, f'real {e.floor_split} split': floor}))
    return {**result, **{f'floor_{k}': v for k, v in floor.items()}}


@register('classifier_metrics')
class ClassifierMetrics(_Judged):
  """FID, KID, the Inception-Score analogue, precision/recall, density/coverage and class
  accuracy on the features of the classifier in `config.eval.classifier_workdir`."""

  headline = ('fid', 'precision', 'recall', 'class_accuracy')

  def run(self, state, step: int) -> dict:
    del step
    images, labels = self.images(state)
    e, num_classes = self.config.eval, self.experiment.num_classes
    scores = evaluate.judge_images(self.judge, images, e, self.config.data, labels, num_classes)
    return {**scores, **evaluate.provenance(self.judge, e, self.num_samples)}

  def report(self, state, step: int) -> dict:
    result = self.run(state, step)
    reported = self.report_with_floor(
      result,
      f'classifier-feature metrics at step {step} ({self.judge.name}, '
      f'{self.num_samples} samples vs the {self.config.eval.reference_split} split):',
    )
    if 'class_accuracy' in result:
      classes = range(self.experiment.num_classes)
      per_class = ', '.join(f'{c}: {result[f"class_accuracy_{c}"]:.3f}' for c in classes)
      print(f'class accuracy per requested class: {per_class}')
    return reported


@register('stacked_modes')
class StackedModes(_Judged):
  """Stacked MNIST's protocol: the classifier reads each channel's digit; `modes` counts the
  distinct (a, b, c) of the samples (of 1,000) and `mode_kl` is KL(histogram || uniform)."""

  headline = ('modes', 'mode_kl')

  def run(self, state, step: int) -> dict:
    del step
    images, _ = self.images(state)
    scores = evaluate.stacked_mode_metrics(self.judge, images)
    return {**scores, **evaluate.provenance(self.judge, self.config.eval, self.num_samples)}

  def report(self, state, step: int) -> dict:
    title = f'mode coverage at step {step} ({self.judge.name}, {self.num_samples} samples):'
    return self.report_with_floor(self.run(state, step), title)


@register('inception')
class Inception(Evaluator):
  """FID, KID, IS, precision/recall on Inception-v3 features of pytorch-fid's weights file
  (`config.eval.inception_weights`): the numbers papers print. Keys prefixed `inception_`."""

  headline = ('inception_fid', 'inception_kid', 'inception_is')

  options = {'weights': 'eval.inception_weights'}

  def __init__(self, config, experiment, num_samples: int, spec=None):
    count = num_samples or config.eval.inception_num_samples or fid.default_num_samples()
    super().__init__(config, experiment, count, spec)
    self.weights = fid.load_weights(self.own('weights'))  # A bad file fails now.

  @classmethod
  def configured(cls, config, spec=None) -> bool:
    return bool(cls.option(config, spec, 'weights'))

  def run(self, state, step: int) -> dict:
    del step
    e = self.config.eval
    images, _ = self.experiment.generate_images(
      state, self.num_samples, e.sample_seed, e.truncation
    )
    mesh = sharding.make_mesh(self.config.mesh)
    real = evaluate.inception_reference(self.weights, e, self.config.data, mesh)
    return {
      **evaluate.inception_metrics(self.weights, images, real, e.sample_seed, mesh),
      'eval_inception_weights': f'{self.weights.path}@sha256:{self.weights.sha256[:16]}',
      'eval_inception_num_samples': int(self.num_samples),
    }

  def report(self, state, step: int) -> dict:
    result = self.run(state, step)
    published = '' if self.weights.published else ' (NOT the published weights file)'
    print(
      f'Inception metrics at step {step} ({self.num_samples} samples vs the '
      f'{self.config.eval.reference_split} split, {os.path.basename(self.weights.path)}'
      f'{published}):'
    )
    shown = {k.removeprefix('inception_'): v for k, v in result.items()}
    print(evaluate.table({'generator': shown}))
    return result


@register('control')
class Control(Evaluator):
  """Measured control of a model conditioned on attributes (gan_jax/control.py): over a grid
  sweeping each attribute per class, requested vs measured (Morpho-MNIST) Pearson r, MAE and
  leakage, and, with `config.eval.classifier_workdir`, the judge's accuracy on the requested
  class. Keys prefixed `control_`."""

  # levels: values per swept attribute and class.
  options = {'classifier_workdir': 'eval.classifier_workdir', 'levels': 10}

  def __init__(self, config, experiment, num_samples: int, spec=None):
    super().__init__(config, experiment, num_samples or 2000, spec)
    self.table = experiment.conditions
    self.levels = int(self.own('levels'))
    self.grid = control.request_grid(self.table, self.levels)
    self.per_request = math.ceil(self.num_samples / len(self.grid.requests))
    workdir = self.own('classifier_workdir')
    self.judge = evaluate.load_judge(workdir) if workdir and self.table.has_label else None
    names = self.table.conditioned_attributes
    self.headline = tuple(f'control_r_{a}' for a in names) + ('control_class_accuracy',)

  @classmethod
  def configured(cls, config, spec=None) -> bool:
    del spec
    return bool(conditions.attribute_names(conditions.names(config.model)))

  def run(self, state, step: int) -> dict:
    del step
    e, gan = self.config.eval, self.experiment.gan
    condition = self.table.requests_condition(self.grid.requests, self.per_request, e.sample_seed)
    count = len(self.grid.requests) * self.per_request
    images, _ = generation.generate_images(
      gan, state, count, e.sample_seed, e.truncation, condition
    )
    result = control.metrics(self.table, self.grid, self.per_request, morpho.measure(images))
    if self.judge is not None:
      probs, _ = self.judge.predict(images)
      result['class_accuracy'] = float(np.mean(np.argmax(probs, -1) == condition['label']))
    result = {f'control_{k}': v for k, v in result.items()}
    result['control_num_samples'] = count
    return result

  def report(self, state, step: int) -> dict:
    result = self.run(state, step)
    names = self.table.conditioned_attributes
    count = result['control_num_samples']
    print(
      f'control at step {step} ({count} samples, {self.levels} levels per attribute and class):'
    )
    for a in names:
      r = {k: result[f'control_{k}_{a}'] for k in ('r', 'mae', 'mae_sd')}
      low, mean = result[f'control_r_{a}_digit_min'], result[f'control_r_{a}_digit_mean']
      print(
        f'  {a}: r {r["r"]:.3f} (per digit: min {low:.3f}, mean {mean:.3f}), '
        f'MAE {r["mae"]:.3f} {morpho.UNITS[a]} = {r["mae_sd"]:.3f} training SD'
      )
    print('  leakage (slope of measured against requested, in training SDs):')
    print('    ' + control.leakage_table(result, names, 'control_').replace('\n', '\n    '))
    if 'control_class_accuracy' in result:
      print(f'  class accuracy of the requested label: {result["control_class_accuracy"]:.4f}')
    return result


@register('instance')
class InstanceRank(Evaluator):
  """Conditioning on one image, judged by retrieval: for each held-out digit, `num_samples`
  samples conditioned on what the model takes of it (its features, measured attributes and
  label; a label-only model its label alone); the digit's rank among all held-out digits by
  distance from the mean of its samples, in the features of a second classifier
  (`config.eval.rank_classifier_workdir`), not the conditioning encoder. Median and 90th
  percentile rank; 1 = the samples point at their digit before any other."""

  headline = ('instance_rank_median', 'instance_rank_p90')

  options = {'rank_classifier_workdir': 'eval.rank_classifier_workdir'}

  def __init__(self, config, experiment, num_samples: int, spec=None):
    super().__init__(config, experiment, num_samples or 8, spec)
    self.ranker = evaluate.load_judge(self.own('rank_classifier_workdir'))
    source = data.load(config.data.source, config.eval.floor_split, config.data)
    self.images, self.labels = data.all_images(source)
    gan = experiment.gan
    table = experiment.conditions
    if table is None:
      if not gan.num_classes:
        raise UserError('the instance evaluator needs a conditional model')
      self.condition = np.asarray(self.labels, np.int32)
    else:
      features = None
      if conditions.FEATURES in table.parts:
        features = experiment_lib.load_features(config.model.features, self.images)
      self.condition = table.condition_of_images(self.images, self.labels, features)
    self.real_features = self.ranker.predict(self.images)[1]

  @classmethod
  def configured(cls, config, spec=None) -> bool:
    text = conditions.TEXT in conditions.names(config.model)
    return bool(cls.option(config, spec, 'rank_classifier_workdir')) and not text

  def run(self, state, step: int) -> dict:
    del step
    e, gan, n = self.config.eval, self.experiment.gan, self.num_samples
    condition = jax.tree.map(lambda x: np.repeat(x, n, axis=0), self.condition)
    count = len(self.images) * n
    images, _ = generation.generate_images(
      gan, state, count, e.sample_seed, e.truncation, condition
    )
    features = self.ranker.predict(images)[1].reshape(len(self.images), n, -1)
    ranks = control.retrieval_ranks(features, self.real_features)
    return {
      'instance_rank_median': float(np.median(ranks)),
      'instance_rank_p90': float(np.percentile(ranks, 90)),
      'instance_rank_mean': float(np.mean(ranks)),
      'instance_top1': float(np.mean(ranks == 1)),
      'instance_num_images': int(len(ranks)),
      'instance_samples_per_image': int(n),
    }

  def report(self, state, step: int) -> dict:
    result = self.run(state, step)
    print(
      f'instance retrieval at step {step} ({result["instance_num_images"]} held-out digits, '
      f'{result["instance_samples_per_image"]} samples each, ranked by {self.ranker.name}): '
      f'median rank {result["instance_rank_median"]:g}, 90th percentile '
      f'{result["instance_rank_p90"]:g}, top-1 {result["instance_top1"]:.3f}'
    )
    return result


@register('text')
class TextObedience(Evaluator):
  """Obedience to sentences (gan_jax/captions.py): `num_samples` spread over the complete
  sentences of every (digit, thickness, slant) composition; a sample obeys when the judge
  (`config.eval.classifier_workdir`) reads its digit and Morpho-MNIST measures the named
  terciles (of that digit's training values). A text model reads the sentence; a structured
  model (label, thickness, slant) gets it by rule, each tercile as the median of its training
  values. Reported apart for the compositions seen in training and those held out
  (`config.text.held_out`), beside the ceiling: real held-out digits
  (`config.eval.floor_split`) judged against their own sentences. Keys prefixed `text_`."""

  headline = ('text_obedience_seen', 'text_obedience_held_out', 'text_digit_accuracy')

  options = {'classifier_workdir': 'eval.classifier_workdir'}

  def __init__(self, config, experiment, num_samples: int, spec=None):
    super().__init__(config, experiment, num_samples or 2250, spec)
    self.table = table = experiment.conditions
    if table is None or table.text is None:
      raise UserError('the text evaluator needs a config with a text section')
    parts = set(table.parts)
    if not table.has_text and not {conditions.LABEL, *captions.ATTRIBUTES} <= parts:
      raise UserError(
        "the text evaluator needs a model conditioned on 'text' or on ('label', 'thickness', "
        f"'slant'), not {table.parts}"
      )
    self.judge = evaluate.load_judge(self.own('classifier_workdir'))
    self.compositions = captions.all_compositions(table.num_classes)
    held = set(table.text.held_out)
    self.held = np.array([c in held for c in self.compositions])
    self.per = math.ceil(self.num_samples / len(self.compositions))
    self.ceiling = self._ceiling(config)

  @classmethod
  def configured(cls, config, spec=None) -> bool:
    judge = cls.option(config, spec, 'classifier_workdir')
    return config.get('text') is not None and bool(judge)

  def _codes(self, digits, images) -> np.ndarray:
    measured = morpho.measure(images)
    codes = self.table.text.terciles.codes(digits, measured).astype(np.int32)
    blank = ~np.all([np.isfinite(measured[a]) for a in captions.ATTRIBUTES], axis=0)
    codes[blank] = -2  # A blank image obeys no sentence.
    return codes

  def _ceiling(self, config) -> dict:
    source = data.load(config.data.source, config.eval.floor_split, config.data)
    images, labels = data.all_images(source)
    codes = self._codes(labels, images)
    predicted = np.argmax(self.judge.predict(images)[0], -1)
    obeys = predicted == labels
    held = captions.is_held_out(labels, codes, self.table.text.held_out)
    return {
      'text_ceiling_seen': float(np.mean(obeys[~held])),
      'text_ceiling_held_out': float(np.mean(obeys[held])) if np.any(held) else float('nan'),
    }

  def run(self, state, step: int) -> dict:
    del step
    e, table = self.config.eval, self.table
    if table.has_text:
      sentences = [captions.canonical(c) for c in self.compositions]
      condition, _ = table.text.prompt_condition(sentences, self.per, 'text evaluator')
    else:
      requests = control.sentence_requests(table, self.compositions)
      condition = table.requests_condition(requests, self.per, e.sample_seed)
    count = len(self.compositions) * self.per
    images, _ = generation.generate_images(
      self.experiment.gan, state, count, e.sample_seed, e.truncation, condition
    )
    digits = np.repeat([c.digit for c in self.compositions], self.per)
    predicted = np.argmax(self.judge.predict(images)[0], -1)
    result = control.obedience(
      self.compositions, self.held, self.per, predicted, self._codes(digits, images)
    )
    result = {f'text_{k}': v for k, v in result.items()}
    result.update(self.ceiling)
    result['text_num_samples'] = count
    return result

  def report(self, state, step: int) -> dict:
    r = self.run(state, step)
    print(
      f'sentences at step {step} ({r["text_num_samples"]} samples, {len(self.compositions)} '
      f'complete sentences, {int(self.held.sum())} held out; judge {self.judge.name}):'
    )
    for group in ('seen', 'held_out'):
      print(
        f'  {group}: obedience {r[f"text_obedience_{group}"]:.3f} (ceiling '
        f'{r[f"text_ceiling_{group}"]:.3f}), digit {r[f"text_digit_accuracy_{group}"]:.3f}, '
        f'thickness {r[f"text_thickness_accuracy_{group}"]:.3f}, '
        f'slant {r[f"text_slant_accuracy_{group}"]:.3f}'
      )
    return r


@register('counterfactual')
class Counterfactual(Evaluator):
  """Counterfactuals of held-out digits (gan_jax/counterfactual.py): projected with the
  classifier of `classifier_workdir` (config.project's settings), edited, and measured with
  the second classifier of `rank_classifier_workdir`; the same edits of fresh noise are the
  baseline (`counterfactual_baseline_*`). `num_samples` held-out digits (0: 1,000), the first
  `round_trips` of them projected again for reversibility. Models conditioned on the label
  and at least one attribute; --mode=eval only (it projects every digit)."""

  headline = ('counterfactual_rank_median', 'counterfactual_null_l1')
  options = {
    'classifier_workdir': 'eval.classifier_workdir',
    'rank_classifier_workdir': 'eval.rank_classifier_workdir',
    'round_trips': 200,
  }

  def __init__(self, config, experiment, num_samples: int, spec=None):
    super().__init__(config, experiment, num_samples or 1000, spec)
    self.table = experiment.conditions
    self.ranker = evaluate.load_judge(self.own('rank_classifier_workdir'))
    model, params, _ = experiment_lib.load_classifier(self.own('classifier_workdir'))
    self.clf = (model, params)
    source = data.load(config.data.source, config.eval.floor_split, config.data)
    images, labels = data.all_images(source)
    self.images, self.labels = images[: self.num_samples], labels[: self.num_samples]
    self.condition = self.table.condition_of_images(self.images, self.labels)
    self.settings = projection.Settings.from_config(config)

  @classmethod
  def configured(cls, config, spec=None) -> bool:
    parts = conditions.names(config.model)
    judged = all(
      cls.option(config, spec, k) for k in ('classifier_workdir', 'rank_classifier_workdir')
    )
    return judged and conditions.LABEL in parts and bool(conditions.attribute_names(parts))

  def run(self, state, step: int) -> dict:
    del step
    result, _ = counterfactual.evaluate(
      self.experiment,
      state,
      self.clf,
      self.settings,
      (self.images, self.labels, self.condition),
      self.ranker,
      int(self.own('round_trips')),
      self.config.eval.sample_seed,
    )
    return {f'counterfactual_{k}': v for k, v in result.items()}


@register('test_accuracy')
class TestAccuracy(Evaluator):
  """A classifier's accuracy and mean cross-entropy on its held-out split."""

  experiments = ('classifier',)
  headline = ('test_accuracy',)

  def run(self, state, step: int) -> dict:
    del step
    e = self.experiment
    accuracy, loss = classifier_lib.evaluate_accuracy(e.model, state.params, e.test_source)
    return {'test_accuracy': accuracy, 'test_loss': loss}

  def report(self, state, step: int) -> dict:
    result = self.run(state, step)
    print(
      f'step {step}: test accuracy {result["test_accuracy"]:.4f}, '
      f'test loss {result["test_loss"]:.4f}'
    )
    return result


@dataclasses.dataclass
class Scheduled:
  """An active evaluator, its config name and its schedule."""

  name: str
  every: int  # > 0: every that many steps; 0: at train.eval_every; < 0: --mode=eval only.
  evaluator: Evaluator

  def due(self, step: int, eval_every: int, last: bool) -> bool:
    if self.every < 0:
      return False
    return last or step % (self.every or eval_every) == 0


def configured(config) -> list[tuple[str, type, dict]]:
  """(name, class, spec) of each evaluator `config.evals` names whose needs the config meets,
  in its order; an unknown type is a one-line error (config_checks.check_evals), and so is
  one that does not judge this kind of experiment."""
  config_checks.check_evals(config, REGISTRY)
  chosen = []
  for name, spec in (config.get('evals') or {}).items():
    cls = REGISTRY[spec.type]  # Known, and judging this kind of experiment: checked above.
    if cls.configured(config, spec):
      chosen.append((name, cls, spec))
  return chosen


def build(config, experiment) -> list[Scheduled]:
  """The configured evaluators of `config.evals`, built (judges loaded) and scheduled."""
  return [
    Scheduled(name, spec.get('every', 0), cls(config, experiment, spec.get('num_samples', 0), spec))
    for name, cls, spec in configured(config)
  ]


def run_due(scheduled: list[Scheduled], state, step: int, eval_every: int, last: bool):
  """(scalars, one-line summary) of the evaluators due at `step`."""
  scalars, shown = {}, []
  for s in scheduled:
    if s.due(step, eval_every, last):
      result = s.evaluator.run(state, step)
      scalars.update(result)
      shown.append(_headline(result, s.evaluator.headline))
  return scalars, '  '.join(x for x in shown if x)


def resolve_counts(config) -> None:
  """Writes the automatic counts (0) of `config` as the numbers this machine will use, so that
  config.json records them."""
  ev = config.get('eval')
  if ev is not None and ev.get('inception_num_samples', None) == 0:
    ev.inception_num_samples = fid.default_num_samples()


def run_eval(config, workdir: str, hardware=None) -> dict:
  """--mode=eval: every active evaluator on the latest checkpoint in `workdir`, scheduled or
  not; prints each one's report, logs the scalars (`"mode": "eval"`) and returns them."""
  if not configured(config):  # Before any work: say what is missing.
    raise UserError(
      '--mode=eval needs a judge: set --config.eval.classifier_workdir to a trained classifier '
      "run (configs/mnist_classifier.py) and/or --config.eval.inception_weights to pytorch-fid's "
      f'{fid.WEIGHTS_FILE}'
    )
  experiment, step, state = experiment_lib.restore_for_inference(config, workdir, hardware=hardware)
  scheduled = build(config, experiment)
  result = {}
  for s in scheduled:
    result.update(s.evaluator.report(state, step))
  if jax.process_index() == 0:
    writer = writers.MetricWriter(os.path.abspath(workdir))
    writer.scalars(step, {'mode': 'eval', **result})
    writer.close()
  return result
