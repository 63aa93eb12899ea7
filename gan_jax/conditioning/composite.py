"""`Conditioning`: the kinds a GAN is conditioned on, combined into what its networks and its
step need. The GAN (gan_jax/gan.py) holds one and calls it; it names no kind itself.

The kinds' vector columns are concatenated, in registry order, into one condition vector:
G reads it beside z (and with `modulate`, FiLM in its batch norms); D judges it by projection,
or by a regression head (`judge` = 'regression') whose loss terms, `d_regression` (fitted on
real images) and `g_regression` (fakes that miss their request), this module adds.
"""

import dataclasses

import jax
import jax.numpy as jnp

from gan_jax.conditioning import base


def _mean_square(predicted, wanted):
  return jnp.mean(jnp.square(predicted - wanted))


@dataclasses.dataclass(frozen=True)
class Conditioning:
  """The kinds, in registry order, and how D judges their vector."""

  kinds: tuple[base.Kind, ...] = ()
  judge: str = 'projection'  # 'projection' or 'regression'
  regression_weight: float = 0.0
  modulate: bool = False

  @property
  def columns(self) -> int:
    return sum(k.columns for k in self.kinds)

  @property
  def num_classes(self) -> int:
    """The classes of the kind that takes bare labels (0: none)."""
    kind = self._label_kind()
    return kind.num_classes if kind is not None else 0

  @property
  def drawable(self) -> bool:
    """Whether fakes' conditions are drawn independently (no kind needs whole training rows)."""
    return all(k.drawn for k in self.kinds)

  @property
  def class_head(self) -> bool:
    return any(k.has_class_head() for k in self.kinds)

  def _label_kind(self):
    return next((k for k in self.kinds if k.takes_labels), None)

  def coerce(self, condition) -> dict:
    """A condition as a dict: None is {}, bare labels the label-taking kind's value."""
    if condition is None:
      return {}
    if isinstance(condition, dict):
      return condition
    return {self._label_kind().name: condition}

  def vector(self, condition: dict):
    parts = [k.vector(condition[k.name]) for k in self.kinds if k.columns]
    if not parts:
      return None
    return parts[0] if len(parts) == 1 else jnp.concatenate(parts, axis=-1)

  def _inputs(self, condition: dict):
    labels, kwargs = None, {}
    for kind in self.kinds:
      if kind.name in condition:
        given = kind.inputs(condition[kind.name])
        labels = given.labels if given.labels is not None else labels
        kwargs.update(given.kwargs)
    return labels, kwargs

  def generator_inputs(self, z, condition):
    """(z with the condition vector beside it, labels, keyword arguments) for G's call."""
    condition = self.coerce(condition)
    labels, kwargs = self._inputs(condition)
    vector = self.vector(condition)
    if vector is not None:
      z = jnp.concatenate([z, vector.astype(z.dtype)], axis=-1)
      if self.modulate:
        kwargs['modulation'] = vector
    return z, labels, kwargs

  def discriminator_inputs(self, condition):
    """(labels, keyword arguments) for D's call."""
    condition = self.coerce(condition)
    labels, kwargs = self._inputs(condition)
    vector = self.vector(condition)
    if vector is not None:
      kwargs['vector'] = vector
    return labels, kwargs

  def split(self, out):
    """D's float32 output as (logits (B,), heads): 'vector' the regression head's prediction,
    'classes' the class logits."""
    heads = {}
    if self.regression_weight and self.columns:
      out, heads['vector'] = out[:, : -self.columns], out[:, -self.columns :]
      out = out if self.class_head else out[:, 0]
    if self.class_head:
      out, heads['classes'] = out[:, 0], out[:, 1:]
    return out, heads

  def model_options(self, config, role: str) -> dict:
    options = {}
    for kind in self.kinds:
      options.update(kind.model_options(config, role))
    if self.columns and role == 'discriminator':
      options['vector_conditioning'] = self.judge
    return options

  def wrap(self, config, generator, discriminator):
    for kind in self.kinds:
      generator, discriminator = kind.wrap(config, generator, discriminator)
    return generator, discriminator

  def pretrain(self, gan, state, table, config, rng):
    for kind in self.kinds:
      state = kind.pretrain(gan, state, table, config, rng)
    return state

  def dummy(self, n: int) -> dict:
    return {k.name: k.dummy(n) for k in self.kinds}

  def real(self, batch, key) -> tuple[dict, dict]:
    """The real batch's condition and each kind's extra; `key` is the step's key."""
    condition, extra = {}, {}
    for kind in self.kinds:
      condition[kind.name], extra[kind.name] = kind.real(batch, key)
    return condition, extra

  def draw(self, key, n: int):
    """Independently drawn conditions for n fakes, or None when they take real rows."""
    if not self.kinds or not self.drawable:
      return None
    keys = [key] + [jax.random.fold_in(key, i) for i in range(1, len(self.kinds))]
    return {k.name: k.draw(kk, n) for k, kk in zip(self.kinds, keys)}

  def fake(self, drawn, real: dict, key, paired: bool) -> dict:
    """The fakes' condition. A paired (relativistic) loss compares each fake with the real
    example beside it, so fakes take the real conditions (as R3GAN does); drawable kinds draw
    (`drawn`); otherwise fakes take whole real rows in a random order, so a digit's parts stay
    together."""
    if not self.kinds:
      return {}
    if paired:
      return real
    if drawn is not None:
      return drawn
    order = jax.random.permutation(key, jax.tree.leaves(real)[0].shape[0])
    return jax.tree.map(lambda x: x[order], real)

  def extra_parts(self, real_images, condition: dict, extra: dict) -> list:
    parts = []
    for kind in self.kinds:
      parts += kind.extra_parts(real_images, condition, extra.get(kind.name))
    return parts

  def d_terms(self, view: base.DView) -> dict:
    terms = {}
    for kind in self.kinds:
      terms.update(kind.d_terms(view))
    if 'vector' in view.heads['real']:  # D learns to read the condition from real images only.
      wanted = self.vector(view.conditions['real'])
      terms['d_regression'] = (
        self.regression_weight,
        _mean_square(view.heads['real']['vector'], wanted),
      )
    return terms

  def g_terms(self, view: base.GView) -> dict:
    terms = {}
    for kind in self.kinds:
      terms.update(kind.g_terms(view))
    if 'vector' in view.heads:  # How far D reads the fakes' condition from what they asked.
      wanted = self.vector(view.condition)
      terms['g_regression'] = (self.regression_weight, _mean_square(view.heads['vector'], wanted))
    return terms


def from_config(config, num_classes: int, sizes=None) -> Conditioning:
  """The Conditioning of a checked config: a kind for each registered kind whose parts
  config.model.condition names; `sizes` (kind name -> what its data measured)."""
  parts = base.names(config.model)
  sizes = sizes or {}
  kinds = tuple(
    cls.build(config, num_classes, sizes.get(cls.name))
    for cls in base.REGISTRY.values()
    if any(p in cls.parts for p in parts)
  )
  m = config.model
  judge = m.get('vector_conditioning', 'projection')
  columns = sum(k.columns for k in kinds)
  regression = config.loss.get('regression_weight', 1.0) if columns and judge == 'regression' else 0
  return Conditioning(
    kinds,
    judge,
    float(regression),
    bool(columns) and m.get('vector_modulation', False),
  )
