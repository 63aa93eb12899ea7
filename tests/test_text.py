"""Digits drawn from a sentence: the caption grammar and its synonyms, the vocabulary, the text
encoder, the matching-aware loss, held-out compositions, and --prompt / --prompts_file end to
end on configs/mnist_text.py:smoke, with every bad input."""

import functools
import itertools
import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gan_jax import captions
from gan_jax import conditions
from gan_jax import config_checks
from gan_jax import control
from gan_jax import data
from gan_jax import gan as gan_lib
from gan_jax import losses
from gan_jax import main
from gan_jax.conditioning import text as text_kind
from gan_jax.errors import UserError
from gan_jax.models import text as text_models
from tests.conftest import generated
from tests.conftest import load_config
from tests.test_launch import launch

DIGIT_FORMS = [(d, w) for d, w in enumerate(captions.DIGIT_WORDS)] + [
  (d, str(d)) for d in range(10)
]


def test_every_sentence_of_the_grammar_parses():
  """[a|an] [thin|thick] DIGIT [leaning left|upright|leaning right], every part but the digit
  optional: 720 sentences."""
  articles, thick = ['', 'a', 'an'], [('', -1), ('thin', 0), ('thick', 2)]
  slant = [('', -1), ('leaning left', 0), ('upright', 1), ('leaning right', 2)]
  count = 0
  for article, (t_word, t), (digit, d_word), (s_word, s) in itertools.product(
    articles, thick, DIGIT_FORMS, slant
  ):
    sentence = ' '.join(w for w in (article, t_word, d_word, s_word) if w)
    assert captions.parse(sentence) == captions.Named(digit, t, s), sentence
    count += 1
  assert count == 720


@pytest.mark.parametrize(
  'sentence, named',
  [
    ('a slim 4', (4, 0, -1)),
    ('a light four', (4, 0, -1)),
    ('a medium four', (4, 1, -1)),
    ('a regular four standing straight', (4, 1, 1)),
    ('A BOLD Nine, tilted left.', (9, 2, 0)),
    ('the number 3 leaning to the right and heavy', (3, 2, 2)),
    ('the digit two slanted left with thin strokes', (2, 0, 0)),
    ('an eight written in thick strokes', (8, 2, -1)),
    ('five, thin, straight', (5, 0, 1)),
    ('a thin slim seven', (7, 0, -1)),  # Two synonyms of one value are one value.
  ],
)
def test_synonyms_map_as_documented(sentence, named):
  assert captions.parse(sentence) == captions.Named(*named)


def test_training_captions_say_what_they_name():
  rng = np.random.default_rng(0)
  seen_templates = set()
  for _ in range(500):
    named = captions.Named(
      int(rng.integers(10)), int(rng.integers(-1, 3)), int(rng.integers(-1, 3))
    )
    sentence = captions.caption(named, rng)
    assert captions.parse(sentence) == named, sentence
    seen_templates.add(sentence.split()[0])
  assert {'a', 'an', 'the'} <= seen_templates  # Several templates.
  assert captions.canonical(captions.Named(8, 2, 2)) == 'a thick eight leaning right'
  assert captions.canonical(captions.Named(8)) == 'an eight'
  assert captions.canonical(captions.Named(3, 1, 1)) == 'a regular three upright'


@pytest.mark.parametrize(
  'sentence, message',
  [
    ('', 'the sentence is empty'),
    ('   ', 'the sentence is empty'),
    ('a purple seven', "'purple' is not in the vocabulary: 0 1 2"),
    ('a thick one leaning right!?@', "'@' is not in the vocabulary"),
    ('a thick digit', 'names no digit'),
    ('a seven or 8', "'or' is not in the vocabulary"),
    ('a seven and 8', 'names 2 digits'),
    ('a 17', 'names 2 digits'),
    ('a thin thick seven', 'two values of thickness'),
    ('a seven leaning left upright', 'two values of slant'),
    ('a thick seven ' * 3000, r"'a thick seven a thick .*\(42,000 characters\) has 9000 words"),
  ],
)
def test_bad_sentences_are_one_line_errors(sentence, message):
  with pytest.raises(UserError, match=message) as e:
    captions.parse(sentence)
  assert '\n' not in str(e.value) and len(str(e.value)) < 300


