"""--mode=project: real images into a trained GAN's latent space, for editing them.

For each image, the noise z with which the EMA generator (in inference mode, so batch norm
couples no two images) reproduces it, under the image's own condition, fixed first:

  label       given (an .npz's `labels`) or read by the classifier of
              `config.project.classifier_workdir` (else `config.eval.classifier_workdir`)
  attributes  measured by morpho.py and standardised as in training
  features    computed as --like computes them (config.model.features' classifier)

Only z is optimised: the condition is what an edit changes, so it must stay the measured one.
z minimises `pixel_weight` x the mean squared pixel error + `perceptual_weight` x the squared
distance between the classifier's unit-normalised penultimate features of the two images + a
prior `prior_weight` x (mean(z^2) - 1)^2, which keeps z on the shell where N(0, I) noise lies.
Each image scores `candidates` random z (one forward pass), the best `restarts` of them descend
with Adam for `steps` steps (cosine-decayed learning rate) in one compiled function per batch,
and the best final loss wins. Image i's draws depend on (`seed`, i) alone. Without a classifier
that fits the images the loss is pixels and prior only, and the output says so.

Writes `projected/<hash>/projected.npz` in the workdir (z, the condition as samples.npz
records it, the source images and their reconstructions, loss per image, the source's index
and path, the config digest and checkpoint step) and grid.png (each image beside its
reconstruction). gan_jax/sample.py edits them (`--projected`, `--edit`).
"""

import dataclasses
import functools
import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import optax

from gan_jax import classifier
from gan_jax import conditions as conditions_lib
from gan_jax import data
from gan_jax import experiment as experiment_lib
from gan_jax import generation
from gan_jax import pictures
from gan_jax import progress
from gan_jax import sample_requests
from gan_jax.errors import UserError

FILE = 'projected.npz'


@dataclasses.dataclass(frozen=True)
class Settings:
  """config.project's optimisation settings."""

  steps: int = 50
  restarts: int = 1
  candidates: int = 32
  learning_rate: float = 0.05
  pixel_weight: float = 1.0
  perceptual_weight: float = 1.0
  prior_weight: float = 0.01
  batch_size: int = 50
  seed: int = 0

  @classmethod
  def from_config(cls, config) -> 'Settings':
    given = dict(config.get('project') or {})
    given.pop('classifier_workdir', None)
    return cls(**given)


def model_digest(config, image_shape) -> str:
  """What a projection belongs to: the model's config and the image shape."""
  model = json.loads(config.model.to_json_best_effort())
  return sample_requests.digest(model, list(image_shape))


def read_targets(path: str, image_shape) -> tuple[np.ndarray, np.ndarray | None, list[str]]:
  """(uint8 images, given labels or None, a name per image) of an image file, a folder of
  images, or an .npz of uint8 `images` (and optional `labels`); a one-line UserError for an
  unreadable or empty input or images of another channel count or size."""
  if path.endswith('.npz'):
    return _read_npz(path, image_shape)
  paths = data.image_paths(path) if os.path.isdir(path) else [path]
  for p in paths:
    channels = _channels(p)
    if channels is not None and channels != image_shape[-1]:
      raise UserError(
        f'--images: {p!r} has {channels} channel(s); this model makes {image_shape[-1]}'
      )
  images, paths = data.read_images(path, image_shape)
  return images, None, [os.path.relpath(p) for p in paths]


def _channels(path: str) -> int | None:
  """An image file's colour channels (alpha not counted); None if it cannot be read (then
  data.read_images says so)."""
  from PIL import Image  # pylint: disable=g-import-not-at-top

  try:
    with Image.open(path) as im:
      return 3 if im.mode == 'P' else len([b for b in im.getbands() if b != 'A'])
  except Exception:  # pylint: disable=broad-except
    return None


def read_npz(path: str, flag: str, missing: str = '') -> dict:
  """The arrays of the .npz `path` (no pickles); a one-line UserError naming `flag` when it is
  missing (`missing` added to the message) or unreadable."""
  if not os.path.isfile(path):
    raise UserError(f'{flag}: no file {path!r}{missing}')
  try:
    with np.load(path, allow_pickle=False) as f:
      return dict(f)
  except (ValueError, OSError) as e:
    raise UserError(f'{flag}: {path!r} is not a readable .npz ({e})') from None


def _read_npz(path: str, image_shape):
  arrays = read_npz(path, '--images')
  images = arrays.get('images')
  if images is None or images.dtype != np.uint8:
    raise UserError(f"--images: {path!r} must hold uint8 'images' (N, H, W, C)")
  if images.ndim == 3 and image_shape[-1] == 1:
    images = images[..., None]
  if images.ndim != 4 or tuple(images.shape[1:]) != tuple(image_shape) or not len(images):
    raise UserError(
      f'--images: {path!r} holds images of shape {images.shape}; this model makes '
      f'(N, {", ".join(map(str, image_shape))})'
    )
  labels = arrays.get('labels')
  if labels is not None and (labels.shape != (len(images),) or labels.dtype.kind not in 'iu'):
    raise UserError(f"--images: {path!r}'s 'labels' must be one integer per image")
  names = [f'{os.path.relpath(path)}[{i}]' for i in range(len(images))]
  return images, labels, names


