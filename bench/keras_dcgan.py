"""The gan_jax default DCGAN and its train step in Keras 3 on TensorFlow (benchmark only).

The keras.io DCGAN pattern: two keras Models, a custom train step with tf.GradientTape and
keras Adam optimizers, wrapped in tf.function. `jit_compile=False` is what Keras itself picks on
a CPU-only machine (Model.compile(jit_compile='auto') turns XLA off when TensorFlow sees no
accelerator), so that is the headline Keras number; `jit_compile=True` is XLA via TensorFlow.

Keras is NHWC like flax, so flax kernels load unchanged except Conv2DTranspose's
(kh, kw, out, in) layout. tensorflow/keras are benchmark-only dependencies.
"""

import os

os.environ.setdefault('KERAS_BACKEND', 'tensorflow')
os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

import keras  # pylint: disable=g-import-not-at-top,wrong-import-position
from keras import layers  # pylint: disable=g-import-not-at-top,wrong-import-position
import tensorflow as tf  # pylint: disable=g-import-not-at-top,wrong-import-position

if keras.backend.backend() != 'tensorflow':
  raise ImportError(
    f'bench.keras_dcgan needs KERAS_BACKEND=tensorflow, not {keras.backend.backend()}'
  )

LATENT_DIM = 100
BN = dict(momentum=0.9, epsilon=1e-5)  # Keras' momentum has flax's meaning; eps default is 1e-3.
ADAM = dict(learning_rate=2e-4, beta_1=0.5, beta_2=0.999, epsilon=1e-8)
EMA_DECAY = 0.999


def generator(width=32, size=7, channels=1) -> keras.Model:
  c0 = 4 * width
  return keras.Sequential(
    [
      keras.Input((LATENT_DIM,)),
      layers.Dense(size * size * c0, use_bias=False, name='dense'),
      layers.Reshape((size, size, c0)),
      layers.BatchNormalization(name='bn0', **BN),
      layers.ReLU(),
      layers.Conv2DTranspose(2 * width, 4, strides=2, padding='same', use_bias=False, name='up1'),
      layers.BatchNormalization(name='bn1', **BN),
      layers.ReLU(),
      layers.Conv2DTranspose(width, 4, strides=2, padding='same', use_bias=False, name='up2'),
      layers.BatchNormalization(name='bn2', **BN),
      layers.ReLU(),
      layers.Conv2D(channels, 3, padding='same', activation='tanh', name='out'),
    ],
    name='generator',
  )


def discriminator(width=32, image_size=28, channels=1) -> keras.Model:
  return keras.Sequential(
    [
      keras.Input((image_size, image_size, channels)),
      layers.Conv2D(width, 4, strides=2, padding='same', name='conv1'),
      layers.LeakyReLU(negative_slope=0.2),
      layers.Conv2D(2 * width, 4, strides=2, padding='same', name='conv2'),
      layers.LeakyReLU(negative_slope=0.2),
      layers.Flatten(),
      layers.Dense(1, name='fc'),
    ],
    name='discriminator',
  )


class KerasDCGAN:
  """Both nets, both Adams, the EMA generator and gan_jax's train step, in Keras/TensorFlow."""

  def __init__(self, width=32, seed=0, jit_compile=False):
    keras.utils.set_random_seed(seed)
    self.G, self.D = generator(width), discriminator(width)
    self.opt_g, self.opt_d = keras.optimizers.Adam(**ADAM), keras.optimizers.Adam(**ADAM)
    self.opt_g.build(self.G.trainable_variables)
    self.opt_d.build(self.D.trainable_variables)
    self.ema = [tf.Variable(v.value, trainable=False) for v in self.G.trainable_variables]
    self.steps = tf.Variable(0.0, trainable=False)
    self._fixed = tf.function(self._step, jit_compile=jit_compile)
    self._random = tf.function(self._random_step, jit_compile=jit_compile)

  def reset_ema(self):
    for e, v in zip(self.ema, self.G.trainable_variables):
      e.assign(v.value)

  def _step(self, real_u8, z1, z2):
    real = tf.cast(real_u8, tf.float32) * (2.0 / 255.0) - 1.0
    batch = tf.shape(real)[0]
    fake = self.G(z1, training=True)  # No tape: a constant for D's update.
    with tf.GradientTape() as tape:
      logits = self.D(tf.concat([real, fake], 0), training=True)[:, 0]
      real_logits, fake_logits = logits[:batch], logits[batch:]
      d_loss = tf.reduce_mean(tf.nn.softplus(-real_logits)) + tf.reduce_mean(
        tf.nn.softplus(fake_logits)
      )
    d_grads = tape.gradient(d_loss, self.D.trainable_variables)
    self.opt_d.apply_gradients(zip(d_grads, self.D.trainable_variables))

    with tf.GradientTape() as tape:  # Only G's variables are differentiated: D is frozen.
      g_logits = self.D(self.G(z2, training=True), training=True)[:, 0]
      g_loss = tf.reduce_mean(tf.nn.softplus(-g_logits))
    g_grads = tape.gradient(g_loss, self.G.trainable_variables)
    self.opt_g.apply_gradients(zip(g_grads, self.G.trainable_variables))

    decay = tf.minimum(EMA_DECAY, (1.0 + self.steps) / (10.0 + self.steps))
    for e, v in zip(self.ema, self.G.trainable_variables):
      e.assign(decay * e + (1.0 - decay) * v.value)
    self.steps.assign_add(1.0)
    return {
      'd_loss': d_loss,
      'g_loss': g_loss,
      'd_real': tf.reduce_mean(real_logits),
      'd_fake': tf.reduce_mean(fake_logits),
      'd_grad_norm': tf.linalg.global_norm(d_grads),
      'g_grad_norm': tf.linalg.global_norm(g_grads),
    }

  def _random_step(self, real_u8):
    batch = tf.shape(real_u8)[0]
    return self._step(
      real_u8, tf.random.normal((batch, LATENT_DIM)), tf.random.normal((batch, LATENT_DIM))
    )

  def step(self, real_u8, z1=None, z2=None):
    """One train step; returns its metrics as tensors (not fetched)."""
    if z1 is None:
      return self._random(real_u8)
    return self._fixed(real_u8, tf.constant(z1), tf.constant(z2))

  def load_flax(self, g_params, d_params):
    g, d = g_params, d_params
    self.G.get_layer('dense').set_weights([g['Dense_0']['kernel']])
    for i in range(3):
      self.G.get_layer(f'bn{i}').gamma.assign(g[f'BatchNorm_{i}']['scale'])
      self.G.get_layer(f'bn{i}').beta.assign(g[f'BatchNorm_{i}']['bias'])
    for i in range(2):  # UpConv2x (kh, kw, in, out) -> Conv2DTranspose (kh, kw, out, in).
      self.G.get_layer(f'up{i + 1}').set_weights(
        [g[f'UpConv2x_{i}']['kernel'].transpose(0, 1, 3, 2)]
      )
    self.G.get_layer('out').set_weights([g['Conv_0']['kernel'], g['Conv_0']['bias']])
    for i in range(2):
      self.D.get_layer(f'conv{i + 1}').set_weights(
        [d[f'Conv_{i}']['kernel'], d[f'Conv_{i}']['bias']]
      )
    head = [k for k in d if not k.startswith('Conv_')][0]  # 'dense' (formerly 'Dense_0')
    self.D.get_layer('fc').set_weights([d[head]['kernel'], d[head]['bias']])
    self.reset_ema()