def test_vocabulary_round_trip_and_saved_with_the_run(tmp_path):
  vocabulary = captions.Vocabulary(captions.vocabulary_words())
  assert vocabulary.words[0] == captions.PAD
  ids = vocabulary.encode('A thick Seven, leaning right.')
  assert ids.shape == (captions.MAX_WORDS,) and ids.dtype == np.int32
  assert vocabulary.decode(ids) == 'a thick seven leaning right'
  assert np.all(ids[5:] == 0)
  vocabulary.save(str(tmp_path))
  again = captions.Vocabulary.load(str(tmp_path))
  assert again.words == vocabulary.words
  with pytest.raises(UserError, match="'purple' is not in the vocabulary"):
    vocabulary.encode('a purple seven')
  with pytest.raises(UserError, match='at most 12'):
    vocabulary.encode('the the the the the the the the the the the the seven')
  with pytest.raises(UserError, match='no vocabulary.json'):
    captions.Vocabulary.load(str(tmp_path / 'none'))


def test_terciles_are_per_class_and_middles_lie_inside():
  labels = np.repeat([0, 1], 30)
  values = {
    'thickness': np.concatenate([np.arange(30.0), 100 + np.arange(30.0)]),
    'slant': np.tile(np.linspace(-1, 1, 30), 2),
  }
  t = captions.terciles(labels, values, 2)
  codes = t.codes(labels, values)
  assert list(np.bincount(codes[:30, 0])) == [10, 10, 10]
  assert list(np.bincount(codes[30:, 0])) == [10, 10, 10]  # Thick for a 1 is not thick for a 0.
  for code in range(3):
    middle = t.middle(1, 'thickness', code, values['thickness'][30:])
    assert t.codes(np.array([1]), {'thickness': [middle], 'slant': [0.0]})[0, 0] == code


def test_encoder_shapes_and_padding():
  encoder = text_models.TextEncoder(vocabulary_size=50, max_words=12, width=16, features=8)
  ids = jnp.array([[3, 4, 5] + [0] * 9, [7, 0, 0] + [0] * 9])
  params = encoder.init(jax.random.key(0), ids)
  out = encoder.apply(params, ids)
  assert out.shape == (2, 8) and out.dtype == jnp.float32
  # Padding is not read: what follows the last word does not change the encoding ...
  np.testing.assert_allclose(encoder.apply(params, ids[:, :6]), out, atol=1e-5)
  # ... and the words do.
  other = encoder.apply(params, ids.at[0, 1].set(9))
  assert float(jnp.abs(other[0] - out[0]).max()) > 1e-4
  np.testing.assert_allclose(other[1], out[1], atol=1e-6)


def test_mismatch_loss_on_hand_made_values():
  real = jnp.array([2.0, 0.0, 1.0, -1.0])
  mismatched = jnp.array([1.0, -3.0, 0.5, 4.0])
  contradicts = jnp.array([True, True, False, False])
  ns = losses.mismatch(losses.get('non_saturating'), real, mismatched, contradicts)
  np.testing.assert_allclose(ns, (np.log1p(np.e) + np.log1p(np.exp(-3.0))) / 2, rtol=1e-6)
  hinge = losses.mismatch(losses.get('hinge'), real, mismatched, contradicts)
  np.testing.assert_allclose(hinge, (2.0 + 0.0) / 2, rtol=1e-6)
  rp = losses.mismatch(losses.get('rpgan'), real, mismatched, contradicts)
  np.testing.assert_allclose(rp, (np.log1p(np.exp(-1.0)) + np.log1p(np.exp(-3.0))) / 2, rtol=1e-6)
  none = losses.mismatch(losses.get('hinge'), real, mismatched, jnp.zeros(4, bool))
  assert float(none) == 0.0


def test_auxiliary_classifier_loss_skips_what_a_sentence_leaves_open():
  logits = jnp.zeros((2, 16)).at[0, 3].set(5.0).at[1, 10].set(5.0).at[0, 13].set(5.0)
  targets = jnp.array([[3, 0, 0], [7, -1, -1]])
  got = text_kind.aux_loss(logits, targets, 10)
  ce = lambda row, target, lo, hi: float(-jax.nn.log_softmax(logits[row, lo:hi])[target])
  digit = (ce(0, 3, 0, 10) + ce(1, 7, 0, 10)) / 2
  want = digit + ce(0, 0, 10, 13) + ce(0, 0, 13, 16)  # Row 1 names no tercile.
  np.testing.assert_allclose(got, want, rtol=1e-5)


