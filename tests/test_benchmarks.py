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


def positive(value):
    return isinstance(value, (int, float)) and math.isfinite(value) and value > 0


@pytest.mark.slow
def test_overhead_benchmark_writes_the_documented_json(tmp_path):
    out, scratch = tmp_path / 'bench.json', tmp_path / 'tmp'
    scratch.mkdir()
    done = subprocess.run(
        [sys.executable, 'benchmarks/overhead.py', '--tiny', '--repeats', '2', '--epochs', '2',
         '--out', str(out)], cwd=ROOT, capture_output=True, text=True,
        env={**os.environ, 'TMPDIR': str(scratch)})  # where its run folders go
    assert done.returncode == 0, done.stderr[-3000:]
    assert list(scratch.iterdir()) == []  # the run folders are gone
    report = json.loads(out.read_text())
    assert set(report) == {'device', 'versions', 'workloads'} and report['device'] == 'cpu'
    assert set(report['versions']) == {'torch', 'pytorch_lightning', 'python'}
    assert report['versions']['torch'] == torch.__version__
    assert set(report['workloads']) == {'digits', 'resnet18', 'loader'}
    for name in ('digits', 'resnet18'):
        w = report['workloads'][name]
        for key in ('raw', 'train_py', 'bare_lightning', 'train_pl', 'ttfs_train_py',
                    'ttfs_train_pl'):
            assert positive(w[key]), (name, key, w[key])
        for path in ('raw', 'train_py', 'bare_lightning', 'train_pl'):
            times = w['epoch_times'][path]
            assert len(times) == 2 and w[path] == statistics.median(times[1:])  # no warm-up
        assert w['ratio_train_py_raw'] == w['train_py'] / w['raw']
        assert w['ratio_train_pl_bare'] == w['train_pl'] / w['bare_lightning']
        assert f'{w["ratio_train_py_raw"]:.3f}' in done.stdout
    loader = report['workloads']['loader']
    assert positive(loader['dataloader'])
    if hasattr(datasets.base, 'MemoryLoader'):
        assert positive(loader['memory'])
        assert loader['ratio_memory_dataloader'] == loader['memory'] / loader['dataloader']
    else:
        assert loader['memory'] is None and loader['ratio_memory_dataloader'] is None
