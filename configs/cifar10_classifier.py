"""The article's CNN on CIFAR-10, exactly: Adam, cross-entropy, batch 128, 10 epochs.

Needs the TFDS cifar10 data prepared (`tfds build cifar10` where there is network, then point
--config.data.tfds_data_dir at it if it is not in ~/tensorflow_datasets).
  python launch.py --config=configs/cifar10_classifier.py --workdir=runs/cifar10_classifier
"""

from configs import common


def get_config(variant: str | None = None):
  config = common.classifier_config('tfds:cifar10', num_epochs=10, train_size=50000)
  return common.select_variant(
    config, 'cifar10_classifier', variant, shrink=common.smoke_classifier
  )
