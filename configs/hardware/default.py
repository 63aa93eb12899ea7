"""The hardware settings when no --hardware file is named: JAX's own device count (one CPU
device; every accelerator), convolution slicing chosen by backend and batch. Fields:
gan_jax/hardware.py. Override one without a file: --hardware.cpu_devices=2."""

from gan_jax import hardware


def get_config():
  return hardware.default_config()
