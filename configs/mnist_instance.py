""""More like this digit": a DCGAN conditioned on an image's feature vector (IC-GAN's
instance conditioning, Casanova et al. 2021), here the 128-d penultimate layer of the
article's classifier trained in runs/mnist_classifier. Judged by retrieval: samples conditioned
on a held-out digit should point back at it among the 1,000 held-out digits, in the features of
a second classifier trained with another seed (the `instance` evaluator, docs/control.md).

  python launch.py --config=configs/mnist_classifier.py --workdir=runs/mnist_classifier
  python launch.py --config=configs/mnist_classifier.py --workdir=runs/mnist_classifier_seed1 \\
    --config.seed=1
  python launch.py --config=configs/mnist_instance.py --workdir=runs/mnist_instance
  python launch.py --config=configs/mnist_instance.py --workdir=runs/mnist_instance \\
    --mode=sample --like=some_digit.png --num_samples=16

`config.model.features` may instead name an (N, F) .npy aligned with the training split: the
door for any other embedding (CLIP, a self-supervised encoder); --like then takes an .npy of
such vectors.
"""

from configs import common
from configs import mnist_cgan


def get_config(variant: str | None = None):
  config = mnist_cgan.get_config()
  config.model.conditional = False
  config.model.condition = ('features',)
  config.model.features = 'runs/mnist_classifier'
  config.model.vector_conditioning = 'projection'
  config.eval.num_grid_samples = 64
  config.eval.classifier_workdir = 'runs/mnist_classifier'
  config.eval.rank_classifier_workdir = 'runs/mnist_classifier_seed1'
  config.evals.instance = dict(type='instance', every=0, num_samples=8)
  # Half of mnist_cgan's steps: the retrieval rank is near its best by then (docs/control.md).
  config.train.num_steps = 3000
  return common.select_variant(
    config, 'mnist_instance', variant, eval__num_grid_samples=16, evals__instance__num_samples=1
  )
