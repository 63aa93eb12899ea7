"""The one exception type that `launch.py` turns into a one-line error and a non-zero exit."""


class UserError(Exception):
  """Bad input from the user (config, data, workdir): reported as one line, never a traceback."""
