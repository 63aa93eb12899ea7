"""The baseline of configs/mnist_text.py: the same sentences read by rule into a structured
condition (digit, thickness, slant as in configs/mnist_attributes.py), trained on the same
digits (the held-out compositions taken out) and judged by the same `text` evaluator, which
turns each sentence's terciles into values well inside them (docs/text.md).

  python launch.py --config=configs/mnist_text_rule.py --workdir=runs/mnist_text_rule
"""

from configs import common
from configs import mnist_attributes
from configs import mnist_text


def get_config(variant: str | None = None):
  config = mnist_attributes.get_config()
  config.text = mnist_text.text_section()
  config.evals.text = dict(type='text', every=0, num_samples=2250)
  return common.select_variant(
    config,
    'mnist_text_rule',
    variant,
    eval__num_grid_samples=20,
    eval__sweep_labels=(7,),
    evals__control__num_samples=200,
    evals__text__num_samples=90,
  )
