"""Sentences about digits: captions from a digit's label and measured attributes, the grammar
every prompt is read by, and the word-level vocabulary a text encoder reads.

A digit's thickness and slant (gan_jax/morpho.py) are named by the tercile they fall in among
the training digits *of the same class* (a thick 1 and a thick 8 are thick for a 1 and for an
8):

  thickness  0 thin (synonyms slim, light)   1 regular (medium)   2 thick (bold, heavy)
  slant      0 leaning left (slanted, tilted left; leaning to the left)
             1 upright (straight, standing straight)
             2 leaning right (slanted, tilted right; leaning to the right)

A prompt is any sentence of these words in which one digit (zero ... nine or 0 ... 9) and at
most one value per attribute is named, e.g. `[a|an] [thin|thick] DIGIT [leaning left|upright|
leaning right]`; the words of TEMPLATES below are the vocabulary and nothing else is. `parse`
reads a sentence by rule into a `Named` (the digit and each attribute's tercile, -1 where the
sentence leaves it open, i.e. "any"); training captions come from several templates with
random synonyms, and leave attributes out at random so partial sentences are seen.
"""

from collections.abc import Sequence
import json
import os
import re
from typing import NamedTuple

import numpy as np

from gan_jax.errors import UserError
from gan_jax.errors import quote

ATTRIBUTES = ('thickness', 'slant')
DIGIT_WORDS = ('zero', 'one', 'two', 'three', 'four', 'five', 'six', 'seven', 'eight', 'nine')
# The words that name each tercile, first the canonical one.
THICKNESS_WORDS = (('thin', 'slim', 'light'), ('regular', 'medium'), ('thick', 'bold', 'heavy'))
SLANT_PHRASES = (
  ('leaning left', 'slanted left', 'tilted left', 'leaning to the left'),
  ('upright', 'straight', 'standing straight'),
  ('leaning right', 'slanted right', 'tilted right', 'leaning to the right'),
)
# Words that name a slant on their own (the rest of a slant phrase is filler).
SLANT_WORDS = {'left': 0, 'upright': 1, 'straight': 1, 'right': 2}
FILLERS = ('a', 'an', 'the', 'digit', 'number', 'written', 'in', 'with', 'strokes', 'and')
# Caption templates: {a} an article agreeing with the next word, {t} a thickness word, {d} the
# digit, {s} a slant phrase; a bracketed part is dropped with the attribute it names.
TEMPLATES = (
  '{a} [{t}] {d} [{s}]',
  'the digit {d} [{s}] [with {t} strokes]',
  '{d}, [{t},] [{s}]',
  '{a} {d} [written in {t} strokes] [{s}]',
  'the number {d} [{s}] [and {t}]',
)
PAD = '<pad>'
MAX_WORDS = 12  # The longest sentence the encoder reads.


class Named(NamedTuple):
  """What a sentence names: the digit, and each attribute's tercile (-1: not named, "any")."""

  digit: int
  thickness: int = -1
  slant: int = -1

  @property
  def codes(self) -> tuple[int, int]:
    return (self.thickness, self.slant)

  @property
  def complete(self) -> bool:
    return min(self.codes) >= 0


def vocabulary_words() -> list[str]:
  """Every word a sentence may use, sorted."""
  words = set(DIGIT_WORDS) | {str(d) for d in range(10)} | set(FILLERS) | set(SLANT_WORDS)
  words |= {w for group in THICKNESS_WORDS for w in group}
  words |= {w for group in SLANT_PHRASES for phrase in group for w in phrase.split()}
  words |= {w for t in TEMPLATES for w in re.findall(r'[a-z]+', re.sub(r'\{\w\}', ' ', t))}
  return sorted(words)


def words_of(sentence: str) -> list[str]:
  """Lower-cased words and single numerals; commas, full stops and the like separate words,
  any other character is a word of its own (and not in the vocabulary)."""
  return [
    w for w in re.findall(r'[a-z]+|[0-9]|[^\sa-z0-9]', sentence.lower()) if w not in ',.;:!?-'
  ]


def _known(word: str, known: set, where: str) -> None:
  if word not in known:
    raise UserError(
      f'{where}: {quote(word)} is not in the vocabulary: {" ".join(sorted(known - {PAD}))}'
    )


