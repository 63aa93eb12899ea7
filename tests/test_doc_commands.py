"""Every command in the shell blocks of README.md and docs/*.md runs as written.

Checked in-process against the code, nothing run: a `launch.py` command is parsed by launch.py's
own flag parser (flags, config file, variant, `--config.*` overrides and their types), then its
config is resolved and checked as `--mode=config` does; a `python -m gan_jax.X` or `bench/X.py`
command is parsed by that program's own argparse parser (intercepted before it does any work);
`pip install -e ".[extra]"` names an extra of setup.cfg. Every file or folder a command reads
(a workdir to sample or judge, `--like`, a judge or feature classifier named by the config, a
data folder) is made by an earlier command on the same page, shipped in the repository, or one
of PLACEHOLDERS.

The shell syntax understood: `\\` continuations, `&&`, `NAME=value` prefixes, `[--flag=...]`
optional parts (checked as if given; `a|b` values checked each), and `# or --flag=...` comments
(each alternative flag checked in place of the command's own of that family).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import functools
import io
import os
import re
import runpy
import shlex
import subprocess
import sys

from absl import flags
import ml_collections
import pytest

from tests.conftest import ROOT
from tests.test_docs import pages
from tests.test_docs import read

# Inputs a reader supplies: their own images and requests, pytorch-fid's weights file.
PLACEHOLDERS = (
  'my_images/',
  'my_images',
  'my_digits/',
  'my_real_images/',
  'my_prompts.txt',
  'my_requests.txt',
  'my_edits.txt',
  'pt_inception-2015-12-05-6726825d.pth',
  'FILE',
)
SHELL = ('sh', 'bash', 'shell', 'console')
_BLOCK = re.compile(r'^```([\w-]*)[ \t]*\n(.*?)^```', re.M | re.S)
# Config values that name something to read: a run folder, a file, `scheme:path` data.
_PATHLIKE = re.compile(r'^(?:[a-z]+:)?((?:runs|data|configs)/\S+|\S+\.(?:npy|npz|pth))$')
_MODULE_PROGRAMS = ('gan_jax.prepare', 'gan_jax.fid')


@dataclasses.dataclass
class Command:
  page: str
  line: int
  argv: list[str]
  alternatives: list[tuple[list[str], list[str]]]  # (flags replaced, flags offered) per `# or`.

  def __str__(self):
    return f'{os.path.relpath(self.page, ROOT)}:{self.line}: {" ".join(self.argv)}'


def _split_comment(line: str) -> tuple[str, str]:
  """(code, comment) of one shell line: the comment starts at a `#` outside quotes after space."""
  quote = ''
  for i, ch in enumerate(line):
    if quote:
      quote = '' if ch == quote else quote
    elif ch in '\'"':
      quote = ch
    elif ch == '#' and (i == 0 or line[i - 1].isspace()):
      return line[:i], line[i + 1 :].strip()
  return line, ''


def _logical_lines(block: str, first_line: int):
  """(line number, code, [(comment, the code of its line)]) per command line, `\\`
  continuations joined."""
  code, comments, start = '', [], None
  for offset, raw in enumerate(block.splitlines()):
    part, comment = _split_comment(raw)
    start = first_line + offset if start is None else start
    comments += [(comment, part.rstrip().rstrip('\\'))] if comment else []
    if part.rstrip().endswith('\\'):
      code += part.rstrip()[:-1] + ' '
      continue
    yield start, code + part, comments
    code, comments, start = '', [], None


def _alternatives(comments) -> list[tuple[list[str], list[str]]]:
  """(the flags of its line, the flags offered in their place) per `# or --x=...` comment."""
  found = []
  for comment, line in comments:
    offered = [t.rstrip(',') for t in comment[3:].split() if t.startswith('--')]
    if comment.startswith('or ') and offered:
      own = [t for t in shlex.split(re.sub(r'\[(--[^\]]*)\]', r'\1', line)) if t.startswith('--')]
      found.append((own, offered))
  return found


def commands(page: str) -> list[Command]:
  text = read(page)
  found = []
  for match in _BLOCK.finditer(text):
    if match.group(1) not in SHELL:
      continue
    first = text.count('\n', 0, match.start(2)) + 1
    for line, code, comments in _logical_lines(match.group(2), first):
      code = re.sub(r'\[(--[^\]]*)\]', r'\1', code)  # Optional parts are checked as given.
      code = re.sub(r'\$\([^)]*\)', 'SUBSTITUTED', code)  # $(...) is one word here.
      try:
        tokens = shlex.split(code)
      except ValueError as e:
        raise AssertionError(f'{page}:{line}: not shell ({e})') from None
      while tokens:
        cut = tokens.index('&&') if '&&' in tokens else len(tokens)
        argv = tokens[:cut]
        while argv and re.match(r'^[A-Z_]+=', argv[0]):
          argv.pop(0)
        if argv:
          found.append(Command(page, line, argv, _alternatives(comments)))
        tokens = tokens[cut + 1 :]
  return found


def all_commands() -> list[Command]:
  return [c for page in pages() for c in commands(page)]


# ------------------------------------------------------------------------------- the programs


class _Parsed(Exception):
  def __init__(self, namespace):
    super().__init__('parsed')
    self.namespace = namespace


@contextlib.contextmanager
def _stop_after_parsing():
  """argparse parses as ever, then stops the program before it does anything."""
  original = argparse.ArgumentParser.parse_args

  def parse_then_stop(parser, args=None, namespace=None):
    raise _Parsed(original(parser, args, namespace))

  argparse.ArgumentParser.parse_args = parse_then_stop
  try:
    yield
  finally:
    argparse.ArgumentParser.parse_args = original


def argparse_program(program: str, argv: list[str], where: str) -> argparse.Namespace:
  """The namespace the program (a script's path, or `-m`'s module) parses from `argv`, run as
  the shell would run it; its usage error (one line) fails the test."""
  stderr = io.StringIO()
  saved = sys.argv
  with _stop_after_parsing(), contextlib.redirect_stderr(stderr):
    try:
      sys.argv = [program, *argv]
      if program.endswith('.py'):
        runpy.run_path(os.path.join(ROOT, program), run_name='__main__')
      else:
        runpy.run_module(program, run_name='__main__', alter_sys=True)
    except _Parsed as parsed:
      return parsed.namespace
    except SystemExit:
      pass
    finally:
      sys.argv = saved
  error = stderr.getvalue().strip().splitlines()
  pytest.fail(f'{where}: {error[-1] if error else "did not parse its arguments"}')


def _alternative_values(argv: list[str]) -> list[list[str]]:
  """The command once per `a|b` alternative of a flag's value (the first everywhere else)."""
  variants = [[]]
  for arg in argv:
    name, eq, value = arg.partition('=')
    if arg.startswith('--') and eq and '|' in value and ' ' not in value:
      choices = value.split('|')
      variants = [v + [f'{name}={c}'] for v in variants for c in choices]
    else:
      variants = [v + [arg] for v in variants]
  return variants