def classifier_for(config, image_shape):
  """((model, params), '') of the classifier the projection's perceptual loss and label reading
  use, or (None, why not). A named run that is missing is a one-line error naming the command
  that trains it; one trained on other images is left out, and said."""
  where = (config.get('project') or {}).get('classifier_workdir') or config.eval.get(
    'classifier_workdir', ''
  )
  if not where:
    return None, 'no classifier named (config.project.classifier_workdir)'
  model, params, _ = experiment_lib.load_classifier(where)
  probe = jnp.zeros((1, *image_shape), jnp.float32)
  try:
    jax.eval_shape(lambda p: model.apply({'params': p}, probe, train=False), params)
  except Exception:  # pylint: disable=broad-except  # Flax raises several kinds for a misfit.
    return None, f'the classifier in {where!r} was trained on images of another shape'
  return (model, params), ''


def _features(model, params, images):
  _, features = model.apply({'params': params}, images, train=False, return_features=True)
  features = features.astype(jnp.float32)
  return features / (jnp.linalg.norm(features, axis=-1, keepdims=True) + 1e-8)


def image_condition(config, experiment, images, given, clf):
  """(the condition of `images` as the model takes it, what projected.npz records of it)."""
  gan, table = experiment.gan, experiment.conditions
  labels = None
  if gan.num_classes:
    labels = given if given is not None else _read_labels(clf, images, gan.num_classes)
    labels = np.asarray(labels, np.int32)
    if labels.min() < 0 or labels.max() >= gan.num_classes:
      raise UserError(f'--images: labels must be classes 0..{gan.num_classes - 1}')
  if table is None:
    return labels, ({} if labels is None else {'labels': labels})
  features = None
  if conditions_lib.FEATURES in table.parts:
    if config.model.features.endswith('.npy'):
      raise UserError(
        f'--mode=project: this model was trained on the features in {config.model.features!r}, '
        'which cannot be computed for new images'
      )
    features = experiment_lib.load_features(config.model.features, images)
  condition = table.condition_of_images(images, labels, features)
  arrays = sample_requests.condition_arrays(table, condition)
  if features is not None:
    arrays['features'] = np.asarray(features, np.float32)
  return condition, arrays


def _read_labels(clf, images, num_classes: int) -> np.ndarray:
  if clf is None:
    raise UserError(
      '--mode=project: this model is conditioned on the label: give the labels (an .npz with '
      "'labels') or a classifier to read them (config.project.classifier_workdir)"
    )
  model, params = clf
  probs, _ = classifier.predict_all(model, params, images)
  if probs.shape[-1] != num_classes:
    raise UserError(f'the classifier reads {probs.shape[-1]} classes; this model has {num_classes}')
  return np.argmax(probs, -1)


def _losses(gan, state, model, params, settings, z, condition, target, target_features):
  """Per image: the weighted pixel, perceptual and prior terms (see the module docstring)."""
  images = gan.apply_generator(state.ema_params, state.g_stats, z, condition, train=False)[0]
  loss = settings.pixel_weight * jnp.mean((images - target) ** 2, axis=(1, 2, 3))
  if model is not None:
    distance = jnp.sum((_features(model, params, images) - target_features) ** 2, axis=-1)
    loss += settings.perceptual_weight * distance
  return loss + settings.prior_weight * (jnp.mean(z**2, axis=-1) - 1.0) ** 2


@functools.partial(jax.jit, static_argnames=('gan', 'model', 'settings'))
def project_batch(gan, model, settings, state, params, keys, condition, target):
  """(z (B, latent), loss (B,)) for a batch of float [-1, 1] `target` images under their
  `condition`, image i's draws from keys[i]: candidates scored, the best `restarts` descended,
  the best of them kept."""
  b, c, r, d = target.shape[0], settings.candidates, settings.restarts, gan.latent_dim
  target_features = None if model is None else _features(model, params, target)
  repeat = lambda tree, n: jax.tree.map(lambda x: jnp.repeat(x, n, axis=0), tree)
  loss = lambda z, n: _losses(
    gan, state, model, params, settings, z, *repeat((condition, target, target_features), n)
  )
  candidates = jax.vmap(lambda k: jax.random.normal(k, (c, d)))(keys)
  scores = loss(candidates.reshape(b * c, d), c).reshape(b, c)
  best = jnp.argsort(scores, axis=1)[:, :r]
  z0 = jnp.take_along_axis(candidates, best[..., None], axis=1).reshape(b * r, d)
  schedule = optax.cosine_decay_schedule(settings.learning_rate, settings.steps)
  optimizer = optax.adam(schedule)

  def step(_, carry):
    z, opt_state = carry
    grads = jax.grad(lambda z: jnp.sum(loss(z, r)))(z)
    updates, opt_state = optimizer.update(grads, opt_state)
    return optax.apply_updates(z, updates), opt_state

  z, _ = jax.lax.fori_loop(0, settings.steps, step, (z0, optimizer.init(z0)))
  final = loss(z, r).reshape(b, r)
  pick = jnp.argmin(final, axis=1)
  z = jnp.take_along_axis(z.reshape(b, r, d), pick[:, None, None], axis=1)[:, 0]
  return z, jnp.min(final, axis=1)


