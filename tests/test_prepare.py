"""python -m gan_jax.prepare and the `arrayrecord:` source it feeds: labels from sub-folders or
dataset.json, folders and zips alike, crop and pad, skipped files reported, shards and their
metadata checked on opening, bad input refused with nothing written, and the input pipeline
giving each process the row-slices of a one-process run's batches."""

import io
import json
import os
import re
import shutil
import subprocess
import sys
import zipfile

import numpy as np
from PIL import Image
import pytest

from gan_jax import data
from gan_jax import input_pipeline
from gan_jax import prepare
from gan_jax.errors import UserError
from tests.conftest import ROOT


def _save(path, array, mode=None):
  os.makedirs(os.path.dirname(path), exist_ok=True)
  Image.fromarray(array, mode).save(path)


def _image(seed, shape):
  return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


@pytest.fixture
def folder(tmp_path):
  """Two classes of mixed sizes and modes, a corrupt file and a 16-bit image."""
  root = tmp_path / 'src'
  _save(str(root / 'cat' / 'a.png'), _image(0, (12, 12, 3)))
  _save(str(root / 'cat' / 'b.jpg'), _image(1, (10, 16, 3)))  # Wide.
  _save(str(root / 'dog' / 'c.png'), _image(2, (9, 9)))  # Greyscale.
  rgba = _image(3, (8, 8, 4))
  _save(str(root / 'dog' / 'd.png'), rgba, 'RGBA')
  Image.fromarray(_image(4, (6, 6)).astype(np.uint16) * 200).save(root / 'dog' / 'deep.png')
  (root / 'dog' / 'broken.png').write_bytes(b'not a png at all')
  (root / 'dog' / 'notes.txt').write_text('ignored: not an image suffix')
  return root


def test_a_folder_becomes_shards_equal_to_what_the_folder_source_reads(folder, tmp_path):
  dest = tmp_path / 'shards'
  meta = prepare.prepare(str(folder), str(dest), size=8, channels=3, per_shard=2, workers=1)
  assert meta['count'] == 4 and meta['shape'] == [8, 8, 3]
  assert meta['class_names'] == ['cat', 'dog'] and meta['num_classes'] == 2
  assert [s['count'] for s in meta['shards']] == [2, 2]
  skipped = dict(meta['skipped'])
  assert sorted(skipped) == ['dog/broken.png', 'dog/deep.png']
  assert skipped['dog/broken.png'].startswith('unreadable')
  assert '16-bit' in skipped['dog/deep.png']
  assert sorted(os.listdir(dest)) == [
    'metadata.json',
    'shard-00000.array_record',
    'shard-00001.array_record',
  ]
  source = data.load(f'arrayrecord:{dest}', 'train')
  assert len(source) == 4 and source.image_shape == (8, 8, 3) and source.num_classes == 2
  kept = ['cat/a.png', 'cat/b.jpg', 'dog/c.png', 'dog/d.png']
  for i, name in enumerate(kept):
    example = source[i]
    want = data.read_image(os.path.join(folder, name), (8, 8, 3))
    np.testing.assert_array_equal(example['image'], want)  # Crop: the folder source's images.
    assert example['label'] == (0 if name.startswith('cat') else 1)
    assert example['image'].dtype == np.uint8 and example['label'].dtype == np.int32


def test_pad_keeps_the_whole_image_on_black(tmp_path):
  src = tmp_path / 'src'
  _save(str(src / 'wide.png'), np.full((4, 8), 255, np.uint8))
  meta = prepare.prepare(str(src), str(tmp_path / 'pad'), size=8, channels=1, fit='pad', workers=1)
  assert meta['fit'] == 'pad' and meta['num_classes'] == 1 and meta['class_names'] == []
  image = data.load(f'arrayrecord:{tmp_path / "pad"}', 'train')[0]['image'][..., 0]
  assert image[0].max() < 64 and image[-1].max() < 64  # Black above and below.
  assert image[4].min() > 192  # The white middle.
  crop = prepare.prepare(str(src), str(tmp_path / 'crop'), size=8, channels=1, workers=1)
  assert crop['fit'] == 'crop'
  assert data.load(f'arrayrecord:{tmp_path / "crop"}', 'train')[0]['image'].min() > 192


