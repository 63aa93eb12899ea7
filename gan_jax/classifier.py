"""The classifier experiment: the article's CNN trained with Adam and softmax cross-entropy.

Its checkpoints are the judges of generated images (see gan_jax/evaluate.py).
"""

import functools
from typing import Any

import flax
import jax
import jax.numpy as jnp
import numpy as np
import optax

from gan_jax import augment
from gan_jax import data
from gan_jax import input_pipeline
from gan_jax import models
from gan_jax.models import layers


@flax.struct.dataclass
class ClassifierState:
  step: jax.Array
  params: Any
  opt_state: Any


def build_model(config, num_classes: int):
  return models.classifier_model(config.model.name, num_classes=num_classes)


def cross_entropy(logits, labels):
  return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits, labels))


def train_step(
  model,
  tx,
  state: ClassifierState,
  batch,
  key,
  compute_dtype=jnp.float32,
  max_shift: float = 0.0,
  max_degrees: float = 0.0,
):
  """One Adam step on the cross-entropy; the model computes in `compute_dtype`, the loss,
  gradients and parameters are float32. With `max_shift` or `max_degrees` each image is first
  shifted and rotated at random (augment.shift_rotate), from `key` and the step."""
  cast = functools.partial(layers.cast_floating, dtype=compute_dtype)
  images = data.to_float(batch['image'])
  if max_shift or max_degrees:
    rng = jax.random.fold_in(key, state.step)
    images = augment.shift_rotate(images, rng, max_shift, max_degrees)
  images = cast(images)

  def loss_fn(params):
    logits = model.apply({'params': cast(params)}, images, train=True).astype(jnp.float32)
    return cross_entropy(logits, batch['label']), logits

  (loss, logits), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
  updates, opt_state = tx.update(grads, state.opt_state, state.params)
  new_state = ClassifierState(
    step=state.step + 1, params=optax.apply_updates(state.params, updates), opt_state=opt_state
  )
  accuracy = jnp.mean(jnp.argmax(logits, -1) == batch['label'])
  return new_state, {'loss': loss, 'accuracy': accuracy, 'grad_norm': optax.tree.norm(grads)}


@functools.partial(jax.jit, static_argnums=0)
def predict(model, params, images):
  """(softmax probabilities, penultimate features) of float [-1, 1] images."""
  logits, features = model.apply({'params': params}, images, train=False, return_features=True)
  return jax.nn.softmax(logits), features


def predict_all(model, params, images: np.ndarray, batch_size: int = 500):
  """Probabilities and features of uint8 or float images, in batches, as numpy."""
  probs, feats = [], []
  for i in range(0, len(images), batch_size):
    chunk = images[i : i + batch_size]
    if chunk.dtype == np.uint8:
      chunk = data.to_float(chunk)
    p, f = jax.device_get(predict(model, params, jnp.asarray(chunk)))
    probs.append(p)
    feats.append(f)
  return np.concatenate(probs), np.concatenate(feats)


def evaluate_accuracy(model, params, source, batch_size: int = 500) -> tuple[float, float]:
  """(accuracy, mean cross-entropy) over a whole data source."""
  ds = input_pipeline.make_eval_dataset(source, batch_size=batch_size)
  correct = total = loss = 0.0
  for batch in ds:
    probs, _ = predict(model, params, data.to_float(jnp.asarray(batch['image'])))
    labels = np.asarray(batch['label'])
    probs = np.asarray(probs)
    correct += float(np.sum(np.argmax(probs, -1) == labels))
    loss += float(-np.sum(np.log(np.maximum(probs[np.arange(len(labels)), labels], 1e-12))))
    total += len(labels)
  return correct / total, loss / total


class Experiment:
  """A classifier run for the shared train loop (gan_jax/train.py)."""

  progress_keys = ('loss', 'accuracy')

  def __init__(self, run):
    config = run.config
    self.model = build_model(config, run.source.num_classes)
    self.tx = optax.adam(config.optim.learning_rate)
    self.image_shape = run.source.image_shape
    self.train_step = functools.partial(
      train_step,
      self.model,
      self.tx,
      compute_dtype=layers.compute_dtype(config.model.get('dtype', 'float32')),
      max_shift=config.get('augment', {}).get('max_shift', 0.0),
      max_degrees=config.get('augment', {}).get('max_degrees', 0.0),
    )
    # The held-out split of `data.eval_source` when set (e.g. real digits for a classifier
    # trained on generated ones), else of the training source.
    test_from = config.data.get('eval_source', '') or config.data.source
    self.test_source = data.load(test_from, config.data.eval_split, config.data)

  def init(self, rng) -> ClassifierState:
    params = self.model.init(rng, jnp.zeros((1, *self.image_shape)), train=False)['params']
    return ClassifierState(
      step=jnp.zeros((), jnp.int32), params=params, opt_state=self.tx.init(params)
    )

  def pictures(self, state, step) -> dict:
    """A classifier draws nothing; its test accuracy is the `test_accuracy` evaluator's."""
    del state, step
    return {}