def optimise(experiment, state, clf, settings, condition, images):
  """(z, loss) of every image, in batches of settings.batch_size (the last one padded, so one
  compiled program serves all)."""
  gan, n, size = experiment.gan, len(images), settings.batch_size
  model, params = clf if clf is not None else (None, None)
  base = jax.random.key(settings.seed)
  meter = progress.Meter(n, 'project', 'images', enabled=jax.process_index() == 0)
  zs, losses = [], []
  for start in range(0, n, size):
    index = np.minimum(np.arange(start, start + size), n - 1)  # Padded with the last image.
    keys = jax.vmap(lambda i: jax.random.fold_in(base, i))(jnp.asarray(index))
    pick = lambda x, index=index: None if x is None else jnp.asarray(np.asarray(x)[index])
    batch_condition = jax.tree.map(pick, condition)
    target = data.to_float(jnp.asarray(images[index]))
    z, loss = project_batch(gan, model, settings, state, params, keys, batch_condition, target)
    kept = min(size, n - start)
    zs.append(np.asarray(z)[:kept])
    losses.append(np.asarray(loss)[:kept])
    meter.update(kept)
  meter.close()
  return np.concatenate(zs), np.concatenate(losses)


def project(config, workdir: str, images_path: str, hardware=None) -> str:
  """--mode=project: projects the images of `images_path` (see read_targets) with the latest
  checkpoint of `workdir`; returns the folder written (or found: the same images, settings and
  checkpoint were projected before)."""
  sample_requests.refuse_text(config, '--mode=project')
  if not images_path:
    raise UserError('--mode=project needs --images (an image, a folder or an .npz of images)')
  settings = Settings.from_config(config)
  experiment, step, state = experiment_lib.restore_for_inference(config, workdir, hardware=hardware)
  shape = experiment.gan.image_shape
  images, given, names = read_targets(images_path, shape)
  clf, why = classifier_for(config, shape)
  condition, arrays = image_condition(config, experiment, images, given, clf)
  digest = model_digest(config, shape)
  key = sample_requests.digest(images.tobytes(), dataclasses.asdict(settings), step, digest)
  out_dir = os.path.join(os.path.abspath(workdir), 'projected', key)
  loss_note = 'pixels and prior only: ' + why if clf is None else 'pixels, perceptual, prior'
  if os.path.exists(out_dir):
    print(f'already projected: {out_dir}')
    return out_dir
  z, loss = optimise(experiment, state, clf, settings, condition, images)
  reconstruction = generation.ema_images(experiment.gan, state, z, condition)
  arrays.update(
    z=z.astype(np.float32),
    images=images,
    reconstruction=reconstruction,
    loss=loss.astype(np.float32),
    pixel_l1=np.mean(np.abs(reconstruction.astype(np.float32) - images), axis=(1, 2, 3)) / 255.0,
    source_index=np.arange(len(images)),
    source=np.array(names, dtype=np.str_),
    step=np.int64(step),
    config_digest=np.str_(digest),
    image_shape=np.asarray(shape, np.int64),
    loss_terms=np.str_(loss_note),
  )
  if jax.process_index() == 0:
    _write(out_dir, arrays)
    print(f'projected {len(images)} images to {out_dir} (loss: {loss_note})')
  return out_dir


def _write(out_dir: str, arrays: dict) -> None:
  """projected.npz and grid.png (pairs: image, reconstruction), renamed into place whole."""
  tmp_dir = out_dir + '.partial'
  os.makedirs(tmp_dir, exist_ok=True)
  np.savez(os.path.join(tmp_dir, FILE), **arrays)
  shown = min(len(arrays['images']), 64)
  pairs = np.stack([arrays['images'][:shown], arrays['reconstruction'][:shown]], axis=1)
  grid = pictures.grid(pairs.reshape(-1, *pairs.shape[2:]), rows=-(-shown // 8))
  pictures.save_png(os.path.join(tmp_dir, 'grid.png'), grid)
  os.replace(tmp_dir, out_dir)
