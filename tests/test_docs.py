"""The README is a manual and docs/ holds the measurements: every link and anchor resolves.

Pure file reading, no JAX: checks the README's length, every relative link and image in
README.md and docs/*.md (file and `#anchor`), every `docs/NAME.md[#anchor]` that code, configs,
bench scripts and tests name, and that no page narrates earlier runs.
"""

import glob
import os
import re
import unicodedata

import pytest

from tests.conftest import ROOT

README = os.path.join(ROOT, 'README.md')
MAX_README_LINES = 300
# Sentences that tell the order or days of earlier runs, or send users into git history.
NARRATING = (
  'slow day',
  'slow morning',
  'next day',
  'last session',
  'the session before',
  'previous session',
  'earlier session',
  'this session',
  'git show',
)
# Where code points into the docs (this file's own examples excepted).
CODE_PATHS = ('gan_jax', 'configs', 'bench', 'tests', 'launch.py')

_FENCE = re.compile(r'^(```|~~~).*?^\1', re.M | re.S)
_INLINE_CODE = re.compile(r'`[^`\n]*`')
_LINK = re.compile(r'!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)')
_HEADING = re.compile(r'^(#{1,6})[ \t]+(.+?)[ \t#]*$', re.M)
# A docs page the code points a reader to; not a file a command writes (`--out docs/X.md`).
_DOCS_MENTION = re.compile(r'(?<!--out )docs/([A-Za-z0-9_.-]+\.md)(?:#([A-Za-z0-9_-]+))?')


def pages() -> list[str]:
  return [README] + sorted(glob.glob(os.path.join(ROOT, 'docs', '*.md')))


def read(path: str) -> str:
  with open(path, encoding='utf-8') as f:
    return f.read()


def prose(text: str) -> str:
  """The text without fenced code blocks and inline code, where brackets are not links."""
  return _INLINE_CODE.sub('', _FENCE.sub('', text))


def slug(heading: str) -> str:
  """GitHub's anchor for a heading: its rendered text lowercased, punctuation other than '-'
  and '_' dropped, spaces to '-'."""
  text = re.sub(r'!?\[([^\]]*)\]\([^)]*\)', r'\1', heading)  # A link's text only.
  text = text.replace('`', '').strip().lower()
  kept = []
  for ch in text:
    if ch in '-_' or ch == ' ' or unicodedata.category(ch)[0] in 'LN':
      kept.append(ch)
  return ''.join(kept).replace(' ', '-')


def anchors(path: str) -> set[str]:
  """Every heading anchor of a Markdown file, repeated headings numbered as GitHub does."""
  seen: dict[str, int] = {}
  result = set()
  for _, heading in _HEADING.findall(_FENCE.sub('', read(path))):
    base = slug(heading)
    count = seen.get(base, 0)
    seen[base] = count + 1
    result.add(base if count == 0 else f'{base}-{count}')
  return result


def links(path: str) -> list[str]:
  return _LINK.findall(prose(read(path)))


def broken_link(source: str, target: str) -> str | None:
  """Why `target`, a link in `source`, does not resolve; None when it does or is external."""
  if re.match(r'^[a-z][a-z0-9+.-]*:', target, re.I):  # http:, https:, mailto: ...
    return None
  file_part, _, anchor = target.partition('#')
  resolved = (
    os.path.normpath(os.path.join(os.path.dirname(source), file_part)) if file_part else source
  )
  if not os.path.exists(resolved):
    return f'{target}: no file {os.path.relpath(resolved, ROOT)}'
  if anchor and (not resolved.endswith('.md') or anchor not in anchors(resolved)):
    return f'{target}: no heading #{anchor} in {os.path.relpath(resolved, ROOT)}'
  return None


def code_files() -> list[str]:
  files = []
  for name in CODE_PATHS:
    path = os.path.join(ROOT, name)
    if os.path.isfile(path):
      files.append(path)
    for root, _, names in os.walk(path):
      files += [os.path.join(root, n) for n in names if n.endswith(('.py', '.cfg', '.toml'))]
  this = os.path.abspath(__file__)
  return sorted(f for f in files if os.path.abspath(f) != this)


def test_slug_follows_github():
  assert slug('Control: the conditional model') == 'control-the-conditional-model'
  assert slug("The hidden layer in D's head") == 'the-hidden-layer-in-ds-head'
  assert slug('mnist_r3gan in 30 minutes') == 'mnist_r3gan-in-30-minutes'
  assert slug('Mode coverage (Stacked MNIST)') == 'mode-coverage-stacked-mnist'
  assert slug('`python -m gan_jax.fid`, Inception') == 'python--m-gan_jaxfid-inception'


def test_readme_is_a_manual_of_at_most_300_lines():
  with open(README, encoding='utf-8') as f:
    count = sum(1 for _ in f)
  assert count <= MAX_README_LINES, f'README.md has {count} lines; at most {MAX_README_LINES}'


@pytest.mark.parametrize('path', pages(), ids=lambda p: os.path.relpath(p, ROOT))
def test_every_link_and_image_resolves(path):
  found = links(path)
  assert found or path != README, 'README.md links to nothing: the pattern is broken'
  broken = [why for target in found if (why := broken_link(path, target))]
  assert not broken, f'{os.path.relpath(path, ROOT)}: ' + '; '.join(broken)


def test_every_docs_page_and_heading_the_code_names_exists():
  broken = []
  for path in code_files():
    for name, anchor in _DOCS_MENTION.findall(read(path)):
      page = os.path.join(ROOT, 'docs', name)
      if not os.path.exists(page):
        broken.append(f'{os.path.relpath(path, ROOT)}: docs/{name} does not exist')
      elif anchor and anchor not in anchors(page):
        broken.append(f'{os.path.relpath(path, ROOT)}: docs/{name} has no heading #{anchor}')
  assert not broken, '\n'.join(broken)


@pytest.mark.parametrize('path', pages(), ids=lambda p: os.path.relpath(p, ROOT))
def test_no_sentence_narrates_earlier_runs(path):
  text = read(path).lower()
  found = [phrase for phrase in NARRATING if phrase in text]
  assert not found, f'{os.path.relpath(path, ROOT)} narrates earlier runs: {found}'
