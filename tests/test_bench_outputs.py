"""The JSON the benchmarks write: each carries its bench's name, a bench writes over no file it
did not write, rows merge by key and runs append, and each records the machine. Every bench's
main() runs here with its training and timing replaced by fakes: nothing trains."""

import glob
import itertools
import json
import os
import shutil
import types

import pytest

from bench import ablate
from bench import cas
from bench import checkpoint_stall
from bench import common
from bench import control
from bench import data_pipeline
from bench import low_data
from bench import time_to_quality
from bench import train_step
from tests.conftest import ROOT

MACHINE = {'cpu', 'cpu_family_model', 'load_1min', 'date'}
_RUNS = itertools.count()


def _judge(tmp_path):
  return types.SimpleNamespace(workdir=str(tmp_path), step=5, name='judge')


def fake_control(monkeypatch, tmp_path):
  def run_one(spec, seed, args, workdir):
    return {'spec': spec, 'seed': seed, 'train_wall_s': 1.0, 'steps': 10, 'fid': 9.0}

  monkeypatch.setattr(control, 'run_one', run_one)
  return ['--specs=mnist_text,mnist_cgan', '--seeds=0,1', f'--workroot={tmp_path / "runs"}']


def fake_cas(monkeypatch, tmp_path):
  def one_pass(args, name, recipe, count, seed):
    row = dict(config=name, recipe=recipe, count=count, seed=seed, step=6)
    return row | {'cas': 0.5 + seed / 100, 'real_accuracy': 0.9, 'gan_test': 0.8}

  monkeypatch.setattr(cas, 'one_pass', one_pass)
  monkeypatch.setattr(cas, 'check_runs', lambda args, names: None)
  return ['--configs=mnist_cgan', '--counts=4000', '--seeds=0,1', f'--runs={tmp_path}']


def fake_low_data(monkeypatch, tmp_path):
  def run_one(args, per_class, seed):
    return [dict(per_class=per_class, seed=seed, arm=arm, accuracy=0.5) for arm in low_data.ARMS]

  monkeypatch.setattr(low_data, 'run_one', run_one)
  monkeypatch.setattr(low_data, 'plot', lambda rows, path: None)
  return ['--per_class=5,10', '--seeds=0', f'--workroot={tmp_path / "runs"}']


def fake_checkpoint_stall(monkeypatch, tmp_path):
  monkeypatch.setattr(checkpoint_stall, 'run_arm', lambda args, flags, workdir: 2.0)
  monkeypatch.setattr(checkpoint_stall, 'state_mib', lambda workdir: 1.0)
  return ['--rounds=1', f'--workroot={tmp_path / "runs"}']


def fake_data_pipeline(monkeypatch, tmp_path):
  monkeypatch.setattr(data_pipeline, 'make_folder', lambda root, count: root)
  monkeypatch.setattr(data_pipeline, 'time_prepare', lambda folder, dest: 1.0)
  monkeypatch.setattr(data_pipeline, 'read_rate', lambda source, batch, batches: (0.1, 900.0))
  monkeypatch.setattr(data_pipeline, 'train_rate', lambda dest, workdir, steps: (3.0, 128))
  return [f'--workroot={tmp_path / "runs"}']


def fake_ablate(monkeypatch, tmp_path):
  monkeypatch.setattr(ablate, 'train_judge', lambda workdir: _judge(tmp_path))
  monkeypatch.setattr(
    ablate, 'train_and_judge', lambda name, steps, root, judge: {'fid': 3.0, 'step': steps}
  )
  monkeypatch.setattr(ablate.evaluate, 'real_data_floor', lambda *a: {'fid': 0.1})
  return ['--configs=mnist_dcgan,mnist_cgan', '--steps=10']


