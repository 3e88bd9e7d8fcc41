"""benchmarks/overhead.py run end to end at its smallest, and the `synthetic` data module it
trains on."""
import json
import math
import os
import statistics
import subprocess
import sys

import pytest
import torch

import datasets
import datasets.base
import utils
from conftest import ROOT

SPLIT_SIZES = {'train': 40, 'val': 8, 'test': 4}


def synthetic(**args):
    data = datasets.make({'name': 'synthetic', 'args': args})
    data.setup()
    return {split: ds.tensors for split, ds in data.splits.items()}


def test_synthetic_gives_the_same_tensors_for_the_same_seed():
    first = synthetic(shape=[3, 8, 8], num_classes=5, sizes=SPLIT_SIZES, seed=1)
    again = synthetic(shape=[3, 8, 8], num_classes=5, sizes=SPLIT_SIZES, seed=1)
    for split, n in SPLIT_SIZES.items():
        x, y = first[split]
        assert x.shape == (n, 3, 8, 8) and x.dtype == torch.float32
        assert y.shape == (n,) and y.dtype == torch.long
        assert torch.equal(x, again[split][0]) and torch.equal(y, again[split][1])
    labels = first['train'][1]
    assert labels.min() >= 0 and labels.max() < 5 and len(labels.unique()) > 1
    other = synthetic(shape=[3, 8, 8], num_classes=5, sizes=SPLIT_SIZES, seed=2)
    assert not torch.equal(other['train'][0], first['train'][0])
    # each split its own generator: a smaller train split leaves val and test as they were
    fewer = synthetic(shape=[3, 8, 8], num_classes=5, sizes={**SPLIT_SIZES, 'train': 10}, seed=1)
    assert torch.equal(fewer['val'][0], first['val'][0])
    assert torch.equal(fewer['test'][1], first['test'][1])


def test_synthetic_batches_and_defaults():
    data = datasets.make({'name': 'synthetic', 'args': {'batch_size': 16,
                                                        'sizes': {'train': 20}}})
    x, y = next(iter(data.train_dataloader()))
    assert x.shape == (16, 3, 32, 32) and y.max() < 10
    assert [len(data.splits[s]) for s in ('train', 'val', 'test')] == [20, 512, 512]


@pytest.mark.parametrize('args, error', [
    ({'sizes': {'trian': 8}}, r"sizes\.trian: unknown split; did you mean 'train'\?"),
    ({'sizes': {'val': 0}}, r'sizes\.val: must be an integer >= 1, but got 0'),
    ({'shape': [3, -1]}, r'shape: must be a list of positive integers like \[3, 32, 32\]'),
    ({'num_classes': 0}, r'num_classes: must be an integer >= 1, but got 0'),
])
def test_synthetic_names_a_bad_argument(args, error):
    with pytest.raises(utils.ConfigError, match=error):
        datasets.make({'name': 'synthetic', 'args': args})


def finite(value):
    return isinstance(value, (int, float)) and math.isfinite(value)


@pytest.mark.slow
def test_overhead_benchmark_writes_the_documented_json(tmp_path):
    """Every workload, each path a real process, at the smallest sizes: the JSON holds what
    RESULTS.md tabulates, the ratios are those of its own numbers, and nothing is left behind."""
    out, scratch = tmp_path / 'bench.json', tmp_path / 'tmp'
    scratch.mkdir()
    done = subprocess.run(
        [sys.executable, 'benchmarks/overhead.py', '--tiny', '--repeats', '1', '--epochs', '1,2',
         '--out', str(out)], cwd=ROOT, capture_output=True, text=True,
        # TMPDIR: where its data and run folders go. torch._dynamo's import makes torch's own
        # cache folder, per user, in TMPDIR unless TORCHINDUCTOR_CACHE_DIR names one: not the
        # benchmark's to remove
        env={**os.environ, 'TMPDIR': str(scratch),
             'TORCHINDUCTOR_CACHE_DIR': str(tmp_path / 'torch-cache')})
    assert done.returncode == 0, done.stderr[-3000:]
    assert list(scratch.iterdir()) == []
    report = json.loads(out.read_text())
    assert report['device'].startswith('cpu')
    assert report['versions']['torch'] == torch.__version__
    # a config error comes within a second of the import: which is faster is the noise's
    assert all(finite(s) and s > 0 for s in [report['import_seconds'],
                                              *report['config_error'].values()])
    assert set(report['check']) == {'train_py', 'train_pl'}
    assert all(finite(s) and s > 0 for s in report['check'].values())
    assert '--check of configs/digits.yaml: train_py ' in done.stdout
    assert set(report['import_libraries']) == {'train_py', 'train_pl'}
    assert all(finite(s) and s > 0 for s in report['import_libraries'].values())
    assert set(report['workloads']) == {'digits', 'mnist', 'resnet18'}
    for name, w in report['workloads'].items():
        assert set(w['paths']) == {'handwritten', 'lightning', 'train_py', 'train_pl'}
        assert w['epochs'] == [1, 2]
        for path, p in w['paths'].items():
            low, high = (statistics.median(p['after_first_step'][e]) for e in ('1', '2'))
            assert p['per_epoch'] == high - low
            assert p['startup'] == statistics.median(p['seconds']['1']) - p['per_epoch']
            # the first step comes after the imports, and every process holds torch; the
            # process's age (from /proc, in clock ticks) and the parent's clock can differ by
            # a fraction of a second on a loaded machine
            assert 0 < p['first_step'] < statistics.median(p['seconds']['1']) + 0.5, \
                (name, path, p)
            assert low > 0 and p['peak_mb'] > 100, (name, path, p)
        per_epoch = {path: p['per_epoch'] for path, p in w['paths'].items()}
        for path in ('lightning', 'train_py', 'train_pl'):
            ratio = w[f'per_epoch_{path}']
            assert finite(ratio) and ratio == per_epoch[path] / per_epoch['handwritten']
            assert f'{ratio:.3f}' in done.stdout
        over = w['per_epoch_train_pl_over_lightning']
        assert over == per_epoch['train_pl'] / per_epoch['lightning']
        assert f"{over:.3f} of the plain Lightning script's epoch" in done.stdout


