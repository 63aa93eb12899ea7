"""Digits drawn from a sentence: a DCGAN whose G and D each read the sentence with a small
transformer encoder trained with them (gan_jax/models/text.py), D also learning to reject
real digits beside sentences that contradict them (the matching-aware loss) and to classify
the digit and its terciles, which G's samples must show (TAC-GAN); G's encoding carries half
a unit of noise drawn from z, so one sentence gives many drawings. Judged by the
`text` evaluator: obedience to complete sentences seen and held out of training
(docs/text.md).

  python launch.py --config=configs/mnist_text.py --workdir=runs/mnist_text
  python launch.py --config=configs/mnist_text.py --workdir=runs/mnist_text \\
    --mode=sample --prompt='a thick seven leaning right'

Captions name the digit and the tercile of its thickness and slant among the training digits
of its class (gan_jax/captions.py), 16 per digit in 5 templates with synonyms, each attribute
left out with probability 0.3. The digits of the 9 compositions in `text.held_out` are not
trained on; the model must compose them from what it saw apart.
"""

import ml_collections

from configs import common
from configs import mnist_cgan

# 9 of the 90 (digit, thickness, slant) compositions, every digit but one, every value of each
# attribute at least twice.
HELD_OUT = (
  'a thick zero leaning left',
  'a thin one leaning right',
  'a thick two upright',
  'a thin three leaning left',
  'a regular four leaning right',
  'a thick five leaning right',
  'a thin six upright',
  'a thick seven leaning right',
  'a regular eight leaning left',
)


def text_section() -> ml_collections.ConfigDict:
  return ml_collections.ConfigDict(
    dict(
      held_out=HELD_OUT,
      captions_per_image=16,
      omit_probability=0.3,
      caption_seed=0,
      encoder_width=64,
      encoder_depth=1,
      encoder_heads=4,
      encoder_features=32,
      # Steps of pretraining both encoders to read what each caption names (0 = none), and
      # whether G's encoder then stays as pretrained.
      pretrain_steps=0,
      freeze_generator_encoder=False,
      # G's encoding layer-normalised plus this much of the last `encoder_features` dims of z
      # (conditioning augmentation without a KL term; 0 = off).
      code_noise=0.0,
    )
  )


def get_config(variant: str | None = None):
  config = mnist_cgan.get_config()
  config.model.conditional = False
  config.model.condition = ('text',)
  config.text = text_section()
  # Without noise in its encoding G draws one digit per sentence (recall 0.004 at 1,200 s);
  # 0.5 restores recall at little cost in obedience (docs/text.md).
  config.text.code_noise = 0.5
  config.loss.mismatch_weight = 1.0
  # D also classifies the digit and its terciles (fitted on real digits); G pays for what its
  # sentence names (TAC-GAN). 0 leaves the sentence to D's projection and mismatch loss alone.
  config.loss.text_aux_weight = 1.0
  config.eval.num_grid_samples = 100
  # Obedience to the 90 complete sentences, 25 samples each (gan_jax/evaluators.py).
  config.evals.text = dict(type='text', every=0, num_samples=2250)
  return common.select_variant(
    config,
    'mnist_text',
    variant,
    eval__num_grid_samples=20,
    text__captions_per_image=4,
    text__encoder_width=16,
    text__encoder_features=8,
    evals__text__num_samples=90,
  )
