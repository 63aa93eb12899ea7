"""PyTorch `.pth` state dicts read without torch and without running code from the file.

`torch.save` writes a pickle, and unpickling an untrusted pickle can run anything. This reader
unpickles with an allow-list: an ordered dict, the tensor-rebuilding function and the storage
types, nothing else; a file that asks for any other global (a code payload, a whole pickled
module) is refused before anything from it is called. Both of torch's layouts are read: the zip
archive (torch >= 1.6: `<name>/data.pkl` plus one raw file per storage) and the legacy stream
(magic number, protocol, system info, the pickle, the storage keys, then each storage's bytes).
"""

import collections
import hashlib
import io
import os
import pickle
import struct
import zipfile

import ml_dtypes
import numpy as np

from gan_jax.errors import UserError

_STORAGE_DTYPES = {
  'FloatStorage': np.float32,
  'DoubleStorage': np.float64,
  'HalfStorage': np.float16,
  'BFloat16Storage': ml_dtypes.bfloat16,
  'LongStorage': np.int64,
  'IntStorage': np.int32,
  'ShortStorage': np.int16,
  'CharStorage': np.int8,
  'ByteStorage': np.uint8,
  'BoolStorage': np.bool_,
  'UntypedStorage': np.uint8,
}
_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C


class _StorageType:
  """What `torch.<X>Storage` unpickles to here: only its element type."""

  def __init__(self, name: str):
    self.name = name
    self.dtype = np.dtype(_STORAGE_DTYPES[name])


def _rebuild_tensor(storage, offset, size, stride, *unused):
  """torch._utils._rebuild_tensor_v2: a strided view of a flat storage, copied out."""
  del unused  # requires_grad, backward hooks, metadata: meaningless for arrays.
  if isinstance(storage, _Deferred):  # Legacy layout: the bytes come after the pickle.
    return _Deferred(storage.key, storage.view, (offset, size, stride))
  return _strided(storage, offset, size, stride)


def _strided(storage, offset, size, stride):
  if not isinstance(offset, int) or not all(isinstance(v, int) for v in (*size, *stride)):
    raise ValueError('tensor record with non-integer sizes')
  if size and offset + sum((n - 1) * s for n, s in zip(size, stride)) >= len(storage):
    raise ValueError('tensor record reaches past its storage')
  if not size:
    return np.array(storage[offset])
  itemsize = storage.dtype.itemsize
  view = np.lib.stride_tricks.as_strided(
    storage[offset:], shape=tuple(size), strides=tuple(s * itemsize for s in stride)
  )
  return np.array(view)


def _rebuild_parameter(data, *unused):
  del unused
  return data


_ALLOWED = {
  ('collections', 'OrderedDict'): collections.OrderedDict,
  ('torch._utils', '_rebuild_tensor_v2'): _rebuild_tensor,
  ('torch._utils', '_rebuild_parameter'): _rebuild_parameter,
  **{('torch', name): _StorageType(name) for name in _STORAGE_DTYPES},
}


class _Unpickler(pickle.Unpickler):
  def __init__(self, file, path: str, load_storage):
    super().__init__(file)
    self._path = path
    self._load_storage = load_storage

  def find_class(self, module, name):
    found = _ALLOWED.get((module, name))
    if found is None:
      raise UserError(
        f'refusing to load {self._path!r}: it asks to unpickle {module}.{name}, which is not '
        'part of a tensor state dict (nothing from the file was run)'
      )
    return found

  def persistent_load(self, pid):
    if not (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == 'storage'):
      raise UserError(f'refusing to load {self._path!r}: unknown persistent id {pid!r:.80}')
    storage_type, key, numel = pid[1], str(pid[2]), pid[4]
    if not isinstance(storage_type, _StorageType) or not isinstance(numel, int):
      raise UserError(f'refusing to load {self._path!r}: malformed storage record {pid!r:.80}')
    return self._load_storage(storage_type, key, numel, pid[5] if len(pid) > 5 else None)


