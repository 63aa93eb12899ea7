"""The house rule on size: no function or method in gan_jax/ is over 80 lines (from its `def`
to its last line, docstring included), so every step of the library reads on one screen."""

import ast
import os

from tests.conftest import ROOT

MAX_LINES = 80


def function_lengths(package: str) -> dict[str, int]:
  """{'path:name': lines} of every function and method under `package`."""
  lengths = {}
  for folder, _, files in os.walk(package):
    for name in sorted(files):
      if not name.endswith('.py'):
        continue
      path = os.path.join(folder, name)
      tree = ast.parse(open(path).read())
      for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
          where = f'{os.path.relpath(path, ROOT)}:{node.name}'
          lengths[where] = max(lengths.get(where, 0), node.end_lineno - node.lineno + 1)
  return lengths


def test_function_lengths_are_counted(tmp_path):
  (tmp_path / 'm.py').write_text('def f():\n' + '  x = 1\n' * 90 + '\n\ndef g():\n  pass\n')
  lengths = {k.rsplit(':', 1)[1]: v for k, v in function_lengths(str(tmp_path)).items()}
  assert lengths == {'f': 91, 'g': 2}


def test_no_function_in_gan_jax_is_over_80_lines():
  lengths = function_lengths(os.path.join(ROOT, 'gan_jax'))
  assert len(lengths) > 300
  long = {k: v for k, v in sorted(lengths.items()) if v > MAX_LINES}
  assert not long, f'functions over {MAX_LINES} lines: {long}'
