"""--mode=cas: Classification Accuracy Score (Ravuri & Vinyals, NeurIPS 2019) and GAN-test
(Shmelkov et al., ECCV 2018) of a class-conditional GAN.

CAS trains a classifier on generated labelled images only, with the recipe of a classifier
config (`config.eval.cas_classifier_config`), and tests it on the real held-out split. Beside it:
the same recipe trained on the real training split (its accuracy is CAS's ceiling) and GAN-test,
that real-trained classifier's accuracy on the generated images.

Everything lives in `workdir/cas/step<S>_seed<K>_n<N>/`: `generated.npz` (the labelled
training set) and, per recipe, `<recipe>/` (named by the recipe file, its variant and a digest
of its fields) with `generated/` and `real/` (the two classifier runs, resumable like any run)
and `cas.json`; so another recipe, or an edited one, never resumes a run of the first. A
real-trained classifier is reused from `config.eval.classifier_workdir` when it was trained with
the very same recipe.
"""

import hashlib
import importlib.util
import json
import os

import jax
from jax.experimental import multihost_utils
import ml_collections
import numpy as np

from gan_jax import classifier as classifier_lib
from gan_jax import conditions
from gan_jax import data
from gan_jax import experiment as experiment_lib
from gan_jax.errors import UserError


def load_recipe(spec: str) -> ml_collections.ConfigDict:
  """The classifier config a `path/to/config.py[:variant]` names, as launch.py loads it."""
  path, _, variant = spec.partition(':')
  beside = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), path)
  if not os.path.isfile(path) and not os.path.isabs(path) and os.path.isfile(beside):
    path = beside  # configs/... from outside the repository root.
  if not os.path.isfile(path):
    raise UserError(f'config.eval.cas_classifier_config: no config file {path!r}')
  module_spec = importlib.util.spec_from_file_location('gan_jax_cas_recipe', path)
  module = importlib.util.module_from_spec(module_spec)
  try:
    module_spec.loader.exec_module(module)
    config = module.get_config(variant or None)
  except Exception as e:  # A broken file: say which, in one line.
    raise UserError(f'config.eval.cas_classifier_config: {spec!r} does not load: {e}') from None
  if config.get('experiment') != 'classifier':
    raise UserError(
      f'config.eval.cas_classifier_config: {spec!r} is a {config.get("experiment")!r} config, '
      'not a classifier'
    )
  return config


def check_conditional(config) -> None:
  """--mode=cas needs a GAN whose samples are asked for by class."""
  if config.get('experiment') != 'gan':
    raise UserError(f'--mode=cas judges a GAN; this config is a {config.get("experiment")!r} run')
  parts = conditions.names(config.model)
  if conditions.LABEL not in parts and conditions.TEXT not in parts:
    raise UserError(
      '--mode=cas needs a class-conditional GAN (config.model.conditional=True, or a label or '
      'text condition); this one is unconditional'
    )


# Fields that change how a run is carried out, not what it computes.
NOT_THE_RECIPE = ('async_checkpointing', 'progress_every_secs')


def _fields(config: dict) -> dict:
  for field in NOT_THE_RECIPE:
    config.get('train', {}).pop(field, None)
  return config


def _same_recipe(workdir: str, recipe) -> bool:
  path = os.path.join(workdir, 'config.json')
  if not workdir or not os.path.isfile(path):
    return False
  with open(path) as f:
    saved = json.load(f)
  return _fields(saved) == _fields(json.loads(recipe.to_json_best_effort()))


def recipe_folder(spec: str, recipe) -> str:
  """The folder name of a recipe's runs: `mnist_classifier`, `mnist_classifier-smoke` for a
  variant, then 8 hex digits of its fields, so an edited file gets a folder of its own."""
  path, _, variant = spec.partition(':')
  name = os.path.splitext(os.path.basename(path))[0] + (f'-{variant}' if variant else '')
  fields = json.dumps(_fields(json.loads(recipe.to_json_best_effort())), sort_keys=True)
  return f'{name}_{hashlib.sha256(fields.encode()).hexdigest()[:8]}'


def pass_folder(workdir: str, step: int, seed: int, count: int, spec: str, recipe) -> str:
  """Where the pass of a recipe over `count` digits of draw `seed` at `step` keeps its runs
  and cas.json; its generated.npz lies one folder up, shared by every recipe."""
  samples = os.path.join(os.path.abspath(workdir), 'cas', f'step{step}_seed{seed}_n{count}')
  return os.path.join(samples, recipe_folder(spec, recipe))


def save_npz(path: str, **arrays) -> None:
  """Writes an .npz whole or not at all (a temporary file renamed into place)."""
  tmp = path + '.tmp.npz'
  np.savez(tmp, **arrays)
  os.replace(tmp, path)