def fake_time_to_quality(monkeypatch, tmp_path):
  def judged(count):
    return [
      {'fid': 9.0, 'steps': 10 * i, 'images_seen': 640 * i, 'train_time_s': 30.0 * i}
      for i in range(1, count + 1)
    ]

  ttq = time_to_quality
  monkeypatch.setattr(ttq.ablate, 'train_judge', lambda workdir: _judge(tmp_path))
  monkeypatch.setattr(ttq, 'train_jax', lambda *a: None)
  monkeypatch.setattr(ttq, 'train_torch', lambda *a: None)
  monkeypatch.setattr(ttq, 'judge_jax', lambda spec, workdir, count, *a: judged(count))
  monkeypatch.setattr(ttq, 'judge_torch', lambda workdir, count, *a: judged(count))
  monkeypatch.setattr(ttq.evaluate, 'real_data_floor', lambda *a: {'fid': 0.1})
  monkeypatch.setattr(ttq, 'plot', lambda *a: None)
  workroot = tmp_path / f'runs{next(_RUNS)}'  # A new one for every run.
  return ['--configs=mnist_fast', '--seconds=60', '--snapshot_every=30', f'--workroot={workroot}']


def fake_train_step(monkeypatch, tmp_path):
  def time_batch(batch, kinds, specs, timing, log):
    return {'batch': batch, 'runs': {}, 'jax': {}}

  monkeypatch.setattr(train_step, 'time_batch', time_batch)
  return ['--quick', '--no-verify', '--kinds=jax', f'--log={tmp_path / "workers.log"}']


# bench name: (its module, its fakes, whether its JSON merges `rows` or appends `runs`).
BENCHES = {
  'control': (control, fake_control, 'rows'),
  'cas': (cas, fake_cas, 'rows'),
  'low_data': (low_data, fake_low_data, 'rows'),
  'ablate': (ablate, fake_ablate, 'rows'),
  'checkpoint_stall': (checkpoint_stall, fake_checkpoint_stall, 'runs'),
  'data_pipeline': (data_pipeline, fake_data_pipeline, 'runs'),
  'time_to_quality': (time_to_quality, fake_time_to_quality, 'runs'),
  'train_step': (train_step, fake_train_step, 'runs'),
}
TABLE_AT_OUT = ('ablate', 'time_to_quality')  # --out is their table, the JSON beside it.


def run_bench(name, monkeypatch, tmp_path, out_dir) -> str:
  """Runs bench `name` on fakes with --out in `out_dir`; returns the path of its JSON."""
  module, fakes, _ = BENCHES[name]
  main = module.main_ if name == 'ablate' else module.main
  out = out_dir / (f'{name}.md' if name in TABLE_AT_OUT else f'{name}.json')
  main([*fakes(monkeypatch, tmp_path), f'--out={out}'])
  return str(out_dir / f'{name}.json')


def read(path):
  with open(path) as f:
    return json.load(f)


@pytest.mark.parametrize(
  'text',
  [
    '{\n "title": "a docs page of numbers",\n "rows": []\n}',  # No marker.
    '[{"spec": "mnist_cgan", "seed": 0}]',  # A list, as benches once wrote.
    '{"bench": "some_other_bench", "rows": []}',
    '# Not JSON at all\n',
    '',
  ],
  ids=['no-marker', 'list', 'other-bench', 'markdown', 'empty'],
)
def test_claim_refuses_a_file_it_did_not_write_in_one_line(tmp_path, text):
  path = tmp_path / 'page.json'
  path.write_text(text)
  with pytest.raises(SystemExit) as e:
    common.claim_json(str(path), 'control')
  message = str(e.value.code)
  assert message == (
    f'error: {str(path)!r} exists and was not written by bench/control.py; name another --out'
  )
  assert path.read_text() == text and os.listdir(tmp_path) == ['page.json']


def test_claim_accepts_its_own_file_and_no_file(tmp_path):
  path = tmp_path / 'own.json'
  assert common.claim_json(str(path), 'control') is None
  assert common.claim_json('', 'control') is None
  path.write_text('{"bench": "control", "rows": [{"spec": "a", "seed": 0}]}')
  assert common.claim_json(str(path), 'control') == {
    'bench': 'control',
    'rows': [{'spec': 'a', 'seed': 0}],
  }


