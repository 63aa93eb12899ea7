"""The article's CNN on the embedded MNIST digits with ordinary augmentation: each training
image shifted up to 2 pixels and rotated up to 10 degrees at random; otherwise as
configs/mnist_classifier.py.

  python launch.py --config=configs/mnist_classifier_aug.py --workdir=runs/mnist_classifier_aug

As a CAS recipe (docs/cas.md) it asks whether generated digits teach as well as real ones when
both are augmented:
  python launch.py --config=configs/mnist_cgan.py --workdir=runs/mnist_cgan --mode=cas \
    --config.eval.cas_classifier_config=configs/mnist_classifier_aug.py \
    --config.eval.classifier_workdir=runs/mnist_classifier_aug
"""

from configs import common


def get_config(variant: str | None = None):
  config = common.classifier_config('embedded:mnist', num_epochs=15, train_size=4000)
  config.augment.max_shift = 2.0
  config.augment.max_degrees = 10.0
  return common.select_variant(
    config, 'mnist_classifier_aug', variant, shrink=common.smoke_classifier
  )