def test_dataset_json_labels_and_a_zip_give_the_same_shards(tmp_path):
  src = tmp_path / 'src'
  for i in range(5):
    _save(str(src / 'img' / f'{i}.png'), _image(i, (6, 6, 3)))
  labels = [[f'img/{i}.png', [3, 1, 4, 1, 5][i]] for i in range(4)]  # 4.png is not labelled.
  (src / 'dataset.json').write_text(json.dumps({'labels': labels}))
  meta = prepare.prepare(str(src), str(tmp_path / 'a'), size=6, workers=1)
  assert meta['count'] == 4 and meta['num_classes'] == 5
  assert meta['skipped'] == [['img/4.png', 'no label in dataset.json']]
  source = data.load(f'arrayrecord:{tmp_path / "a"}', 'test')  # Every split is the whole set.
  assert [int(source[i]['label']) for i in range(4)] == [3, 1, 4, 1]
  archive = tmp_path / 'src.zip'
  with zipfile.ZipFile(archive, 'w') as z:
    for path in sorted(src.rglob('*')):
      if path.is_file():
        z.write(path, path.relative_to(src).as_posix())
  zipped = prepare.prepare(str(archive), str(tmp_path / 'b'), size=6, workers=1)
  assert zipped['sha256'] == meta['sha256'] and zipped['count'] == 4
  (src / 'dataset.json').write_text(json.dumps({'labels': None}))
  unlabelled = prepare.prepare(str(src), str(tmp_path / 'c'), size=6, workers=1)
  assert unlabelled['count'] == 5 and unlabelled['num_classes'] == 1


def test_worker_processes_write_the_same_shards(tmp_path):
  src = tmp_path / 'src'
  for i in range(300):
    _save(str(src / str(i % 3) / f'{i:03d}.png'), _image(i, (5, 7)))
  one = prepare.prepare(str(src), str(tmp_path / 'one'), size=4, channels=1, workers=1)
  two = prepare.prepare(str(src), str(tmp_path / 'two'), size=4, channels=1, workers=2)
  assert one['sha256'] == two['sha256'] and one['count'] == two['count'] == 300


def _zip_of(tmp_path, files):
  archive = tmp_path / 'bad.zip'
  with zipfile.ZipFile(archive, 'w') as z:
    for name, content in files.items():
      z.writestr(name, content)
  return archive


@pytest.mark.parametrize(
  'case, message',
  [
    ('missing', 'does not exist'),
    ('empty', 'holds no images'),
    ('all_broken', 'none of the 1 images could be used: unreadable'),
    ('corrupt_zip', 'is not a readable .zip'),
    ('json_missing', "names 1 image(s) that are not there, e.g. 'gone.png'"),
    ('json_bad', 'must be [path, non-negative integer]'),
    ('json_shape', 'is not {"labels"'),
    ('size', '--size must be positive'),
    ('channels', '--channels must be 1 or 3'),
    ('fit', "--fit must be 'crop' or 'pad'"),
  ],
)
def test_bad_sources_are_one_line_errors_and_write_nothing(tmp_path, case, message):
  src = tmp_path / 'src'
  src.mkdir()
  kwargs = dict(size=4)
  if case == 'missing':
    src = tmp_path / 'nowhere'
  elif case == 'all_broken':
    (src / 'x.png').write_bytes(b'\x89PNG broken')
  elif case == 'corrupt_zip':
    src = tmp_path / 'data.zip'
    src.write_bytes(b'PK\x03\x04 this is not a zip')
  elif case.startswith('json'):
    _save(str(src / 'a.png'), _image(0, (4, 4)))
    entry = {'json_missing': [['gone.png', 1]], 'json_bad': [['a.png', -1]]}.get(case)
    (src / 'dataset.json').write_text(json.dumps({'labels': entry} if entry else [1, 2]))
  elif case == 'empty':
    (src / 'readme.txt').write_text('no images here')
  else:
    _save(str(src / 'a.png'), _image(0, (4, 4)))
    bad = {'size': dict(size=0), 'channels': dict(channels=4), 'fit': dict(fit='stretch')}
    kwargs.update(bad[case])
  before = sorted(os.listdir(tmp_path))
  with pytest.raises(UserError, match=re.escape(message)) as e:
    prepare.prepare(str(src), str(tmp_path / 'dest'), workers=1, **kwargs)
  assert '\n' not in str(e.value)
  assert sorted(os.listdir(tmp_path)) == before  # No dest, no partial folder.


