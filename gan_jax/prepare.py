"""Your images as ArrayRecord shards, the format many hosts read at random (`arrayrecord:` source).

    python -m gan_jax.prepare SRC DEST --size=64 --channels=3 [--fit=crop|pad]

SRC is a folder or a .zip of one. Labels come from a `dataset.json` at its top, as StyleGAN's
dataset tool writes it (`{"labels": [["path/in/folder.png", 3], ...]}`, or `"labels": null`),
else from the first-level sub-folder (classes in sorted order; images at the top get class 0).
Every image is converted to greyscale or RGB (alpha dropped), made square (`crop`: the centre
square; `pad`: centred on a black square) and resized (bicubic) to --size; `crop` gives what
the `folder:` source gives, bit for bit. Images that cannot be read, or hold 16-bit or float
pixels, or whose path inside a .zip is absolute or climbs out through `..`, are skipped and
reported. DEST is written whole or not at all (built beside it and
renamed) and never overwritten: shards `shard-NNNNN.array_record` of --per_shard records, each
record the label (int32, little-endian) followed by the image (uint8, H x W x C), and
`metadata.json` (count, shape, classes, per-shard counts, the SHA-256 of the records in
order, what was skipped and why).
"""

import concurrent.futures
import contextlib
import dataclasses
import hashlib
import io
import json
import multiprocessing
import os
import shutil
import sys
import zipfile

from array_record.python import array_record_module

from gan_jax import data
from gan_jax import progress
from gan_jax.data import IMAGE_SUFFIXES
from gan_jax.errors import ArgumentParser
from gan_jax.errors import UserError

FORMAT = data.ARRAYRECORD_FORMAT
METADATA = data.ARRAYRECORD_METADATA
LABELS_FILE = 'dataset.json'
WRITER_OPTIONS = 'group_size:1,uncompressed'  # Random access, one record per chunk.
# Pixels that a conversion to 8 bits would clip rather than scale: refused, not guessed at.
DEEP_MODES = ('I', 'F', 'I;16', 'I;16L', 'I;16B', 'I;16N')


@dataclasses.dataclass(frozen=True)
class Item:
  """One image to read: where it is (a path, or a member of `archive`) and its label."""

  name: str  # Relative to SRC, '/'-separated: what reports and dataset.json call it.
  label: int
  path: str = ''
  archive: str = ''


def shard_name(index: int) -> str:
  return f'shard-{index:05d}.array_record'


def _relative(root: str, path: str) -> str:
  return os.path.relpath(path, root).replace(os.sep, '/')


# Why a .zip member whose name leaves the archive's folder (`../x.png`, `/x.png`) is skipped.
OUTSIDE = 'its path leaves the archive (absolute, or through ..)'


def climbs_out(name: str) -> bool:
  """Whether an archive member's name is absolute or climbs out through '..' (zip slip)."""
  parts = name.replace('\\', '/').split('/')
  return (
    name.startswith(('/', '\\')) or (len(parts[0]) == 2 and parts[0][1] == ':') or ('..' in parts)
  )


def _listing(src: str) -> tuple[list[str], bytes | None, str, list[str]]:
  """(image names, dataset.json's bytes or None, 'folder' or 'zip', the .zip's image names that
  leave the archive, which are skipped) of SRC."""
  if os.path.isdir(src):
    if not os.access(src, os.R_OK | os.X_OK):
      raise UserError(f'{src!r} is not readable')
    names = [_relative(src, p) for p in data.image_paths(src)]
    labels_path = os.path.join(src, LABELS_FILE)
    labels = None
    if os.path.isfile(labels_path):
      with open(labels_path, 'rb') as f:
        labels = f.read()
    return names, labels, 'folder', []
  if os.path.isfile(src):
    try:
      with zipfile.ZipFile(src) as z:
        members = [m for m in z.infolist() if not m.is_dir()]
        names = sorted(m.filename for m in members if m.filename.lower().endswith(IMAGE_SUFFIXES))
        labels = z.read(LABELS_FILE) if LABELS_FILE in z.namelist() else None
    except (zipfile.BadZipFile, OSError, EOFError) as e:
      raise UserError(f'{src!r} is not a readable .zip: {e}') from None
    outside = {n for n in names if climbs_out(n)}
    return [n for n in names if n not in outside], labels, 'zip', sorted(outside)
  raise UserError(f'{src!r} does not exist')


