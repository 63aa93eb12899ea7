"""The input pipeline: deterministic per seed, resumable, sharded across processes."""

import numpy as np
import pytest

from gan_jax import data
from gan_jax import input_pipeline
from gan_jax.errors import UserError


@pytest.fixture(scope='module')
def source():
  return data.load('embedded:mnist', 'train')


def take(it, n):
  return [next(it) for _ in range(n)]


def test_same_seed_same_batches_other_seed_others(source):
  a = take(
    input_pipeline.iterate(input_pipeline.make_dataset(source, seed=1, global_batch_size=32)), 3
  )
  b = take(
    input_pipeline.iterate(input_pipeline.make_dataset(source, seed=1, global_batch_size=32)), 3
  )
  c = take(
    input_pipeline.iterate(input_pipeline.make_dataset(source, seed=2, global_batch_size=32)), 3
  )
  for x, y in zip(a, b):
    np.testing.assert_array_equal(x['image'], y['image'])
    np.testing.assert_array_equal(x['label'], y['label'])
  assert not np.array_equal(a[0]['label'], c[0]['label'])


def test_resume_from_saved_position_sees_the_same_batches(source):
  ds = input_pipeline.make_dataset(source, seed=0, global_batch_size=64)
  it = input_pipeline.iterate(ds)
  take(it, 5)
  position = it.get_state()
  expected = take(it, 3)
  resumed = take(input_pipeline.iterate(ds, position), 3)
  for x, y in zip(expected, resumed):
    np.testing.assert_array_equal(x['image'], y['image'])


def test_epochs_cover_the_data_once_each_in_new_orders(source):
  ds = input_pipeline.make_dataset(source, seed=0, global_batch_size=100)
  per_epoch = len(source) // 100
  first = np.concatenate([ds[i]['label'] for i in range(per_epoch)])
  second = np.concatenate([ds[i]['label'] for i in range(per_epoch, 2 * per_epoch)])
  np.testing.assert_array_equal(np.bincount(first), np.bincount(source.labels))
  assert not np.array_equal(first, second)


def test_process_shards_make_up_the_global_batch(source):
  whole = input_pipeline.make_dataset(source, seed=0, global_batch_size=64)
  parts = [
    input_pipeline.make_dataset(
      source, seed=0, global_batch_size=64, process_index=p, process_count=4
    )
    for p in range(4)
  ]
  for step in (0, 7, 100):
    local = [p[step]['image'] for p in parts]
    assert all(x.shape[0] == 16 for x in local)
    # Same rows in the same order: process p holds rows [16p, 16p + 16) of the global batch.
    np.testing.assert_array_equal(np.concatenate(local), whole[step]['image'])


def test_batch_not_divisible_by_processes_is_a_user_error(source):
  with pytest.raises(UserError, match='not divisible'):
    input_pipeline.make_dataset(source, seed=0, global_batch_size=10, process_count=4)


def test_embedded_mnist_split_is_stratified_and_disjoint():
  train, test = data.load('embedded:mnist', 'train'), data.load('embedded:mnist', 'test')
  assert len(train) == 4000 and len(test) == 1000
  assert np.bincount(test.labels).tolist() == [100] * 10
  train_rows = {x.tobytes() for x in train.images}
  assert not any(x.tobytes() in train_rows for x in test.images)


def test_synthetic_source_is_seeded_noise_of_the_named_shape():
  train, again = data.load('synthetic:32x32x3', 'train'), data.load('synthetic:32x32x3', 'train')
  test = data.load('synthetic:16x8x1', 'test')
  assert train.image_shape == (32, 32, 3) and len(train) == 10000 and train.num_classes == 10
  assert test.image_shape == (16, 8, 1) and len(test) == 1000
  np.testing.assert_array_equal(train.images, again.images)
  assert train.images.std() > 60 and set(np.unique(train.labels)) == set(range(10))
  for bad in ('synthetic:32x32', 'synthetic:32x32x4', 'synthetic:axbxc', 'synthetic:0x32x3'):
    with pytest.raises(UserError, match='like 32x32x3'):
      data.load(bad, 'train')