def parse(sentence: str, where: str = '--prompt', vocabulary: Sequence[str] | None = None) -> Named:
  """The digit and attribute terciles a sentence names, by rule; a one-line UserError for an
  empty sentence, a word outside the vocabulary, no digit or two, or two values of one
  attribute."""
  words = words_of(sentence)
  if not words:
    raise UserError(f'{where}: the sentence is empty')
  if len(words) > MAX_WORDS:
    raise UserError(f'{where}: {quote(sentence)} has {len(words)} words; at most {MAX_WORDS}')
  known = set(vocabulary or vocabulary_words())
  found: dict[str, list[tuple[int, str]]] = {'digit': [], 'thickness': [], 'slant': []}
  for word in words:
    _known(word, known, where)
    if word in DIGIT_WORDS:
      found['digit'].append((DIGIT_WORDS.index(word), word))
    elif word.isdigit():
      found['digit'].append((int(word), word))
    elif word in SLANT_WORDS:
      found['slant'].append((SLANT_WORDS[word], word))
    else:
      for code, group in enumerate(THICKNESS_WORDS):
        if word in group:
          found['thickness'].append((code, word))
  digits = found['digit']
  if len(digits) != 1:
    named = (
      'no digit'
      if not digits
      else f'{len(digits)} digits (' + ', '.join(w for _, w in digits) + ')'
    )
    raise UserError(
      f'{where}: {quote(sentence)} names {named}; name exactly one (zero..nine or 0..9)'
    )
  codes = {}
  for name in ATTRIBUTES:
    values = {c for c, _ in found[name]}
    if len(values) > 1:
      words_said = ', '.join(w for _, w in found[name])
      raise UserError(f'{where}: {quote(sentence)} names two values of {name} ({words_said})')
    codes[name] = values.pop() if values else -1
  return Named(digits[0][0], codes['thickness'], codes['slant'])


def canonical(named: Named) -> str:
  """The grammar's plain sentence for `named`: 'a thick seven leaning right'."""
  parts = []
  if named.thickness >= 0:
    parts.append(THICKNESS_WORDS[named.thickness][0])
  parts.append(DIGIT_WORDS[named.digit])
  if named.slant >= 0:
    parts.append(SLANT_PHRASES[named.slant][0])
  return f'{_article(parts[0])} ' + ' '.join(parts)


def _article(word: str) -> str:
  return 'an' if word in ('eight', '8') else 'a'


def caption(named: Named, rng: np.random.Generator) -> str:
  """A training caption of `named` in a random template, with random synonyms and the digit
  as a word or a numeral."""
  template = TEMPLATES[rng.integers(len(TEMPLATES))]
  digit = DIGIT_WORDS[named.digit] if rng.random() < 0.7 else str(named.digit)
  thick = (
    THICKNESS_WORDS[named.thickness][rng.integers(len(THICKNESS_WORDS[named.thickness]))]
    if named.thickness >= 0
    else None
  )
  slant = (
    SLANT_PHRASES[named.slant][rng.integers(len(SLANT_PHRASES[named.slant]))]
    if named.slant >= 0
    else None
  )

  def part(match):
    inner = match.group(1)
    if ('{t}' in inner and thick is None) or ('{s}' in inner and slant is None):
      return ''
    return inner

  text = re.sub(r'\[([^\]]*)\]', part, template)
  text = text.replace('{t}', thick or '').replace('{d}', digit).replace('{s}', slant or '')
  first = text.split('{a}', 1)[-1].split()
  text = text.replace('{a}', _article(first[0].strip(',') if first else ''))
  return ' '.join(text.replace(' ,', ',').split()).strip(', ')


class Terciles(NamedTuple):
  """Per class, the 1/3 and 2/3 quantiles of each attribute among its training digits."""

  bounds: np.ndarray  # (classes, attributes, 2)

  def codes(self, labels: np.ndarray, values: dict) -> np.ndarray:
    """(n, 2) int terciles (0, 1, 2) of `values` {attribute: (n,)} for digits of `labels`."""
    labels = np.asarray(labels)
    out = np.empty((len(labels), len(ATTRIBUTES)), np.int8)
    for i, name in enumerate(ATTRIBUTES):
      low, high = self.bounds[labels, i, 0], self.bounds[labels, i, 1]
      v = np.asarray(values[name])
      out[:, i] = (v > low).astype(np.int8) + (v > high).astype(np.int8)
    return out

  def middle(self, label: int, attribute: str, code: int, values: np.ndarray) -> float:
    """A value well inside tercile `code` of `label`'s training digits: the median of those
    training `values` (of that class) that fall in it."""
    i = ATTRIBUTES.index(attribute)
    low, high = self.bounds[label, i]
    codes = (values > low).astype(int) + (values > high).astype(int)  # As `codes` reads them.
    return float(np.median(values[codes == code]))