def test_an_existing_destination_is_never_touched(folder, tmp_path):
  dest = tmp_path / 'dest'
  dest.mkdir()
  (dest / 'precious.txt').write_text('keep me')
  with pytest.raises(UserError, match='already exists'):
    prepare.prepare(str(folder), str(dest), size=4, workers=1)
  assert os.listdir(dest) == ['precious.txt']


@pytest.fixture
def shards(folder, tmp_path):
  dest = tmp_path / 'shards'
  prepare.prepare(str(folder), str(dest), size=8, per_shard=2, workers=1)
  return dest


def _edit_metadata(dest, **changes):
  path = dest / 'metadata.json'
  meta = json.loads(path.read_text())
  meta.update(changes)
  path.write_text(json.dumps(meta))
  return meta


@pytest.mark.parametrize(
  'damage, message',
  [
    ('count', 'do not add up to 5'),
    ('shard_count', 'holds 2 records, metadata.json says 3'),
    ('shape', 'records are not 52 bytes'),
    ('missing_shard', 'shard shard-00001.array_record is missing'),
    ('truncated_shard', 'shard-00001.array_record is not a readable ArrayRecord file'),
    ('no_metadata', 'has no metadata.json'),
    ('format', 'is not one prepare wrote'),
  ],
)
def test_shards_that_do_not_match_their_metadata_are_refused(shards, damage, message):
  meta = json.loads((shards / 'metadata.json').read_text())
  if damage == 'count':
    _edit_metadata(shards, count=5)
  elif damage == 'shard_count':
    meta['shards'][0]['count'], meta['shards'][1]['count'] = 3, 1
    _edit_metadata(shards, shards=meta['shards'])
  elif damage == 'shape':
    _edit_metadata(shards, shape=[4, 4, 3])
  elif damage == 'missing_shard':
    os.remove(shards / 'shard-00001.array_record')
  elif damage == 'truncated_shard':
    path = shards / 'shard-00001.array_record'
    path.write_bytes(path.read_bytes()[:40])
  elif damage == 'no_metadata':
    os.remove(shards / 'metadata.json')
  else:
    _edit_metadata(shards, format='something else')
  with pytest.raises(UserError, match=message) as e:
    data.load(f'arrayrecord:{shards}', 'train')
  assert '\n' not in str(e.value)