def test_mismatched_sentences_contradict_their_image():
  """`sentences` pairs each real digit with another's sentence and marks the contradicting
  pairs: another digit, or a named tercile this digit is not in."""
  b = 64
  rng = np.random.default_rng(0)
  labels = rng.integers(0, 3, b).astype(np.int32)
  codes = rng.integers(0, 3, (b, 2)).astype(np.int8)
  named = np.where(rng.random((b, 4, 2)) < 0.5, -1, codes[:, None, :]).astype(np.int8)
  batch = {
    'label': labels,
    'codes': codes,
    'named': named,
    'text': np.arange(b * 4 * 12, dtype=np.int32).reshape(b, 4, 12),
  }
  real, mismatched = text_kind.sentences(batch, jax.random.key(0))
  text, other = np.asarray(real['ids']), np.asarray(mismatched.value['ids'])
  row_of = {int(t[0]) // 48: i for i, t in enumerate(text)}
  assert sorted(row_of) == list(range(b))  # One of each digit's own captions.
  for i in range(b):
    j = int(other[i, 0]) // 48  # The digit whose sentence this is.
    k = (int(other[i, 0]) % 48) // 12  # Its caption.
    expect = labels[j] != labels[i] or any(
      named[j, k, a] >= 0 and named[j, k, a] != codes[i, a] for a in range(2)
    )
    assert bool(mismatched.contradicts[i]) == expect
  assert 0 < int(np.sum(mismatched.contradicts)) < b


def test_held_out_compositions_leave_training():
  source = data.embedded_mnist('train')
  images, labels = source.images[::5], source.labels[::5]
  config = load_config('mnist_text')
  table = conditions.build_table(('text',), images, labels, 10, text_config=config.text)
  held = captions.held_out(config.text.held_out)
  kept = table.text.kept
  assert 0 < len(images) - len(kept) < len(images) // 10
  assert not np.any(captions.is_held_out(table.labels, table.text.codes, held))
  assert table.text.ids.shape == (len(kept), config.text.captions_per_image, captions.MAX_WORDS)
  # Every caption names the digit it is of and only terciles the digit is in.
  vocabulary = table.text.vocabulary
  for row in range(0, len(kept), 37):
    for k in range(config.text.captions_per_image):
      named = captions.parse(vocabulary.decode(table.text.ids[row, k]))
      assert named.digit == table.labels[row]
      for a in range(2):
        assert named.codes[a] in (-1, table.text.codes[row, a])
        assert named.codes[a] == table.text.named[row, k, a]


@pytest.mark.parametrize(
  'change, message',
  [
    (lambda c: c.model.update(condition=('text', 'slant')), 'condition of its own'),
    (lambda c: c.model.update(vector_conditioning='regression'), "by 'projection'"),
    (lambda c: c.text.update(held_out=('a thick seven',)), 'must name a digit, a thickness'),
    (lambda c: c.text.update(held_out=('a thick blue seven',)), "'blue' is not in"),
    (lambda c: c.text.update(encoder_heads=5), 'encoder_heads'),
    (lambda c: c.loss.update(mismatch_weight=-1.0), 'mismatch_weight'),
    (lambda c: delattr(c, 'text'), 'no text section'),
  ],
)
def test_bad_text_configs_are_one_line_errors(change, message):
  config = load_config('mnist_text')
  change(config)
  with pytest.raises(UserError, match=message) as e:
    config_checks.check(config)
  assert '\n' not in str(e.value)


def test_sentence_obedience_counts_digit_and_terciles():
  compositions = [captions.Named(1, 0, 2), captions.Named(7, 2, 2)]
  held = np.array([False, True])
  predicted = np.array([1, 1, 7, 7])
  codes = np.array([[0, 2], [0, 1], [2, 2], [2, 2]])
  out = control.obedience(compositions, held, 2, predicted, codes)
  assert out['obedience_seen'] == 0.5 and out['obedience_held_out'] == 1.0
  assert out['slant_accuracy_seen'] == 0.5 and out['digit_accuracy'] == 1.0


@pytest.fixture(scope='module')
def text_run(tmp_path_factory):
  """A smoke classifier (the judge), and the smoke text model judged by it."""
  judge = str(tmp_path_factory.mktemp('judge'))
  main.run(load_config('mnist_classifier'), judge)
  workdir = str(tmp_path_factory.mktemp('text'))
  config = load_config('mnist_text')
  config.eval.classifier_workdir = judge
  main.run(config, workdir)
  return config, workdir


def test_smoke_text_run_trains_judges_and_keeps_its_vocabulary(text_run):
  config, workdir = text_run
  with open(os.path.join(workdir, captions.Vocabulary.FILE)) as f:
    assert json.load(f)['words'] == captions.Vocabulary(captions.vocabulary_words()).words
  assert os.path.exists(os.path.join(workdir, 'sentences', 'step_000006.png'))
  with open(os.path.join(workdir, 'metrics.jsonl')) as f:
    rows = [json.loads(line) for line in f]
  assert any('d_mismatch' in r for r in rows)
  judged = [r for r in rows if 'text_obedience_seen' in r]
  assert [r['step'] for r in judged] == [3, 6]
  for key in ('text_obedience_held_out', 'text_digit_accuracy', 'text_ceiling_seen', 'fid'):
    assert np.isfinite(judged[-1][key]), key
  assert judged[-1]['text_num_samples'] == 90
  del config


def test_prompt_and_prompts_file(text_run, tmp_path):
  config, workdir = text_run
  one_request = ('', '', '', 'a thick seven leaning right', '')
  out_dir = one = main.run(config, workdir, 'sample', num_samples=3, request=one_request)
  with np.load(os.path.join(out_dir, 'samples.npz'), allow_pickle=False) as f:
    assert f['images'].shape == (3, 28, 28, 1)
    assert f['prompt'].dtype.kind == 'U'
    assert list(f['prompt']) == ['a thick seven leaning right'] * 3
    assert list(f['labels']) == [7] * 3
  assert '_prompt_' in os.path.basename(out_dir)
  path = tmp_path / 'prompts.txt'
  path.write_text('# held out\na thick seven leaning right\n\nan 8  # any thickness and slant\n')
  out_dir = main.run(config, workdir, 'sample', num_samples=4, request=('', '', '', '', str(path)))
  with np.load(os.path.join(out_dir, 'samples.npz'), allow_pickle=False) as f:
    assert list(f['prompt']) == ['a thick seven leaning right'] * 4 + ['an 8'] * 4
    assert list(f['request_index']) == [0] * 4 + [1] * 4
  from PIL import Image

  grid = Image.open(os.path.join(out_dir, 'grid.png'))
  assert grid.size[0] > grid.size[1]  # 2 rows of 4.
  # The same sentence and seed, the same images.
  first = os.path.join(workdir, 'generated', os.path.basename(one))
  os.rename(first, first + '.first')
  again = main.run(config, workdir, 'sample', num_samples=3, request=one_request)
  with (
    np.load(os.path.join(again, 'samples.npz')) as f,
    np.load(os.path.join(first + '.first', 'samples.npz')) as g,
  ):
    np.testing.assert_array_equal(f['images'], g['images'])


@pytest.mark.parametrize(
  'request_, message',
  [
    (('', '', '', 'a purple seven', ''), "'purple' is not in the vocabulary"),
    (('', '', '', '   ', ''), 'the sentence is empty'),
    (('', '', '', 'a thick one', 'FILE'), 'give one of'),
    (('', '', '', 'a thick leaning right', ''), 'names no digit'),
    (('', '', '', 'a one and a seven', ''), 'names 2 digits'),
    (('', '', '', 'a thin thick seven', ''), 'two values of thickness'),
    (('', '', '', '', 'FILE'), 'line 3'),
    (('', '', '', '', 'missing.txt'), 'no file'),
    (('digit=7', '', '', 'a seven', ''), 'give one of'),
    (('digit=7', '', '', '', ''), 'not conditioned on'),
  ],
)
def test_bad_prompts_write_nothing(text_run, tmp_path, request_, message):
  config, workdir = text_run
  bad = tmp_path / 'bad.txt'
  bad.write_text('a seven\n# fine\na seven eight\n')
  request_ = tuple(str(bad) if r == 'FILE' else r for r in request_)
  before = generated(workdir)
  with pytest.raises(UserError, match=message) as e:
    main.run(config, workdir, 'sample', num_samples=2, request=request_)
  assert '\n' not in str(e.value)
  assert generated(workdir) == before


def test_prompt_on_a_model_without_text_is_refused_before_anything(tmp_path):
  for name in ('mnist_cgan', 'mnist_attributes', 'mnist_dcgan'):
    with pytest.raises(UserError, match='not text-conditioned'):
      main.run(
        load_config(name),
        str(tmp_path),
        'sample',
        num_samples=2,
        request=('', '', '', 'a seven', ''),
      )
  assert not os.listdir(tmp_path)
  with pytest.raises(UserError, match='for --mode=sample'):
    main.run(load_config('mnist_text'), str(tmp_path), 'eval', request=('', '', '', 'a seven', ''))


def test_launch_py_bad_prompt_is_one_line_and_exit_2(text_run):
  _, workdir = text_run
  before = generated(workdir)
  result = launch(
    '--config=configs/mnist_text.py:smoke',
    f'--workdir={workdir}',
    '--mode=sample',
    '--prompt=a thin thick seven',
  )
  assert result.returncode == 2
  assert result.stderr.strip() == (
    "error: --prompt: 'a thin thick seven' names two values of thickness (thin, thick)"
  )
  assert generated(workdir) == before
  # An empty prompt is refused, not read as no prompt (which samples training captions).
  result = launch(
    '--config=configs/mnist_text.py:smoke', f'--workdir={workdir}', '--mode=sample', '--prompt='
  )
  assert result.returncode == 2
  assert (
    result.stderr.strip() == "error: --prompt is empty: give a sentence such as 'a thick seven'"
  )
  assert generated(workdir) == before


def test_text_step_trains_both_encoders():
  config = load_config('mnist_text')
  # Latent 16 > the smoke encoder's 8 features, from which the code noise is drawn.
  config.model.latent_dim, config.model.g_width, config.model.d_width = 16, 4, 4
  from gan_jax import gan_builder

  vocabulary = captions.Vocabulary(captions.vocabulary_words())
  gan = gan_builder.build(config, (28, 28, 1), 10, sizes={'text': len(vocabulary)})
  state = gan.init(jax.random.key(0))
  assert 'encoder' in state.g_params and 'encoder' in state.d_params
  rng = np.random.default_rng(0)
  labels = np.arange(8, dtype=np.int32)
  codes = rng.integers(0, 3, (8, 2)).astype(np.int8)
  ids, named = captions.training_captions(labels, codes, 2, 0.3, 0, vocabulary)
  batch = {
    'image': np.zeros((8, 28, 28, 1), np.uint8),
    'label': labels,
    'codes': codes,
    'text': ids,
    'named': named,
  }
  step = jax.jit(functools.partial(gan_lib.train_step, gan))
  new, metrics = step(state, batch, jax.random.key(1))
  for key in ('d_mismatch', 'd_text_aux', 'g_text_aux'):
    assert np.isfinite(float(metrics[key])), key
  assert 'class_dense' in str(jax.tree_util.tree_structure(state.d_params))
  for tree in ('g_params', 'd_params'):
    before, after = getattr(state, tree)['encoder'], getattr(new, tree)['encoder']
    moved = jax.tree.map(lambda a, b: float(jnp.abs(a - b).max()), before, after)
    assert max(jax.tree.leaves(moved)) > 0, tree


def _text_batch(vocabulary, n=8):
  rng = np.random.default_rng(0)
  labels = np.arange(n, dtype=np.int32) % 10
  codes = rng.integers(0, 3, (n, 2)).astype(np.int8)
  ids, named = captions.training_captions(labels, codes, 2, 0.3, 0, vocabulary)
  return {
    'image': np.zeros((n, 28, 28, 1), np.uint8),
    'label': labels,
    'codes': codes,
    'text': ids,
    'named': named,
  }


def test_frozen_generator_encoder_stays_and_code_noise_comes_from_z():
  from gan_jax import gan_builder

  config = load_config('mnist_text')
  config.model.latent_dim, config.model.g_width, config.model.d_width = 16, 4, 4
  config.text.freeze_generator_encoder, config.text.code_noise = True, 1.0
  vocabulary = captions.Vocabulary(captions.vocabulary_words())
  gan = gan_builder.build(config, (28, 28, 1), 10, sizes={'text': len(vocabulary)})
  state = gan.init(jax.random.key(0))
  new, _ = jax.jit(functools.partial(gan_lib.train_step, gan))(
    state, _text_batch(vocabulary), jax.random.key(1)
  )
  same = jax.tree.map(np.array_equal, state.g_params['encoder'], new.g_params['encoder'])
  assert all(jax.tree.leaves(same))  # G's encoder frozen ...
  moved = jax.tree.map(np.array_equal, state.d_params['encoder'], new.d_params['encoder'])
  assert not all(jax.tree.leaves(moved))  # ... D's trains.
  # The noise is the last encoder_features (8) dims of z: they change the image, and with
  # code_noise the images of one sentence differ only through z.
  text = jnp.asarray(_text_batch(vocabulary, 2)['text'][:1, 0]).repeat(2, 0)
  z = jax.random.normal(jax.random.key(2), (1, 16)).repeat(2, 0)
  z = z.at[1, -8:].add(1.0)
  images = gan.generator.apply(
    {'params': state.g_params, **state.g_stats}, z, None, train=False, text=text
  )
  assert float(jnp.abs(images[0] - images[1]).max()) > 0
  config.text.code_noise, config.model.latent_dim = 1.0, 8
  with pytest.raises(UserError, match='latent_dim 8 must exceed encoder_features 8'):
    config_checks.check(config)


def test_reader_loss_on_hand_made_values():
  # Digit 2 named, thickness "any" (class 3), slant 0; logits sure of exactly that -> ~0 loss.
  said = jnp.array([[2, -1, 0]])
  logits = jnp.full((1, 10 + 8), -20.0)
  logits = logits.at[0, 2].set(20.0).at[0, 10 + 3].set(20.0).at[0, 14 + 0].set(20.0)
  assert float(text_models.reader_loss(logits, said, 10)) < 1e-6
  # Uniform logits: ln 10 + 2 ln 4.
  uniform = text_models.reader_loss(jnp.zeros((1, 18)), said, 10)
  assert float(uniform) == pytest.approx(np.log(10) + 2 * np.log(4), rel=1e-5)


def test_pretrained_encoder_reads_what_captions_name():
  vocabulary = captions.Vocabulary(captions.vocabulary_words())
  labels = np.arange(200, dtype=np.int32) % 10
  codes = np.random.default_rng(0).integers(0, 3, (200, 2)).astype(np.int8)
  ids, named = captions.training_captions(labels, codes, 4, 0.3, 0, vocabulary)
  ids = jnp.asarray(ids.reshape(-1, ids.shape[-1]))
  said = jnp.asarray(
    np.concatenate([np.repeat(labels, 4)[:, None], named.reshape(-1, 2)], -1).astype(np.int32)
  )
  encoder = text_models.TextEncoder(len(vocabulary), captions.MAX_WORDS, 16, 1, 2, 8)
  params = jax.jit(
    functools.partial(text_models.pretrain, encoder, num_classes=10, steps=300, batch_size=64)
  )(ids, said, rng=jax.random.key(0))
  # Sentences that name the same things come to be encoded alike, whatever their wording: the
  # spread within a meaning, relative to the spread over all, falls well below the untrained
  # encoder's.
  keys = [tuple(s) for s in np.asarray(said)]

  def spread(p):
    out = np.asarray(encoder.apply({'params': p}, ids))
    groups = {}
    for k, c in zip(keys, out):
      groups.setdefault(k, []).append(c)
    within = np.mean([np.std(np.stack(v), 0).mean() for v in groups.values() if len(v) > 3])
    return within / out.std(0).mean()

  untrained = encoder.init(jax.random.key(0), ids[:2])['params']
  assert spread(params) < 0.6 * spread(untrained)