def list_items(src: str) -> tuple[list[Item], list[str], list[list[str]]]:
  """(the images of SRC in sorted order with their labels, the class names or [], [name, why]
  of the images left out: dataset.json gives them no label, or their path leaves the .zip)."""
  names, labels_json, kind, outside = _listing(src)
  items, classes, unlisted = _labelled(src, names, labels_json, kind)
  left_out = [[n, f'no label in {LABELS_FILE}'] for n in unlisted]
  return items, classes, left_out + [[n, OUTSIDE] for n in outside]


def _labelled(src, names, labels_json, kind):
  if not names:
    raise UserError(f'{src!r} holds no images ({", ".join(IMAGE_SUFFIXES)})')

  def item(name, label):
    if kind == 'folder':
      return Item(name, label, path=os.path.join(src, *name.split('/')))
    return Item(name, label, archive=src)

  if labels_json is not None:
    table = _read_labels(labels_json, src)
    if table is None:
      return [item(n, 0) for n in names], [], []
    present = set(names)
    missing = [n for n in table if n not in present]
    if missing:
      raise UserError(
        f'{LABELS_FILE} in {src!r} names {len(missing)} image(s) that are not there, e.g. '
        f'{missing[0]!r}'
      )
    classes = max(table.values()) + 1
    unlisted = [n for n in names if n not in table]
    items = [item(n, table[n]) for n in names if n in table]
    return items, [str(c) for c in range(classes)], unlisted
  folders = sorted({n.split('/')[0] for n in names if '/' in n})
  index = {c: i for i, c in enumerate(folders)}
  return [item(n, index.get(n.split('/')[0], 0) if '/' in n else 0) for n in names], folders, []


def _read_labels(raw: bytes, src: str) -> dict[str, int] | None:
  """dataset.json's {name: label}, or None for `"labels": null`; a one-line error if bad."""
  try:
    labels = json.loads(raw)['labels']
  except (ValueError, KeyError, TypeError):
    raise UserError(f'{LABELS_FILE} in {src!r} is not {{"labels": [[path, label], ...]}}') from None
  if labels is None:
    return None
  table = {}
  for entry in labels if isinstance(labels, list) else [None]:
    ok = isinstance(entry, list) and len(entry) == 2 and isinstance(entry[0], str)
    if not ok or not isinstance(entry[1], int) or isinstance(entry[1], bool) or entry[1] < 0:
      raise UserError(
        f'{LABELS_FILE} in {src!r}: each label entry must be [path, non-negative integer], '
        f'got {entry!r}'
      )
    if entry[0] in table:
      raise UserError(f'{LABELS_FILE} in {src!r} names {entry[0]!r} twice')
    table[entry[0]] = entry[1]
  if not table:
    raise UserError(f'{LABELS_FILE} in {src!r} lists no labels')
  return table


_ARCHIVES = {}  # A worker's open .zip files: the central directory is read once.


def _load(job) -> tuple[bytes | None, str]:
  """(the record of one image, '') or (None, why it was skipped). Runs in worker processes."""
  item, size, channels, fit = job
  from PIL import Image  # pylint: disable=g-import-not-at-top

  try:
    if item.archive:
      if item.archive not in _ARCHIVES:
        _ARCHIVES[item.archive] = zipfile.ZipFile(item.archive)
      raw = io.BytesIO(_ARCHIVES[item.archive].read(item.name))
    else:
      raw = item.path
    with Image.open(raw) as im:
      if im.mode in DEEP_MODES:
        return None, f'{im.mode} pixels (16-bit or float); convert them to 8 bits first'
      image = data.square_image(im, size, channels, fit)
  except Exception as e:  # PIL, zipfile and the OS raise many types for bad files.
    text = str(e).strip().splitlines()
    return None, f'unreadable: {text[0] if text else type(e).__name__}'
  return data.encode_record(image, item.label), ''