def terciles(labels: np.ndarray, attributes: dict, num_classes: int) -> Terciles:
  bounds = np.zeros((num_classes, len(ATTRIBUTES), 2))
  for c in range(num_classes):
    chosen = labels == c
    if not np.any(chosen):
      raise UserError(f'no training digit of class {c}: its terciles are undefined')
    for i, name in enumerate(ATTRIBUTES):
      bounds[c, i] = np.quantile(attributes[name][chosen], [1 / 3, 2 / 3])
  return Terciles(bounds)


class Vocabulary:
  """Words to ids (0 is padding) and back; saved with a run as JSON."""

  FILE = 'vocabulary.json'

  def __init__(self, words: Sequence[str]):
    self.words = [PAD, *[w for w in words if w != PAD]]
    self.index = {w: i for i, w in enumerate(self.words)}

  def __len__(self):
    return len(self.words)

  def encode(self, sentence: str, where: str = '--prompt') -> np.ndarray:
    """(MAX_WORDS,) int32 ids, zero-padded; a one-line UserError for an unknown word."""
    words = words_of(sentence)
    known = set(self.words)
    for word in words:
      _known(word, known, where)
    if len(words) > MAX_WORDS:
      raise UserError(f'{where}: {quote(sentence)} has {len(words)} words; at most {MAX_WORDS}')
    ids = np.zeros(MAX_WORDS, np.int32)
    ids[: len(words)] = [self.index[w] for w in words]
    return ids

  def decode(self, ids) -> str:
    return ' '.join(self.words[int(i)] for i in ids if int(i) != 0)

  def save(self, workdir: str) -> None:
    path = os.path.join(workdir, self.FILE)
    tmp = path + '.tmp'
    with open(tmp, 'w') as f:
      json.dump({'words': self.words, 'max_words': MAX_WORDS}, f, indent=1)
    os.replace(tmp, path)

  @classmethod
  def load(cls, workdir: str) -> 'Vocabulary':
    path = os.path.join(workdir, cls.FILE)
    if not os.path.isfile(path):
      raise UserError(f'no {cls.FILE} in {workdir!r}: was this run trained on text?')
    with open(path) as f:
      return cls(json.load(f)['words'])


def held_out(sentences: Sequence[str]) -> list[Named]:
  """The compositions a config holds out, each a sentence naming a digit and every attribute."""
  out = []
  for sentence in sentences:
    named = parse(sentence, 'config.text.held_out')
    if not named.complete:
      raise UserError(
        f'config.text.held_out: {quote(sentence)} must name a digit, a thickness and a slant'
      )
    out.append(named)
  return out


def is_held_out(labels: np.ndarray, codes: np.ndarray, compositions: Sequence[Named]):
  """(n,) bool: which (label, codes) rows are one of `compositions`."""
  out = np.zeros(len(labels), bool)
  for c in compositions:
    out |= (labels == c.digit) & (codes[:, 0] == c.thickness) & (codes[:, 1] == c.slant)
  return out


def all_compositions(num_classes: int = 10) -> list[Named]:
  """Every (digit, thickness, slant) a complete sentence can name."""
  return [Named(d, t, s) for d in range(num_classes) for t in range(3) for s in range(3)]


def training_captions(
  labels: np.ndarray,
  codes: np.ndarray,
  per_image: int,
  omit: float,
  seed: int,
  vocabulary: Vocabulary,
):
  """`per_image` captions of each digit: (N, K, MAX_WORDS) int32 word ids and (N, K, 2) int8
  named terciles (-1 where the caption leaves the attribute out, with probability `omit` each)."""
  rng = np.random.default_rng(seed)
  n = len(labels)
  ids = np.zeros((n, per_image, MAX_WORDS), np.int32)
  named = np.full((n, per_image, len(ATTRIBUTES)), -1, np.int8)
  for i in range(n):
    for k in range(per_image):
      keep = rng.random(len(ATTRIBUTES)) >= omit
      values = [int(codes[i, a]) if keep[a] else -1 for a in range(len(ATTRIBUTES))]
      ids[i, k] = vocabulary.encode(caption(Named(int(labels[i]), *values), rng), 'caption')
      named[i, k] = values
  return ids, named
