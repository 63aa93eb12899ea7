"""Stacked MNIST: the index-deterministic source, and the mode-coverage metric on built inputs."""

import math

import numpy as np
import pytest

from gan_jax import data
from gan_jax import evaluate
from gan_jax import input_pipeline
from gan_jax import metrics
from gan_jax.errors import UserError


@pytest.fixture(scope='module')
def stacked():
  return data.stacked_mnist('train', 500)


def test_examples_depend_only_on_their_index(stacked):
  again = data.stacked_mnist('train', 500)
  for i in (499, 0, 17, 17, 250):  # Any order, repeated: same example.
    np.testing.assert_array_equal(stacked[i]['image'], again[i]['image'])
    assert stacked[i]['label'] == again[i]['label']
  assert stacked[0]['image'].shape == (28, 28, 3) and stacked.image_shape == (28, 28, 3)
  assert len(stacked) == 500 and stacked.num_classes == 1000
  # A longer data set has the same first examples: example i does not depend on the size.
  np.testing.assert_array_equal(data.stacked_mnist('train', 900)[42]['image'], stacked[42]['image'])
  with pytest.raises(IndexError):
    stacked[500]  # pylint: disable=pointless-statement


def test_label_is_the_three_stacked_digits(stacked):
  digits = data.embedded_mnist('train')
  labels = set()
  for i in range(200):
    example = stacked[i]
    picks = stacked.digit_indices(i)
    for channel, pick in enumerate(picks):
      np.testing.assert_array_equal(example['image'][..., channel], digits.images[pick][..., 0])
    a, b, c = digits.labels[picks]
    assert example['label'] == 100 * a + 10 * b + c
    labels.add(int(example['label']))
  assert len(labels) > 150  # Independent draws: 200 examples hit many of the 1,000 modes.


def test_test_split_stacks_held_out_digits():
  test = data.stacked_mnist('test', 100)
  held_out = data.embedded_mnist('test')
  for i in range(20):
    assert np.all(test.digit_indices(i) < len(held_out))
    np.testing.assert_array_equal(
      test[i]['image'][..., 0], held_out.images[test.digit_indices(i)[0]][..., 0]
    )
  assert not np.array_equal(test[0]['image'], data.stacked_mnist('train', 100)[0]['image'])


def test_config_size_and_bad_size():
  class Config(dict):
    get = dict.get

  source = data.load('embedded:stacked_mnist', 'train', Config(stacked_size=123))
  assert len(source) == 123
  with pytest.raises(UserError, match='stacked_size must be >= 1'):
    data.load('embedded:stacked_mnist', 'train', Config(stacked_size=0))


def test_pipeline_resumes_exactly(stacked):
  ds = input_pipeline.make_dataset(stacked, seed=0, global_batch_size=32)
  it = input_pipeline.iterate(ds)
  for _ in range(4):
    next(it)
  position = it.get_state()
  expected = [next(it) for _ in range(3)]
  resumed = input_pipeline.iterate(ds, position)
  for want in expected:
    got = next(resumed)
    np.testing.assert_array_equal(got['image'], want['image'])
    np.testing.assert_array_equal(got['label'], want['label'])


def test_all_modes_evenly_is_1000_and_zero_kl():
  result = metrics.mode_coverage(np.repeat(np.arange(1000), 26))
  assert result == {'modes': 1000, 'mode_kl': pytest.approx(0.0, abs=1e-12)}


def test_one_mode_is_1_and_log_1000():
  result = metrics.mode_coverage(np.full(26000, 371))
  assert result['modes'] == 1
  assert result['mode_kl'] == pytest.approx(math.log(1000))


def test_half_the_modes_evenly_is_log_2():
  result = metrics.mode_coverage(np.repeat(np.arange(0, 1000, 2), 4))
  assert result['modes'] == 500 and result['mode_kl'] == pytest.approx(math.log(2))
  with pytest.raises(ValueError, match='out of range'):
    metrics.mode_coverage([1000])


def test_stacked_modes_read_channels_in_order():
  # Three images; channel rows in image order, digits (a, b, c) -> 100 a + 10 b + c.
  digits = [[1, 2, 3], [0, 0, 9], [9, 8, 7]]
  probs = np.eye(10)[np.array(digits).reshape(-1)]
  np.testing.assert_array_equal(metrics.stacked_modes(probs), [123, 9, 987])


class _BrightnessJudge:
  """A stand-in MNIST judge: reads a digit from a channel's mean brightness (digit * 20)."""

  def predict(self, images):
    assert images.shape[1:] == (28, 28, 1)
    digit = np.round(images.reshape(len(images), -1).mean(axis=1) / 20).astype(int)
    return np.eye(10)[digit], np.zeros((len(images), 4))


def test_stacked_mode_metrics_split_images_into_their_channels():
  triples = np.array([[1, 2, 3], [4, 5, 6], [1, 2, 3], [9, 0, 0]])
  images = np.broadcast_to((triples * 20).astype(np.uint8)[:, None, None, :], (4, 28, 28, 3)).copy()
  result = evaluate.stacked_mode_metrics(_BrightnessJudge(), images)
  assert result['modes'] == 3
  p = np.array([0.5, 0.25, 0.25])
  assert result['mode_kl'] == pytest.approx(float(np.sum(p * np.log(p * 1000))))
