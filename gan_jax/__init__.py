"""gan_jax: GANs and the CNN classifiers that judge them, in JAX/Flax."""

__version__ = '0.1.0'
