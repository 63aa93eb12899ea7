"""Two CPU devices, one per core of a 2-core machine: the data mesh runs half of each batch on
each core, which XLA:CPU does faster than one whole batch over both cores for small batches
(docs/performance.md). Convolutions are sliced automatically (unsliced below 16 examples per
device).

  python launch.py --config=configs/stacked_mnist_r3gan.py \
    --hardware=configs/hardware/cpu_2_devices.py --workdir=runs/stacked_mnist_r3gan
"""

import ml_collections


def get_config():
  # The fields of gan_jax/hardware.py's default_config.
  return ml_collections.ConfigDict(dict(cpu_devices=2, conv_batch_slices=0))