def test_rows_merge_by_key_and_runs_append(tmp_path):
  key = lambda r: (r['spec'], r['seed'])
  old = [{'spec': 'a', 'seed': 0, 'x': 1}, {'spec': 'b', 'seed': 0, 'x': 2}]
  new = [{'spec': 'b', 'seed': 0, 'x': 3}, {'spec': 'c', 'seed': 1, 'x': 4}]
  existing = {'bench': 'control', 'note': 'kept', 'rows': old}
  record = common.with_rows(existing, 'control', new, key)
  assert record == {'bench': 'control', 'note': 'kept', 'rows': [old[0], new[0], new[1]]}
  assert common.with_rows(None, 'control', new, key) == {'bench': 'control', 'rows': new}
  named = common.with_rows({'bench': 'ablate', 'rows': {'a': 1, 'b': 2}}, 'ablate', {'b': 3})
  assert named['rows'] == {'a': 1, 'b': 3}
  runs = common.with_run({'bench': 'train_step', 'runs': [{'n': 1}]}, 'train_step', {'n': 2})
  assert runs == {'bench': 'train_step', 'runs': [{'n': 1}, {'n': 2}]}
  path = str(tmp_path / 'sub' / 'out.json')
  common.write_json(path, record)
  common.write_json(path, runs)
  assert read(path) == runs and os.listdir(tmp_path / 'sub') == ['out.json']


def test_machine_names_the_cpu_its_model_the_load_and_the_date():
  found = common.machine()
  assert set(found) == MACHINE
  assert found['cpu'] == common.cpu_name()
  assert found['cpu_family_model'] == '' or found['cpu_family_model'].startswith('family ')
  assert isinstance(found['load_1min'], float) and found['load_1min'] >= 0
  assert len(found['date']) == 10 and found['date'][4] == '-'


def test_every_docs_json_names_the_bench_that_wrote_it():
  paths = sorted(glob.glob(os.path.join(ROOT, 'docs', '*.json')))
  assert len(paths) >= 12
  for path in paths:
    record = read(path)
    assert isinstance(record, dict) and 'bench' in record, path
    name = record['bench']
    assert os.path.isfile(os.path.join(ROOT, 'bench', f'{name}.py')), path
    assert common.claim_json(path, name) == record
    assert isinstance(record.get('rows'), (list, dict)) or isinstance(record.get('runs'), list)


@pytest.mark.parametrize('name', sorted(BENCHES))
def test_every_bench_refuses_a_json_it_did_not_write(name, monkeypatch, tmp_path):
  out_dir = tmp_path / 'out'
  out_dir.mkdir()
  page = out_dir / f'{name}.json'
  page.write_text('{"title": "a page of numbers"}')
  monkeypatch.setattr(common, 'machine', lambda: pytest.fail('the bench began its work'))
  with pytest.raises(SystemExit) as e:
    run_bench(name, monkeypatch, tmp_path, out_dir)
  assert f'was not written by bench/{name}.py' in str(e.value.code)
  assert '\n' not in str(e.value.code)
  assert page.read_text() == '{"title": "a page of numbers"}'
  assert os.listdir(out_dir) == [page.name]


@pytest.mark.parametrize('name', sorted(BENCHES))
def test_every_bench_marks_merges_or_appends_and_records_the_machine(name, monkeypatch, tmp_path):
  out_dir = tmp_path / 'out'
  out_dir.mkdir()
  path = run_bench(name, monkeypatch, tmp_path, out_dir)
  first = read(path)
  assert first['bench'] == name
  kind = BENCHES[name][2]
  entries = first[kind].values() if isinstance(first[kind], dict) else first[kind]
  assert entries and all(MACHINE <= set(entry) for entry in entries)
  run_bench(name, monkeypatch, tmp_path, out_dir)
  second = read(path)
  if kind == 'runs':
    assert second['runs'][0] == first['runs'][0] and len(second['runs']) == 2
  else:  # Every row rerun: the same rows, each replaced in place.
    strip = lambda rows: [{k: v for k, v in r.items() if k not in MACHINE} for r in rows]
    if isinstance(first['rows'], dict):
      assert list(second['rows']) == list(first['rows'])
    else:
      assert strip(second['rows']) == strip(first['rows'])