def test_each_process_reads_the_row_slices_of_one_process_batches(tmp_path):
  """The pipeline over shards: process p of 2 holds rows [p B/2, (p+1) B/2) of every global
  batch of a one-process run, bit for bit, and reads only its own examples."""
  src = tmp_path / 'src'
  for i in range(40):
    _save(str(src / str(i % 4) / f'{i:02d}.png'), _image(i, (6, 6)))
  prepare.prepare(str(src), str(tmp_path / 'shards'), size=6, channels=1, per_shard=7, workers=1)
  source = data.load(f'arrayrecord:{tmp_path / "shards"}', 'train')

  class Counting:
    image_shape, num_classes = source.image_shape, source.num_classes

    def __init__(self):
      self.read = set()

    def __len__(self):
      return len(source)

    def __getitem__(self, index):
      self.read.add(int(index))
      return source[index]

  def batches(process_index, process_count, counting=None, count=12):
    ds = input_pipeline.make_dataset(
      counting or source,
      seed=3,
      global_batch_size=8,
      process_index=process_index,
      process_count=process_count,
    )
    return [ds[k] for k in range(count)]  # 12 batches: over two epochs of 5.

  whole = batches(0, 1)
  halves = [batches(p, 2) for p in (0, 1)]
  for k, batch in enumerate(whole):
    for p in (0, 1):
      for key in ('image', 'label'):
        np.testing.assert_array_equal(halves[p][k][key], batch[key][4 * p : 4 * (p + 1)])
  # Over one epoch the two processes read disjoint halves of the set.
  readers = [Counting(), Counting()]
  for p in (0, 1):
    batches(p, 2, readers[p], count=5)
  assert len(readers[0].read) == len(readers[1].read) == 20
  assert readers[0].read | readers[1].read == set(range(40))
  # The checkpointable iterator yields the same batches, and resumes from a saved position.
  ds = input_pipeline.make_dataset(source, seed=3, global_batch_size=8)
  it = input_pipeline.iterate(ds)
  for batch in whole[:6]:
    np.testing.assert_array_equal(next(it)['image'], batch['image'])
  resumed = input_pipeline.iterate(ds, it.get_state())
  for batch in whole[6:9]:
    np.testing.assert_array_equal(next(resumed)['image'], batch['image'])


def test_cli_reports_and_exits_2_on_bad_input(folder, tmp_path):
  def run(*args):
    return subprocess.run(
      [sys.executable, '-m', 'gan_jax.prepare', *args],
      capture_output=True,
      text=True,
      cwd=ROOT,
      timeout=120,
    )

  result = run(str(folder), str(tmp_path / 'out'), '--size=8', '--workers=1')
  assert result.returncode == 0, result.stderr
  assert 'skipped dog/broken.png: unreadable' in result.stdout
  assert 'wrote 4 images of shape (8, 8, 3), 2 classes, in 1 shard(s)' in result.stdout
  result = run(str(folder), str(tmp_path / 'out'), '--size=8')
  assert result.returncode == 2
  assert result.stderr.strip().startswith('error: ') and 'already exists' in result.stderr
  assert len(result.stderr.strip().splitlines()) == 1
  shutil.rmtree(tmp_path / 'out')
  result = run(str(folder))  # No destination, no --size: argparse's error, in one line too.
  assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1
  assert 'required: dest, --size' in result.stderr


def test_zip_members_that_leave_the_archive_are_skipped_with_a_reason(tmp_path):
  """Zip slip: names that are absolute or climb out through '..' are never read, and '..' is
  never a class."""
  png = io.BytesIO()
  Image.fromarray(_image(0, (8, 8, 3))).save(png, format='PNG')
  files = {
    'cat/a.png': png.getvalue(),
    'dog/b.png': png.getvalue(),
    '../../x.png': png.getvalue(),
    '/abs.png': png.getvalue(),
    'cat/../../y.png': png.getvalue(),
  }
  archive = tmp_path / 'slip.zip'
  with zipfile.ZipFile(archive, 'w') as z:
    for name, content in files.items():
      z.writestr(zipfile.ZipInfo(name), content)
  meta = prepare.prepare(str(archive), str(tmp_path / 'out'), size=8, show_progress=False)
  assert meta['class_names'] == ['cat', 'dog'] and meta['count'] == 2
  skipped = {name: why for name, why in meta['skipped']}
  assert set(skipped) == {'../../x.png', '/abs.png', 'cat/../../y.png'}
  assert all(why == prepare.OUTSIDE for why in skipped.values())
  assert prepare.climbs_out('C:/x.png') and not prepare.climbs_out('a/b..c.png')
