"""The article's CNN classifier: Conv32-3x3, max-pool, Conv64-3x3, max-pool, Dense128, Dense10.

Exactly the Keras model of the article (valid padding, ReLU, 2x2 max-pooling; the softmax lives
in the loss). Its 128-d penultimate activations are the features the generator metrics use.
"""

import flax.linen as nn


class CNN(nn.Module):
  num_classes: int = 10
  widths: tuple[int, int] = (32, 64)
  hidden: int = 128

  @nn.compact
  def __call__(self, x, train: bool = True, return_features: bool = False):
    del train  # No dropout or batch norm in the article's model.
    for width in self.widths:
      x = nn.relu(nn.Conv(width, (3, 3), padding='VALID')(x))
      x = nn.max_pool(x, (2, 2), strides=(2, 2))
    features = nn.relu(nn.Dense(self.hidden)(x.reshape(x.shape[0], -1)))
    logits = nn.Dense(self.num_classes)(features)
    return (logits, features) if return_features else logits