def _from_zip(archive: zipfile.ZipFile, path: str):
  pickles = [n for n in archive.namelist() if n.endswith('/data.pkl') or n == 'data.pkl']
  if len(pickles) != 1:
    raise UserError(f'{path!r} is a zip file but not a PyTorch checkpoint (no data.pkl)')
  prefix = pickles[0][: -len('data.pkl')]
  byteorder = prefix + 'byteorder'
  if byteorder in archive.namelist() and archive.read(byteorder).strip() != b'little':
    raise UserError(f'{path!r} stores big-endian tensors, which this reader does not handle')

  def load_storage(storage_type, key, numel, unused_view):
    raw = archive.read(f'{prefix}data/{key}')
    if storage_type.name == 'UntypedStorage':
      return np.frombuffer(raw, np.uint8)
    return np.frombuffer(raw, storage_type.dtype, count=numel)

  with archive.open(pickles[0]) as f:
    return _Unpickler(io.BytesIO(f.read()), path, load_storage).load()


def _from_legacy(f, path: str):
  header = _Unpickler(f, path, None)
  if header.load() != _LEGACY_MAGIC:
    raise UserError(f'{path!r} is not a PyTorch weights file (neither a zip nor torch.save stream)')
  header.load()  # protocol version
  sys_info = header.load()
  if isinstance(sys_info, dict) and not sys_info.get('little_endian', True):
    raise UserError(f'{path!r} stores big-endian tensors, which this reader does not handle')
  types = {}  # root key -> storage type; each storage's bytes follow the pickle.

  def load_storage(storage_type, key, unused_numel, view):
    types.setdefault(key, storage_type)
    return _Deferred(key, view)

  state = _Unpickler(f, path, load_storage).load()
  storages = {}
  for key in _Unpickler(f, path, None).load():
    dtype = types[key].dtype
    (count,) = struct.unpack('<q', f.read(8))
    raw = f.read(count * dtype.itemsize)
    if len(raw) != count * dtype.itemsize:
      raise ValueError(f'storage {key} is truncated')
    storages[key] = np.frombuffer(raw, dtype)
  return _resolve(state, storages)


class _Deferred:
  """A legacy storage (or a tensor on one) whose bytes have not been read yet."""

  def __init__(self, key, view, tensor=None):
    self.key, self.view, self.tensor = key, view, tensor


def _resolve(value, storages):
  if isinstance(value, dict):
    return type(value)((k, _resolve(v, storages)) for k, v in value.items())
  if not isinstance(value, _Deferred):
    return value
  storage = storages[value.key]
  if value.view is not None:  # (view key, element offset, element count): old torch's views.
    _, start, count = value.view
    storage = storage[start : start + count]
  return _strided(storage, *value.tensor)


def load_state_dict(path: str) -> dict[str, np.ndarray]:
  """{name: array} of a `torch.save`d state dict, without torch and without running its code."""
  if not os.path.isfile(path):
    raise UserError(f'weights file {path!r} does not exist')
  try:
    if zipfile.is_zipfile(path):
      with zipfile.ZipFile(path) as archive:
        state = _from_zip(archive, path)
    else:
      with open(path, 'rb') as f:
        state = _from_legacy(f, path)
  except UserError:
    raise
  except (
    pickle.UnpicklingError,
    EOFError,
    ValueError,
    KeyError,
    TypeError,
    zipfile.BadZipFile,
    struct.error,
    AttributeError,
    IndexError,
  ) as e:
    raise UserError(
      f'{path!r} is not a readable PyTorch state dict ({type(e).__name__}: {e})'
    ) from None
  if isinstance(state, dict) and 'state_dict' in state and isinstance(state['state_dict'], dict):
    state = state['state_dict']
  if not isinstance(state, dict) or not all(isinstance(v, np.ndarray) for v in state.values()):
    raise UserError(f'{path!r} does not hold a state dict of tensors')
  return dict(state)


def sha256(path: str) -> str:
  digest = hashlib.sha256()
  with open(path, 'rb') as f:
    for block in iter(lambda: f.read(1 << 20), b''):
      digest.update(block)
  return digest.hexdigest()
