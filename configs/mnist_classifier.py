"""The article's CNN on the embedded MNIST digits: 4,000 train, 1,000 held-out test (offline).

Its checkpoint is the judge behind the classifier-feature metrics of every MNIST GAN config.
  python launch.py --config=configs/mnist_classifier.py --workdir=runs/mnist_classifier
"""

from configs import common


def get_config(variant: str | None = None):
  config = common.classifier_config('embedded:mnist', num_epochs=15, train_size=4000)
  return common.select_variant(config, 'mnist_classifier', variant, shrink=common.smoke_classifier)