def prepare(
  src: str,
  dest: str,
  *,
  size: int,
  channels: int = 3,
  fit: str = 'crop',
  per_shard: int = 10_000,
  workers: int = 0,
  show_progress: bool = True,
) -> dict:
  """Writes DEST from SRC (see the module docstring); returns its metadata."""
  if size < 1:
    raise UserError(f'--size must be positive, got {size}')
  if channels not in (1, 3):
    raise UserError(f'--channels must be 1 or 3, got {channels}')
  if fit not in ('crop', 'pad'):
    raise UserError(f"--fit must be 'crop' or 'pad', got {fit!r}")
  if per_shard < 1:
    raise UserError(f'--per_shard must be positive, got {per_shard}')
  dest = os.path.abspath(dest)
  if os.path.lexists(dest):
    raise UserError(f'{dest!r} already exists; name a new folder (nothing was written)')
  if not os.path.isdir(os.path.dirname(dest)):
    raise UserError(f'the folder to hold {dest!r} does not exist')
  items, class_names, left_out = list_items(src)
  tmp = f'{dest}.partial-{os.getpid()}'
  os.makedirs(tmp)
  try:
    metadata = _write(items, tmp, size, channels, fit, per_shard, workers, show_progress)
    metadata['skipped'] += left_out
    metadata.update(
      source=os.path.abspath(src),
      fit=fit,
      num_classes=max(len(class_names), 1),
      class_names=class_names,
    )
    with open(os.path.join(tmp, METADATA), 'w') as f:
      json.dump(metadata, f, indent=1)
    os.rename(tmp, dest)
  finally:
    if os.path.exists(tmp):
      shutil.rmtree(tmp)
  return metadata


def _write(items, tmp, size, channels, fit, per_shard, workers, show_progress) -> dict:
  digest, shards, skipped, writer = hashlib.sha256(), [], [], None
  workers = workers or os.cpu_count() or 1
  meter = progress.Meter(len(items), 'prepare', 'images', enabled=show_progress)
  jobs = ((item, size, channels, fit) for item in items)
  with contextlib.ExitStack() as stack:
    if workers > 1 and len(items) >= 256:
      context = multiprocessing.get_context('spawn')  # The caller may run threads (JAX).
      pool = stack.enter_context(concurrent.futures.ProcessPoolExecutor(workers, context))
      results = pool.map(_load, jobs, chunksize=256)
    else:
      results = map(_load, jobs)
    for item, (record, why) in zip(items, results):
      meter.update(1)
      if record is None:
        skipped.append([item.name, why])
        continue
      if writer is None:
        shards.append({'file': shard_name(len(shards)), 'count': 0})
        writer = array_record_module.ArrayRecordWriter(
          os.path.join(tmp, shards[-1]['file']), WRITER_OPTIONS
        )
      writer.write(record)
      digest.update(record)
      shards[-1]['count'] += 1
      if shards[-1]['count'] == per_shard:
        writer.close()
        writer = None
  if writer is not None:
    writer.close()
  meter.close()
  count = sum(s['count'] for s in shards)
  if not count:
    reasons = sorted({why for _, why in skipped})
    raise UserError(f'none of the {len(items)} images could be used: {"; ".join(reasons[:3])}')
  return dict(
    format=FORMAT,
    count=count,
    shape=[size, size, channels],
    record='label int32 little-endian, then the image uint8 H x W x C',
    shards=shards,
    sha256=digest.hexdigest(),
    skipped=skipped,
  )


def main(argv=None) -> int:
  parser = ArgumentParser(prog='python -m gan_jax.prepare', description=__doc__.split('\n')[0])
  parser.add_argument('src', help='an image folder, or a .zip of one')
  parser.add_argument('dest', help='the folder to create (must not exist)')
  parser.add_argument('--size', type=int, required=True, help='side of the square images')
  parser.add_argument('--channels', type=int, default=3, help='1 (greyscale) or 3 (RGB)')
  parser.add_argument('--fit', default='crop', help="non-square images: 'crop' or 'pad'")
  parser.add_argument('--per_shard', type=int, default=10_000, help='records per shard')
  parser.add_argument('--workers', type=int, default=0, help='decoding processes (0: one per CPU)')
  args = parser.parse_args(argv)
  try:
    meta = prepare(
      args.src,
      args.dest,
      size=args.size,
      channels=args.channels,
      fit=args.fit,
      per_shard=args.per_shard,
      workers=args.workers,
      show_progress=True,
    )
  except UserError as e:
    print(f'error: {e}', file=sys.stderr, flush=True)
    return 2
  for name, why in meta['skipped'][:10]:
    print(f'skipped {name}: {why}')
  if len(meta['skipped']) > 10:
    print(f'... and {len(meta["skipped"]) - 10} more (all in {METADATA})')
  print(
    f'wrote {meta["count"]} images of shape {tuple(meta["shape"])}, {meta["num_classes"]} '
    f'classes, in {len(meta["shards"])} shard(s) to {os.path.abspath(args.dest)}; skipped '
    f'{len(meta["skipped"])}'
  )
  return 0


if __name__ == '__main__':
  sys.exit(main())