def test_control_keeps_the_rows_a_page_cites_when_some_are_rerun(monkeypatch, tmp_path):
  shutil.copy(os.path.join(ROOT, 'docs', 'text.json'), tmp_path / 'text.json')
  before = read(tmp_path / 'text.json')
  argv = fake_control(monkeypatch, tmp_path)[1:]
  control.main(['--specs=mnist_text', *argv, f'--out={tmp_path / "text.json"}'])
  after = read(tmp_path / 'text.json')
  kept = [r for r in before['rows'] if r['spec'] != 'mnist_text' or r['seed'] > 1]
  assert all(r in after['rows'] for r in kept) and len(after['rows']) == len(before['rows'])
  rerun = [r for r in after['rows'] if r['spec'] == 'mnist_text' and r['seed'] <= 1]
  assert [r['fid'] for r in rerun] == [9.0, 9.0] and all(r['seconds'] == 900.0 for r in rerun)
  assert {k: after[k] for k in ('bench', 'cpu', 'seconds', 'note')} == {
    k: before[k] for k in ('bench', 'cpu', 'seconds', 'note')
  }


def by_key(rows, key) -> dict:
  """{key(row): row} of a list of rows, or a dict of rows by name as it is."""
  return dict(rows) if isinstance(rows, dict) else {key(row): row for row in rows}


@pytest.mark.parametrize('name', ['cas_study', 'low_data', 'ablation', 'checkpoint_stall'])
def test_a_rerun_into_a_docs_json_keeps_its_numbers(name, monkeypatch, tmp_path):
  record = read(os.path.join(ROOT, 'docs', f'{name}.json'))
  module, _, kind = BENCHES[record['bench']]
  shutil.copy(os.path.join(ROOT, 'docs', f'{name}.json'), tmp_path / f'{record["bench"]}.json')
  after = read(run_bench(record['bench'], monkeypatch, tmp_path, tmp_path))
  if kind == 'runs':
    assert after['runs'][:-1] == record['runs'] and MACHINE <= set(after['runs'][-1])
    return
  key = getattr(module, 'row_key', None)
  old, new = by_key(record['rows'], key), by_key(after['rows'], key)
  rerun = {k for k, row in new.items() if MACHINE <= set(row)}
  assert rerun and set(old) <= set(new)
  assert {k: r for k, r in old.items() if k not in rerun} == {
    k: r for k, r in new.items() if k not in rerun
  }


@pytest.mark.parametrize('name', TABLE_AT_OUT)
def test_a_bench_whose_out_is_its_table_refuses_a_page(name, monkeypatch, tmp_path):
  page = tmp_path / f'{name}.md'
  page.write_text('# A page of prose\n')
  with pytest.raises(SystemExit, match='is not a benchmark table'):
    run_bench(name, monkeypatch, tmp_path, tmp_path)
  assert page.read_text() == '# A page of prose\n' and os.listdir(tmp_path) == [page.name]


def test_time_to_quality_writes_beside_its_table_and_its_plot():
  assert time_to_quality.json_outputs('d/t.md', 'd/t.png') == {'d/t.json': '--out'}
  assert time_to_quality.json_outputs('d/t.md', 'e/p.png') == {
    'd/t.json': '--out',
    'e/p.json': '--plot',
  }
  assert time_to_quality.json_outputs('', 'w/p.png') == {'w/p.json': '--plot'}


def test_a_write_that_fails_leaves_the_file_as_it_was(tmp_path):
  path = tmp_path / 'out.json'
  common.write_json(str(path), {'bench': 'control', 'rows': []})
  with pytest.raises(TypeError):
    common.write_json(str(path), {'bench': 'control', 'rows': [object()]})
  assert read(path) == {'bench': 'control', 'rows': []} and os.listdir(tmp_path) == ['out.json']
