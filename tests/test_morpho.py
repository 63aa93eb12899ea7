"""Morpho-MNIST's morphometrics (gan_jax/morpho.py) on drawn strokes and on a real digit."""

import numpy as np
from PIL import Image
from PIL import ImageDraw
import pytest

from gan_jax import data
from gan_jax import morpho

# Morpho-MNIST's released measurements of MNIST training digit 0 (its tests' reference values).
TRAIN_DIGIT_0 = dict(
  area=107.3125,
  length=50.2665,
  thickness=2.4607,
  slant=0.2311,
  width=14.5396,
  height=19.8491,
)
# The embedded set holds MNIST's training digit 0 at this index (a 5).
EMBEDDED_INDEX_OF_TRAIN_DIGIT_0 = 2500


def stroke(width: float, shear: float = 0.0, top: int = 5, bottom: int = 23) -> np.ndarray:
  """A 28x28 uint8 bar `width` px wide (horizontally) from row `top` to `bottom`, drawn
  anti-aliased (8x supersampled); `shear` > 0 moves its top right by `shear` px per px of
  height, i.e. leans it right."""
  s = 8
  canvas = Image.new('L', (28 * s, 28 * s), 0)
  mid = (top + bottom) / 2
  centre = 14 + (width % 2) / 2
  x = lambda y: centre + shear * (mid - y)
  corners = [
    (x(top) - width / 2, top),
    (x(top) + width / 2, top),
    (x(bottom) + width / 2, bottom),
    (x(bottom) - width / 2, bottom),
  ]
  ImageDraw.Draw(canvas).polygon([(cx * s, cy * s) for cx, cy in corners], fill=255)
  return np.asarray(canvas.resize((28, 28), Image.Resampling.BOX), np.uint8)


def measure_one(image) -> dict:
  return {k: float(v[0]) for k, v in morpho.measure(image[None]).items()}


@pytest.mark.parametrize('width', [2.0, 3.0, 5.0])
def test_upright_bar_thickness_and_size(width):
  m = measure_one(stroke(width))
  # The mean runs over the axis' forks into the corners too, which thin out: a little less.
  assert m['thickness'] == pytest.approx(width, rel=0.08)
  assert m['slant'] == pytest.approx(0.0, abs=0.01)
  assert m['height'] == pytest.approx(18.0, abs=0.5)
  # Grey-level mass, blurred by the upsampling: a little wider than the bar.
  assert width <= m['width'] <= width + 2.0
  assert m['area'] == pytest.approx(width * 18.0, rel=0.1)
  # A rectangle's medial axis: its centre line (height - width) and at most four diagonal
  # branches of width / sqrt(2) into the corners.
  assert 18.0 - width - 1.0 <= m['length'] <= 18.0 - width + 2 * np.sqrt(2) * width


@pytest.mark.parametrize('shear', [-0.4, -0.2, 0.2, 0.4])
def test_sheared_bar_slant_sign_and_size(shear):
  m = measure_one(stroke(3.0, shear))
  # Positive = the top lies right of the bottom ("leaning right").
  assert m['slant'] == pytest.approx(np.arctan(shear), abs=0.04)
  # Perpendicular to its axis the bar is narrower than its horizontal width.
  assert m['thickness'] == pytest.approx(3.0 * np.cos(np.arctan(shear)), abs=0.35)
  assert 3.0 <= m['width'] <= 5.0  # Measured along the slanted rows, as for an upright bar.
  assert m['height'] == pytest.approx(18.0, abs=0.5)


def test_thicker_strokes_measure_thicker_and_heavier():
  thin, thick = measure_one(stroke(2.0, 0.3)), measure_one(stroke(4.5, 0.3))
  assert thick['thickness'] > thin['thickness'] + 2.0
  assert thick['area'] > 1.8 * thin['area']
  assert thick['slant'] == pytest.approx(thin['slant'], abs=0.05)


def test_matches_morpho_mnist_on_training_digit_0():
  images, labels = data._embedded_mnist()  # pylint: disable=protected-access
  image = images[EMBEDDED_INDEX_OF_TRAIN_DIGIT_0]
  assert labels[EMBEDDED_INDEX_OF_TRAIN_DIGIT_0] == 5
  m = measure_one(image[..., 0])
  for name, expected in TRAIN_DIGIT_0.items():
    # The reference's own tests allow for scikit-image versions; the medial axis's random
    # tie-breaking alone moves this digit's length by +-0.5 px (47.6..48.5, reference 50.3).
    rel = 0.055 if name == 'length' else 0.05
    assert m[name] == pytest.approx(expected, rel=rel), name


def test_fast_medial_axis_equals_scikit_image():
  from skimage import morphology

  images, _ = data._embedded_mnist()  # pylint: disable=protected-access
  for hires in morpho.upsample(images[::250, ..., 0]):
    binary = hires >= hires.min() + (int(hires.max()) - int(hires.min())) * morpho.THRESHOLD
    want_skeleton, want_distance = morphology.medial_axis(binary, return_distance=True, rng=42)
    skeleton, distance = morpho._skeleton_and_distance(binary)  # pylint: disable=protected-access
    np.testing.assert_array_equal(skeleton, want_skeleton)
    np.testing.assert_array_equal(distance, want_distance)


def test_batch_threads_and_chunks_agree_and_blank_is_nan():
  images = np.stack([stroke(2.0), stroke(3.0, 0.3), np.zeros((28, 28), np.uint8), stroke(4.0)])
  one = morpho.measure(images, workers=1, chunk=4)
  split = morpho.measure(images[..., None], workers=2, chunk=1)
  for name in morpho.ATTRIBUTES:
    np.testing.assert_array_equal(one[name], split[name])
    assert np.isnan(one[name][2]) or name in ('area', 'length'), name
  assert one['area'][2] == 0.0


def test_rejects_colour_and_float_images():
  with pytest.raises(ValueError, match='greyscale'):
    morpho.measure(np.zeros((2, 28, 28, 3), np.uint8))
  with pytest.raises(ValueError, match='uint8'):
    morpho.measure(np.zeros((2, 28, 28), np.float32))


def test_cache_is_keyed_by_content(tmp_path, monkeypatch):
  monkeypatch.setenv('GAN_JAX_CACHE', str(tmp_path))
  a = np.stack([stroke(2.0), stroke(3.0)])
  b = np.stack([stroke(2.0), stroke(4.0)])
  first = morpho.measure_cached(a)
  assert len(list((tmp_path / 'morpho').glob('*.npz'))) == 1
  np.testing.assert_array_equal(morpho.measure_cached(a)['thickness'], first['thickness'])
  other = morpho.measure_cached(b)
  assert len(list((tmp_path / 'morpho').glob('*.npz'))) == 2
  assert other['thickness'][1] > first['thickness'][1]
