"""The one exception type that `launch.py` turns into a one-line error and a non-zero exit, and
the argument parser of the `python -m gan_jax.*` commands, whose errors are one line too."""

import argparse
import sys


class UserError(Exception):
  """Bad input from the user (config, data, workdir): reported as one line, never a traceback."""


class ArgumentParser(argparse.ArgumentParser):
  """argparse, but a bad argument is one line on stderr and exit status 2, not a usage block."""

  def error(self, message):
    print(f'error: {message} (see {self.prog} --help)', file=sys.stderr)
    sys.exit(2)
