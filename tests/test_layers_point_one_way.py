"""The house rules the code can check: gan_jax's imports form no cycle (in-function imports
counted), in-function imports are kept for optional or heavy dependencies, and the experiment
code never imports the loop, the evaluator or the sampler that use it."""

import ast
import os

from tests.conftest import ROOT

PACKAGE = os.path.join(ROOT, 'gan_jax')
# Imported inside functions on purpose: only some runs need them, and they are slow to import.
LAZY_ALLOWED = {
  'mlxtend',
  'sklearn',
  'skimage',
  'PIL',
  'tensorboardX',
  'tensorflow_datasets',
  'matplotlib',
}


def module_imports() -> dict[str, dict[str, bool]]:
  """{module: {imported gan_jax module: imported inside a function}} for every gan_jax file."""
  graph = {}
  for folder, _, files in os.walk(PACKAGE):
    for name in files:
      if not name.endswith('.py'):
        continue
      path = os.path.join(folder, name)
      module = os.path.relpath(path, ROOT)[:-3].replace(os.sep, '.').removesuffix('.__init__')
      tree = ast.parse(open(path).read())
      nested = {
        id(n)
        for f in ast.walk(tree)
        if isinstance(f, (ast.FunctionDef, ast.Lambda))
        for n in ast.walk(f)
        if n is not f
      }
      edges = {}
      for node in ast.walk(tree):
        names = []
        if isinstance(node, ast.Import):
          names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
          # `from package import module` depends on the module, not on the package's
          # __init__ (which may import its modules in turn).
          names = [
            f'{node.module}.{a.name}'
            if os.path.exists(os.path.join(ROOT, *node.module.split('.'), f'{a.name}.py'))
            else node.module
            for a in node.names
          ]
        for imported in names:
          edges.setdefault(imported, False)
          edges[imported] |= id(node) in nested
      graph[module] = edges
  return graph


def local_graph(graph):
  return {m: {i for i in edges if i in graph and i != m} for m, edges in graph.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
  state = {}

  def visit(node, path):
    state[node] = 'open'
    for nxt in sorted(graph[node]):
      if state.get(nxt) == 'open':
        return path[path.index(nxt) :] + [nxt] if nxt in path else [node, nxt]
      if nxt not in state:
        found = visit(nxt, path + [nxt])
        if found:
          return found
    state[node] = 'done'
    return None

  for start in sorted(graph):
    if start not in state:
      found = visit(start, [start])
      if found:
        return found
  return None


def test_find_cycle_finds_one():
  assert find_cycle({'a': {'b'}, 'b': {'c'}, 'c': {'a'}}) == ['a', 'b', 'c', 'a']
  assert find_cycle({'a': {'b'}, 'b': set(), 'c': {'a', 'b'}}) is None


def test_no_import_cycle_among_gan_jax_modules():
  graph = module_imports()
  assert len(graph) > 20 and 'gan_jax.experiment' in graph
  assert find_cycle(local_graph(graph)) is None


def test_in_function_imports_only_for_optional_dependencies():
  lazy = {
    (m, i.split('.')[0])
    for m, edges in module_imports().items()
    for i, inside in edges.items()
    if inside
  }
  assert {top for _, top in lazy} <= LAZY_ALLOWED, sorted(lazy)


def test_experiments_and_generation_never_import_their_users():
  """The GAN, its builder and loop adapter, generation, the setup, the config checks and the
  hardware layer sit below the loop, the evaluators, plotting and sampling."""
  graph = local_graph(module_imports())
  users = {
    'gan_jax.train',
    'gan_jax.evaluate',
    'gan_jax.evaluators',
    'gan_jax.sample',
    'gan_jax.main',
    'gan_jax.plots',
  }
  below = (
    'gan_jax.gan',
    'gan_jax.gan_builder',
    'gan_jax.gan_experiment',
    'gan_jax.generation',
    'gan_jax.experiment',
    'gan_jax.classifier',
    'gan_jax.config_checks',
    'gan_jax.hardware',
    'gan_jax.cas',  # An evaluation mode: main.py hands it the loop to train its classifiers.
    'gan_jax.conditioning',
  )
  for module in below:
    reachable, todo = set(), [module]
    while todo:
      for nxt in graph[todo.pop()] - reachable:
        reachable.add(nxt)
        todo.append(nxt)
    assert not reachable & users, (module, sorted(reachable & users))
