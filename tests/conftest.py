"""Shared test setup: the repository root importable (for configs/), small fast configs."""

import importlib
import os
import sys
import tempfile

import pytest

# Tests run tiny models for a few steps, so XLA's compile time dominates; fewer optimisation
# passes halve the suite's CPU time. Set in the environment so test subprocesses inherit it.
os.environ.setdefault('JAX_DISABLE_MOST_OPTIMIZATIONS', '1')
# Morphometrics of the embedded digits (gan_jax/morpho.py), measured once for all test workers.
os.environ.setdefault('GAN_JAX_CACHE', os.path.join(tempfile.gettempdir(), 'gan_jax_test_cache'))

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


def load_config(name: str, variant: str | None = 'smoke'):
  """configs/<name>.py's get_config(variant), as launch.py would load it."""
  return importlib.import_module(f'configs.{name}').get_config(variant)


def generated(workdir) -> set:
  """The folders --mode=sample has written in `workdir`."""
  folder = os.path.join(workdir, 'generated')
  return set(os.listdir(folder)) if os.path.isdir(folder) else set()


@pytest.fixture
def smoke_config():
  return load_config('mnist_dcgan')
