"""Digits drawn to order: a DCGAN conditioned on the class and on measured stroke thickness and
slant (Morpho-MNIST's morphometrics, gan_jax/morpho.py), judged for control by the `control`
evaluator (docs/control.md).

  python launch.py --config=configs/mnist_attributes.py --workdir=runs/mnist_attributes
  python launch.py --config=configs/mnist_attributes.py --workdir=runs/mnist_attributes \\
    --mode=sample --condition='digit=7,thickness=3.5,slant=0.3'

The training digits are measured once (about half a minute on 2 cores) and cached. G reads
the standardised (thickness, slant) beside z and the label embedding; D projects the label
and fits an auxiliary regressor to the real digits' (thickness, slant), which G must satisfy
(4x its error in G's loss).
Add 'area', 'length', 'width' or 'height' to `condition` to control those too.
"""

from configs import common
from configs import mnist_cgan


def get_config(variant: str | None = None):
  config = mnist_cgan.get_config()
  config.model.condition = ('label', 'thickness', 'slant')
  config.model.vector_conditioning = 'regression'
  # G pays 4x its regression error: thickness r 0.958 against 0.935 at weight 1 after 6,000
  # steps (docs/control.md).
  config.loss.regression_weight = 4.0
  config.eval.num_grid_samples = 100
  config.eval.sweep_labels = (1, 4, 7)
  # Requested vs measured thickness and slant over 2,000 samples (gan_jax/control.py).
  config.evals.control = dict(type='control', every=0, num_samples=2000)
  # Projection and edits of the 1,000 held-out digits (gan_jax/counterfactual.py; needs
  # eval.classifier_workdir and eval.rank_classifier_workdir): --mode=eval only.
  config.evals.counterfactual = dict(type='counterfactual', every=-1, num_samples=0)
  return common.select_variant(
    config,
    'mnist_attributes',
    variant,
    eval__num_grid_samples=20,
    eval__sweep_labels=(7,),
    evals__control__num_samples=200,
    evals__counterfactual__num_samples=20,
  )