@pytest.mark.slow
@pytest.mark.parametrize('workload', ['digits', 'mnist'])
def test_the_plain_loop_and_the_lightning_script_do_the_same_work(tmp_path, workload):
    """benchmarks/handwritten.py's two engines: the same losses and accuracies each epoch (the
    same data order, model and optimizer), each run's TensorBoard scalars, and one checkpoint
    file each, written every epoch, of the same final weights."""
    data = []
    if workload == 'mnist':
        from benchmarks.overhead import write_mnist
        data = ['--data', str(write_mnist(tmp_path / 'data', 96)), '--val-size', '32']
    lines = {}
    for engine in ('torch', 'lightning'):
        out = tmp_path / engine
        done = subprocess.run(
            [sys.executable, 'benchmarks/handwritten.py', '--workload', workload, '--epochs', '2',
             '--out', str(out), '--engine', engine, *data], cwd=ROOT, capture_output=True,
            text=True, env={**os.environ, 'OMP_NUM_THREADS': '1'})
        assert done.returncode == 0, done.stderr[-3000:]
        assert 'first step: ' in done.stdout
        lines[engine] = [line for line in done.stdout.splitlines() if line.startswith('epoch ')]
        assert len(lines[engine]) == 2
        assert [f.name for f in out.rglob('*.ckpt')] == ['last.ckpt']
        assert list(out.rglob('events.out.tfevents.*'))
    assert lines['torch'] == lines['lightning']
    plain = torch.load(tmp_path / 'torch' / 'last.ckpt', weights_only=False)['model']
    saved = torch.load(tmp_path / 'lightning' / 'last.ckpt', weights_only=False)
    assert saved['saves'] == 2  # one each epoch, as the plain loop's
    lightning = saved['state_dict']
    assert [f'model.{k}' for k in plain] == list(lightning)
    assert all(torch.allclose(v, lightning[f'model.{k}']) for k, v in plain.items())


def test_the_gpu_check_script_parses_and_its_commands_start():
    """benchmarks/gpu_check.sh waits for a GPU machine: until then, it is valid bash and every
    python command in it runs (their --help)."""
    script = ROOT / 'benchmarks' / 'gpu_check.sh'
    assert subprocess.run(['bash', '-n', str(script)]).returncode == 0
    text = script.read_text()
    for command in ('benchmarks/overhead.py', 'train.py', 'train_pl.py'):
        assert command in text
        done = subprocess.run([sys.executable, command, '--help'], cwd=ROOT, capture_output=True,
                              text=True)
        assert done.returncode == 0 and 'usage' in done.stdout.lower(), (command, done.stderr)
    assert 'overhead.write_cifar10' in text and callable(
        __import__('benchmarks.overhead', fromlist=['write_cifar10']).write_cifar10)
    done = subprocess.run([sys.executable, 'benchmarks/handwritten.py', '--help'], cwd=ROOT,
                          capture_output=True, text=True)
    assert done.returncode == 0 and '--workload' in done.stdout