def write_generated(experiment, state, step, count: int, seed: int, path: str) -> None:
  """`count` class-balanced images of the EMA generator of a restored GAN `experiment` (labels
  cycling over the classes, noise of `seed`) written to the .npz `path` by process 0."""
  images, labels = experiment.generate_images(state, count, seed)
  if jax.process_index() == 0:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    save_npz(path, images=images, labels=np.asarray(labels, np.int32), seed=seed, step=step)


def held_out_accuracy(workdir: str, test_source) -> tuple[float, object, object]:
  model, params, _ = experiment_lib.load_classifier(workdir)
  accuracy, _ = classifier_lib.evaluate_accuracy(model, params, test_source)
  return accuracy, model, params


def run_cas(config, workdir: str, train_fn, hardware=None) -> dict:
  """CAS, the real-data accuracy of the same recipe, their ratio and GAN-test of the GAN in
  `workdir`; printed, written to cas.json and returned. `train_fn(config, workdir, hardware=)`
  trains a classifier run (the train loop, handed in by the caller: an evaluation mode does
  not import the loop)."""
  check_conditional(config)
  e = config.eval
  recipe_spec = e.get('cas_classifier_config', 'configs/mnist_classifier.py')
  recipe = load_recipe(recipe_spec)
  real_train = data.load(recipe.data.source, 'train', recipe.data)
  real_test = data.load(recipe.data.source, recipe.data.eval_split, recipe.data)
  experiment, step, state = experiment_lib.restore_for_inference(config, workdir, hardware=hardware)
  if experiment.num_classes != real_train.num_classes:
    raise UserError(
      f"--mode=cas: the GAN draws {experiment.num_classes} classes, the classifier recipe's "
      f'data {recipe.data.source!r} has {real_train.num_classes}'
    )
  if tuple(experiment.gan.image_shape) != tuple(real_train.image_shape):
    raise UserError(
      f'--mode=cas: the GAN draws {tuple(experiment.gan.image_shape)} images, the recipe '
      f'trains on {tuple(real_train.image_shape)}'
    )
  count = e.get('cas_num_samples', 0) or len(real_train)
  seed = e.get('cas_seed', 0)
  is_main = jax.process_index() == 0
  log = print if is_main else (lambda *_: None)
  folder = pass_folder(workdir, step, seed, count, recipe_spec, recipe)
  npz = os.path.join(os.path.dirname(folder), 'generated.npz')
  if not os.path.isfile(npz):
    log(f'cas: drawing {count} class-balanced images from the EMA generator at step {step}')
    write_generated(experiment, state, step, count, seed, npz)
  multihost_utils.sync_global_devices('cas generated set written')
  generated = data.npz_source(npz)

  on_generated = ml_collections.ConfigDict(recipe.to_dict())
  on_generated.data.source = f'npz:{npz}'
  on_generated.data.eval_source = recipe.data.source
  # The recipe's epochs over a set of the generated size.
  per_epoch = max(1, len(real_train) // recipe.train.batch_size)
  epochs = recipe.train.num_steps / per_epoch
  on_generated.train.num_steps = max(1, round(epochs * max(1, count // recipe.train.batch_size)))
  log('cas: training the classifier recipe on the generated images')
  train_fn(on_generated, os.path.join(folder, 'generated'), hardware=hardware)
  cas, _, _ = held_out_accuracy(os.path.join(folder, 'generated'), real_test)

  real_dir = e.get('classifier_workdir', '')
  if not _same_recipe(os.path.abspath(real_dir) if real_dir else '', recipe):
    real_dir = os.path.join(folder, 'real')
    log('cas: training the classifier recipe on the real training split')
    train_fn(recipe, real_dir, hardware=hardware)
  real, model, params = held_out_accuracy(real_dir, real_test)
  gan_test, _ = classifier_lib.evaluate_accuracy(model, params, generated)
  result = {
    'step': int(step),
    'num_samples': int(count),
    'cas_seed': int(seed),
    'classifier_config': recipe_spec,
    'real_classifier_workdir': os.path.abspath(real_dir),
    'cas': cas,
    'real_accuracy': real,
    'cas_over_real': cas / real if real else 0.0,
    'gan_test': gan_test,
  }
  if is_main:
    with open(os.path.join(folder, 'cas.json'), 'w') as f:
      json.dump(result, f, indent=2)
    print(
      f'CAS {cas:.4f} (classifier trained on {count} generated digits, tested on '
      f'{len(real_test)} real)  real-data accuracy {real:.4f}  '
      f'ratio {result["cas_over_real"]:.3f}  GAN-test {gan_test:.4f}\n'
      f'  written to {os.path.join(folder, "cas.json")}'
    )
  return result
