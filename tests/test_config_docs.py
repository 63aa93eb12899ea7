"""Every field of every config is documented: each leaf of each config in configs/ (default
and `smoke` variants, hardware configs too) appears by its dotted path in
docs/configuration.md. Evaluator entries (`evals.NAME.*`) are documented once per evaluator
type, so their leaves are checked as the type names. Every test file is in docs/tests.md."""

import glob
import importlib
import os
import re

import pytest

from tests.conftest import ROOT

DOCS = os.path.join(ROOT, 'docs')


def read(name: str) -> str:
  with open(os.path.join(DOCS, name), encoding='utf-8') as f:
    return f.read()


def leaves(tree, prefix=''):
  for key, value in tree.items():
    path = f'{prefix}{key}'
    if isinstance(value, dict):
      yield from leaves(value, path + '.')
    else:
      yield path


def config_modules() -> list[str]:
  paths = glob.glob(os.path.join(ROOT, 'configs', '*.py'))
  paths += glob.glob(os.path.join(ROOT, 'configs', 'hardware', '*.py'))
  names = [os.path.relpath(p, ROOT)[:-3].replace(os.sep, '.') for p in sorted(paths)]
  return [n for n in names if not n.endswith(('__init__', 'common'))]


def documented_paths(module: str) -> list[str]:
  """The dotted paths a reader must find for a config module: its leaves, with evaluator
  entries reduced to their types."""
  get = importlib.import_module(module).get_config
  trees = [get().to_dict()]
  if not module.startswith('configs.hardware'):
    trees.append(get('smoke').to_dict())
  found = set()
  for tree in trees:
    for spec in tree.pop('evals', {}).values():
      found.add(f'evaluator type `{spec["type"]}`')
    found.update(leaves(tree))
  return sorted(found)


@pytest.mark.parametrize('module', config_modules())
def test_every_config_field_is_in_the_configuration_page(module):
  page = read('configuration.md')
  missing = []
  for path in documented_paths(module):
    if path.startswith('evaluator type'):
      name = path.split('`')[1]
      ok = f'| `{name}` |' in page
    else:
      pattern = r'`(?:config\.|hardware\.)?' + re.escape(path) + r'(?:`|=|\s)'
      ok = re.search(pattern, page) is not None
    if not ok:
      missing.append(path)
  assert not missing, f'{module}: not in docs/configuration.md: {missing}'


def test_every_test_file_is_in_the_tests_page():
  page = read('tests.md')
  files = [os.path.basename(p) for p in glob.glob(os.path.join(ROOT, 'tests', 'test_*.py'))]
  assert len(files) > 30
  missing = sorted(f for f in files if f'`{f}`' not in page)
  assert not missing, f'not in docs/tests.md: {missing}'
