"""The one exception type that `launch.py` turns into a one-line error and a non-zero exit, and
the argument parser of the `python -m gan_jax.*` commands, whose errors are one line too."""

import argparse
import sys


class UserError(Exception):
  """Bad input from the user (config, data, workdir): reported as one line, never a traceback."""


# Of a user's input, an error line quotes at most this many characters.
QUOTE_LIMIT = 60


def quote(text, limit: int = QUOTE_LIMIT) -> str:
  """`text` as an error line quotes it: repr'd, and past `limit` characters cut to a prefix
  and its length, so a long input never floods the line."""
  text = str(text)
  if len(text) <= limit:
    return repr(text)
  return f'{text[:limit]!r}... ({len(text):,} characters)'


def clip(text, limit: int = QUOTE_LIMIT) -> str:
  """`text` unquoted, cut to `limit` characters and '...' when longer."""
  text = str(text)
  return text if len(text) <= limit else f'{text[:limit]}...'


class ArgumentParser(argparse.ArgumentParser):
  """argparse, but a bad argument is one line on stderr and exit status 2, not a usage block."""

  def error(self, message):
    print(f'error: {message} (see {self.prog} --help)', file=sys.stderr)
    sys.exit(2)