@functools.cache
def _tracked() -> frozenset[str] | None:
  """The repository's files and folders as git tracks them (None outside a git checkout)."""
  try:
    out = subprocess.run(
      ['git', 'ls-files'], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
  except (OSError, subprocess.CalledProcessError):
    return None
  folders = set()
  for name in out:
    folder = os.path.dirname(name)
    while folder and folder not in folders:
      folders.add(folder)
      folder = os.path.dirname(folder)
  return frozenset(out) | folders


def shipped(path: str) -> bool:
  """Whether a fresh clone has `path` (not a local run left in runs/)."""
  tracked = _tracked()
  return path in tracked if tracked is not None else os.path.exists(os.path.join(ROOT, path))


@dataclasses.dataclass
class Page:
  """What the commands of one page have made so far."""

  made: list[str] = dataclasses.field(default_factory=list)

  def make(self, path: str):
    self.made.append(os.path.normpath(path))

  def has(self, path: str) -> bool:
    path = os.path.normpath(path)
    return (
      path.rstrip('/') in {p.rstrip('/') for p in PLACEHOLDERS}
      or shipped(path)
      or any(path == m or path.startswith(m + os.sep) for m in self.made)
    )

  def need(self, path: str, why: str, where: Command):
    if not self.has(path):
      pytest.fail(
        f'{where}\n  reads {path!r} ({why}), which no earlier command on the page makes, the '
        'repository does not ship and PLACEHOLDERS does not list'
      )


def _config_paths(config: ml_collections.ConfigDict, prefix: str = ''):
  """(dotted field, path) of every config value that names something to read."""
  for key, value in config.items():
    if isinstance(value, ml_collections.ConfigDict):
      yield from _config_paths(value, f'{prefix}{key}.')
    elif isinstance(value, str) and _PATHLIKE.match(value):
      yield f'{prefix}{key}', _PATHLIKE.match(value).group(1)


def _sample_folder(config, values) -> str:
  """Where a plain `--mode=sample` of a fixed-step run writes ('' where the name depends on
  more than the flags say: a time budget, a request, seeds)."""
  requests = ('condition', 'conditions_file', 'like', 'prompt', 'prompts_file', 'seeds')
  requests += ('projected',)
  if config.train.get('time_budget_s', 0) or any(values[n] for n in requests):
    return ''
  name = f'step_{config.train.num_steps:06d}_seed_{values["sample_seed"]}_n{values["num_samples"]}'
  return name + (f'_trunc{values["truncation"]:g}' if values['truncation'] > 0 else '')


def _parse_launch(argv: list[str], where: Command):
  """launch.py's flag values and config for `argv`, refused as launch.py refuses them."""
  import launch  # pylint: disable=g-import-not-at-top

  flags.FLAGS.unparse_flags()
  stderr = io.StringIO()
  saved, sys.argv = sys.argv, ['launch.py', *argv]  # config_flags reads overrides from sys.argv.
  try:
    with contextlib.redirect_stderr(stderr):
      remaining = launch.parse_flags(sys.argv)
  except SystemExit:
    pytest.fail(f'{where}\n  {stderr.getvalue().strip()}')
  finally:
    sys.argv = saved
  assert remaining == ['launch.py'], f'{where}\n  unexpected arguments {remaining[1:]}'
  values = {name: flags.FLAGS[name].value for name in flags.FLAGS}
  values['present'] = {name for name in flags.FLAGS if flags.FLAGS[name].present}
  config, hardware = launch._CONFIG.value, launch._HARDWARE.value  # pylint: disable=protected-access
  flags.FLAGS.unparse_flags()
  for name in [n for n in flags.FLAGS if n.startswith(('config.', 'hardware.'))]:
    delattr(flags.FLAGS, name)  # Each command's overrides are defined afresh when it is parsed.
  return values, config, hardware


def check_launch(argv: list[str], page: Page, where: Command):
  from gan_jax import main as gan_main  # pylint: disable=g-import-not-at-top
  from gan_jax.errors import UserError  # pylint: disable=g-import-not-at-top
  import launch  # pylint: disable=g-import-not-at-top

  values, config, hardware = _parse_launch(argv, where)
  mode, workdir = values['mode'], values['workdir']
  assert workdir or mode == 'config', f'{where}\n  --workdir is required'
  for name, wants in launch.REQUEST_FLAGS.items():
    assert not (name in values['present'] and not values[name].strip()), f'{where}: {wants}'
  if values['seeds']:
    both = {'num_samples', 'sample_seed'} & values['present']
    assert not both, f'{where}\n  --seeds and {both} together are refused'
  try:
    with contextlib.redirect_stdout(io.StringIO()):
      gan_main.show_config(config, hardware)
  except UserError as e:
    pytest.fail(f'{where}\n  error: {e}')
  if mode in ('sample', 'eval', 'cas'):
    page.need(workdir, f'the --mode={mode} workdir', where)
  for name in ('like', 'conditions_file', 'prompts_file', 'images', 'projected', 'edits_file'):
    if values[name]:
      page.need(values[name], f'--{name}', where)
  if mode != 'config':
    for field, path in _config_paths(config):
      page.need(path, f'config.{field}', where)
  if mode == 'train':
    page.make(workdir)
  elif mode == 'sample':
    page.make(os.path.join(workdir, 'generated', _sample_folder(config, values)))
  elif mode == 'project':  # Its folder is named by a hash it prints: anything under projected/.
    page.make(os.path.join(workdir, 'projected'))


def check_module(argv: list[str], page: Page, where: Command):
  name = argv[2]
  assert name in _MODULE_PROGRAMS, f'{where}\n  no program {name} (known: {_MODULE_PROGRAMS})'
  args = argparse_program(name, argv[3:], str(where))
  if name == 'gan_jax.prepare':
    page.need(args.src, 'the images to prepare', where)
    page.make(args.dest)
    return
  page.need(args.weights, '--weights', where)
  page.need(args.paths[0], 'the first PATH', where)
  if args.save_stats:
    page.make(args.paths[1])
  else:
    page.need(args.paths[1], 'the second PATH', where)


def check_bench(argv: list[str], page: Page, where: Command):
  script = argv[1]
  assert os.path.isfile(os.path.join(ROOT, script)), f'{where}\n  no file {script}'
  args = argparse_program(script, argv[2:], str(where))
  for name, value in sorted(vars(args).items()):
    if name in ('out', 'workroot') and value:
      page.make(value)
    elif isinstance(value, str):
      for part in value.split(','):
        if _PATHLIKE.match(part):
          page.need(_PATHLIKE.match(part).group(1), f'--{name}', where)


def check_pip(argv: list[str], where: Command):
  extras = re.findall(r'\.\[([\w,-]+)\]', ' '.join(argv))
  setup = read(os.path.join(ROOT, 'setup.cfg'))
  section = setup.split('[options.extras_require]', 1)[1].split('\n[', 1)[0]
  known = set(re.findall(r'^([\w-]+)\s*=', section, re.M))
  for extra in ','.join(extras).split(',') if extras else []:
    assert extra in known, f'{where}\n  setup.cfg has no extra {extra!r} (has {sorted(known)})'


def check(command: Command, page: Page, argv: list[str] | None = None):
  """Checks one command (or `argv`, one of its variants) against the code."""
  argv = argv if argv is not None else command.argv
  if 'python' in argv[1:] and argv[0] != 'python':  # srun ... python launch.py ...
    argv = argv[argv.index('python') :]
  if argv[0] == 'pip':
    check_pip(argv, command)
  elif argv[0] != 'python' or len(argv) < 2 or argv[1] == '-c' or argv[1:3] == ['-m', 'pytest']:
    return
  elif argv[1] == 'launch.py':
    for variant in _alternative_values(argv[2:]):
      check_launch(variant, page, command)
  elif argv[1] == '-m' and argv[2].startswith('bench.'):  # python -m bench.X == bench/X.py
    check_bench(['python', argv[2].replace('.', '/') + '.py', *argv[3:]], page, command)
  elif argv[1] == '-m':
    check_module(argv, page, command)
  elif argv[1].startswith('bench/'):
    check_bench(argv, page, command)
  else:
    pytest.fail(f'{command}\n  an unknown program {argv[1]!r}')


def _with_alternative(argv: list[str], own: list[str], offered: list[str]) -> list[str]:
  kept = [a for a in argv if a not in own]
  return kept + offered


@pytest.fixture(autouse=True)
def _at_root(monkeypatch):
  monkeypatch.chdir(ROOT)


@pytest.mark.parametrize('path', pages(), ids=lambda p: os.path.relpath(p, ROOT))
def test_every_command_on_the_page_runs_as_written(path):
  page = Page()
  for command in commands(path):
    check(command, page)
    for own, offered in command.alternatives:
      check(command, page, _with_alternative(command.argv, own, offered))


@pytest.mark.parametrize('path', pages(), ids=lambda p: os.path.relpath(p, ROOT))
def test_every_block_names_its_language(path):
  """So that a shell block is known to be one: ```bash, ```text, ```python ..."""
  text = read(path)
  bare = [text.count('\n', 0, m.start()) + 1 for m in _BLOCK.finditer(text) if not m.group(1)]
  assert not bare, f'{os.path.relpath(path, ROOT)}: blocks without a language at lines {bare}'


def test_the_reader_understands_the_shell_it_is_given(tmp_path):
  doc = tmp_path / 'page.md'
  doc.write_text(
    '```bash\n'
    'X=1 python launch.py --config=c.py \\\n'
    '  --a=1 [--b=2]    # or --c=3, said here\n'
    "pip install -e '.[test]' && python -m pytest  # a remark\n"
    '```\n'
    '```python\nprint(1)\n```\n```text\npython launch.py --nothing\n```\n'
  )
  found = commands(str(doc))
  assert [c.argv for c in found] == [
    ['python', 'launch.py', '--config=c.py', '--a=1', '--b=2'],
    ['pip', 'install', '-e', '.[test]'],
    ['python', '-m', 'pytest'],
  ]
  assert found[0].line == 2 and found[0].alternatives == [(['--a=1', '--b=2'], ['--c=3'])]
  assert _alternative_values(['--fit=crop|pad', '--x=1']) == [
    ['--fit=crop', '--x=1'],
    ['--fit=pad', '--x=1'],
  ]


def test_a_wrong_command_is_caught():
  where = Command('page.md', 1, [], [])
  with pytest.raises(pytest.fail.Exception, match='unknown config key'):
    check_launch(
      ['--config=configs/mnist_dcgan.py', '--workdir=w', '--config.train.nope=1'], Page(), where
    )
  with pytest.raises(pytest.fail.Exception, match='reads .runs/never'):
    check_launch(
      ['--config=configs/mnist_dcgan.py', '--workdir=runs/never', '--mode=eval'], Page(), where
    )
  with pytest.raises(pytest.fail.Exception, match='unrecognized arguments'):
    check_bench(['python', 'bench/control.py', '--no_such_flag=1'], Page(), where)
  with pytest.raises(pytest.fail.Exception, match='config.eval.classifier_workdir'):
    check_launch(['--config=configs/mnist_instance.py', '--workdir=w'], Page(), where)
  page = Page()
  check_launch(
    ['--config=configs/mnist_classifier.py', '--workdir=runs/mnist_classifier'], page, where
  )
  check_launch(
    ['--config=configs/mnist_dcgan.py', '--workdir=runs/d', '--mode=config'], page, where
  )
  assert page.has('runs/mnist_classifier') and not page.has('runs/d')
