"""What runyard's entrypoints cost against a hand-written loop that does the same work.

    python benchmarks/overhead.py [--device cpu|cuda] [--repeats 3] [--epochs 1,4]
                                  [--workloads digits,mnist,resnet18] [--paths ...]
                                  [--out FILE.json] [--tiny]

Four ways to train each workload, each a whole process, interleaved (handwritten, lightning,
train.py, train_pl.py, handwritten, ...): benchmarks/handwritten.py, the loop a reader would
write for that work (the same data read the same way, model, optimizer, lr schedule, train/loss
to TensorBoard every 10 steps, validation and a checkpoint every epoch, a line per epoch); the
same work as the least a Lightning script needs (handwritten.py --engine lightning: Lightning's
own cost, which train_pl.py cannot go under); and the two entrypoints on the workload's config.
Workloads:

    digits    configs/digits.yaml: an MLP on scikit-learn's digits, `loader: memory`
    mnist     LeNet-5 on MNIST-format IDX files written here (4000 train / 1000 val on a
              CPU), through torchvision's MNIST and a DataLoader: ToTensor + Normalize, batch 64
    resnet18  configs/cifar10-resnet18.yaml on CIFAR-10-format files written here, through a
              DataLoader with RandomCrop + flip (128 train / 64 val on a CPU: one step an epoch)

Each is run for two epoch counts (EPOCHS below, or --epochs for all). The time per epoch is the
slope of the time after the first step (each process's wall time less its own time to the first
step): (its median at the larger count - at the smaller) / their difference, so start-up and its
noise are not in it; start-up is the smaller count's median wall time less its epochs. Also
measured, in the same run: `python -c "import torch, torchvision"` (what start-up is measured
over; and with torchmetrics, and Lightning, the libraries the entrypoints import), each
process's time to first step (log.txt's line, or handwritten's stdout), its peak memory
(ru_maxrss), and each entrypoint's time to a config error and its `--check` of the digits.
The entrypoints run without progress bar, model summary or test pass (the hand-written loop has
none). Every run folder is in a temporary folder deleted at the end. --tiny shrinks every size,
for the test suite.
"""
import argparse
import json
import os
import pickle
import platform
import re
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
PATHS = ('handwritten', 'lightning', 'train_py', 'train_pl')
HANDWRITTEN = {'handwritten': 'torch', 'lightning': 'lightning'}  # handwritten.py's --engine
SCRIPTS = {'handwritten': 'benchmarks/handwritten.py', 'lightning': 'benchmarks/handwritten.py',
           'train_py': 'train.py', 'train_pl': 'train_pl.py'}
TARGETS = {'per_epoch_train_py': 1.03, 'per_epoch_train_pl': 1.10,  # / handwritten
           'startup_train_py': 0.5, 'startup_train_pl': 1.5,  # s over the import
           'config_error': 0.5,  # s over the import
           'check': 5.0}  # s, --check of configs/digits.yaml
# (train, val); on a GPU, sizes that keep benchmarks/gpu_check.sh's run of all three to 4 minutes
SIZES = {'mnist': {'cpu': (4000, 1000), 'cuda': (8000, 2000), 'tiny': (96, 32)},
         'resnet18': {'cpu': (128, 64), 'cuda': (5000, 1000), 'tiny': (32, 16)}}
BATCH = {'resnet18': {'tiny': 16}}  # else 128
# Two epoch counts per workload: far enough apart that the epochs' time stands out of the
# start-up's noise on a shared machine (a digits epoch takes about 20 ms)
EPOCHS = {'digits': (1, 41), 'mnist': (1, 4), 'resnet18': (1, 3)}
QUIET = ['+trainer_params.enable_progress_bar=false', '+trainer_params.enable_model_summary=false',
         '+test=false']
FIRST_STEP = re.compile(r'first step: ([0-9.]+) s after launch')


def write_idx(path, array):
    # IDX, MNIST's format: two zero bytes, the element type (0x08: unsigned byte), the number
    # of dimensions, each dimension as a big-endian uint32, then the data.
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f'>{array.ndim}I', *array.shape)
    path.write_bytes(header + np.ascontiguousarray(array, dtype=np.uint8).tobytes())


def write_mnist(root, n_train, n_test=64):
    """MNIST of random pixels in the real layout: <root>/MNIST/raw/*-idx?-ubyte."""
    raw = root / 'MNIST' / 'raw'
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for prefix, n in (('train', n_train), ('t10k', n_test)):
        write_idx(raw / f'{prefix}-images-idx3-ubyte', rng.integers(0, 256, (n, 28, 28)))
        write_idx(raw / f'{prefix}-labels-idx1-ubyte', rng.integers(0, 10, n))
    return root


def write_cifar10(root, n_train, n_test=64):
    """CIFAR-10 of random pixels in the real layout: <root>/cifar-10-batches-py/, five pickled
    train batches, the test batch and batches.meta."""
    folder = root / 'cifar-10-batches-py'
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    per_batch = -(-n_train // 5)
    for name, n in [*((f'data_batch_{i}', per_batch) for i in range(1, 6)), ('test_batch', n_test)]:
        batch = {'data': rng.integers(0, 256, (n, 3072), dtype=np.uint8),
                 'labels': rng.integers(0, 10, n).tolist()}
        (folder / name).write_bytes(pickle.dumps(batch))
    names = ['airplane', 'automobile', 'bird', 'cat', 'deer', 'dog', 'frog', 'horse', 'ship',
             'truck']
    (folder / 'batches.meta').write_bytes(pickle.dumps({'label_names': names}))
    return root


def workload_commands(name, size_key, data_root):
    """{path: argv after the script} of one workload, without --epochs, and the number of epochs
    argument's form for each path."""
    if name == 'digits':
        return {'handwritten': ['--workload', 'digits'],
                'entry': ['--config', 'configs/digits.yaml', 'callbacks=[]', *QUIET]}
    n_train, n_val = SIZES[name][size_key]
    if name == 'mnist':
        root = write_mnist(data_root / 'mnist', n_train + n_val)
        entry = ['--config', 'configs/mnist-classification.yaml', f'data_module.args.root_dir={root}',
                 f'+data_module.args.val_size={n_val}', 'data_module.args.batch_size=64',
                 'train_wrapper.args.model_spec={name: lenet5, args: {num_classes: 10}}',
                 'train_wrapper.args.loss_spec.name=cross_entropy',
                 'train_wrapper.args.optim_spec={name: Adam, args: {lr: 1.e-3}}',
                 '~trainer_params.strategy', '+trainer_params.log_every_n_steps=10', *QUIET]
        return {'handwritten': ['--workload', 'mnist', '--data', str(root), '--val-size',
                                str(n_val)], 'entry': entry}
    root = write_cifar10(data_root / 'cifar10', n_train + n_val)
    batch = BATCH[name].get(size_key, 128)
    entry = ['--config', 'configs/cifar10-resnet18.yaml', f'data_module.args.root_dir={root}',
             f'data_module.args.val_size={n_val}', f'data_module.args.batch_size={batch}',
             '+trainer_params.log_every_n_steps=10', *QUIET]
    return {'handwritten': ['--workload', 'resnet18', '--data', str(root), '--val-size',
                            str(n_val), '--batch-size', str(batch)], 'entry': entry}


def timed(argv, threads=None):
    """(wall seconds, peak resident MB, stdout, stderr, exit status) of one process, with
    `threads` torch threads (OMP_NUM_THREADS)."""
    with tempfile.TemporaryFile('w+') as out, tempfile.TemporaryFile('w+') as err:
        started = time.perf_counter()
        env = {**os.environ, **({'OMP_NUM_THREADS': str(threads)} if threads else {})}
        process = subprocess.Popen([sys.executable, *argv], cwd=ROOT, stdout=out, stderr=err,
                                   env=env)
        # wait4: this child's own peak memory (getrusage's children's is the largest of all)
        _, status, usage = os.wait4(process.pid, 0)
        seconds = time.perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0), err.seek(0)
        return seconds, usage.ru_maxrss / 1024, out.read(), err.read(), process.returncode


def one_run(path, commands, epochs, run_dir, device, threads):
    if path in HANDWRITTEN:
        argv = [SCRIPTS[path], *commands['handwritten'], '--epochs', str(epochs), '--out',
                str(run_dir), '--device', device, '--engine', HANDWRITTEN[path]]
    else:
        argv = [SCRIPTS[path], *commands['entry'], '--name', run_dir.name, '--save-dir',
                str(run_dir.parent), f'trainer_params.max_epochs={epochs}',
                *(['--gpu', '0'] if device == 'cuda' else [])]
    seconds, peak, out, err, status = timed(argv, threads)
    if status:
        raise RuntimeError(f'{" ".join(argv)} failed ({status}):\n{err[-3000:]}')
    text = out if path in HANDWRITTEN else (run_dir / 'log.txt').read_text()
    return seconds, peak, float(FIRST_STEP.search(text)[1])


def measure_workload(name, args, scratch, size_key):
    commands = workload_commands(name, size_key, scratch / 'data')
    low, high = args.epochs or EPOCHS[name]
    runs = {path: {'seconds': {low: [], high: []}, 'training': {low: [], high: []},
                   'first_step': [], 'peak_mb': []}
            for path in args.paths}
    for repeat in range(args.repeats):
        for epochs in (low, high):
            for path in args.paths:
                run_dir = scratch / 'save' / f'{name}-{path}-{epochs}-{repeat}'
                seconds, peak, first = one_run(path, commands, epochs, run_dir, args.device,
                                               args.threads)
                shutil.rmtree(run_dir, ignore_errors=True)
                runs[path]['seconds'][epochs].append(seconds)
                runs[path]['training'][epochs].append(seconds - first)
                runs[path]['first_step'].append(first)
                runs[path]['peak_mb'].append(peak)
                progress(f'{name} {path} {epochs} epochs, run {repeat + 1}/{args.repeats}: '
                         f'{seconds:.2f} s')
    result = {'epochs': [low, high], 'paths': {}}
    for path, r in runs.items():
        # the epochs' time: the slope of the time after the first step, so that the noise of
        # start-up (imports: +-1 s on a shared machine) is not in it
        a_low, a_high = (statistics.median(r['training'][e]) for e in (low, high))
        per_epoch = (a_high - a_low) / (high - low)
        result['paths'][path] = {
            'per_epoch': per_epoch,
            'startup': statistics.median(r['seconds'][low]) - low * per_epoch,
            'first_step': statistics.median(r['first_step']),
            'peak_mb': statistics.median(r['peak_mb']),
            'seconds': {str(e): s for e, s in r['seconds'].items()},
            'after_first_step': {str(e): s for e, s in r['training'].items()}}
    per_epoch = {path: p['per_epoch'] for path, p in result['paths'].items()}
    for path in per_epoch.keys() - {'handwritten'}:
        result[f'per_epoch_{path}'] = per_epoch[path] / per_epoch['handwritten']
    if {'lightning', 'train_pl'} <= per_epoch.keys():  # what runyard adds to Lightning's loop
        result['per_epoch_train_pl_over_lightning'] = per_epoch['train_pl'] / per_epoch['lightning']
    return result


# What each entrypoint imports of other libraries before its first step: start-up over these
# is what runyard itself adds. They are imported as the entrypoints import them: with
# utils/deferred.py's placeholders for scipy.signal, matplotlib and torchvision, which
# torchmetrics imports at its top level and a digits run does not use (a run on torchvision's
# data or models imports torchvision itself, 0.2 s of "runyard's" here), and torch._dynamo,
# which the first optimizer imports.
LIBRARIES = {'train_py': 'torch, torch._dynamo, torchmetrics',
             'train_pl': 'torch, torch._dynamo, torchmetrics, pytorch_lightning'}
DEFERRED = ("import importlib.util as u; s = u.spec_from_file_location('deferred', "
            "'utils/deferred.py'); m = u.module_from_spec(s); s.loader.exec_module(m); "
            "m.defer_imports(); ")


def import_seconds(repeats, modules='torch, torchvision', deferred=False):
    """Median wall time of `python -c "import torch, torchvision"`: start-up's floor; with
    `deferred`, utils/deferred.py's placeholders in place first."""
    code = (DEFERRED if deferred else '') + f'import {modules}'
    return statistics.median(timed(['-c', code])[0] for _ in range(repeats))


def entrypoint_seconds(repeats, argument, done):
    """{path: median wall time} of each entrypoint on configs/digits.yaml with `argument`;
    done(exit status, stdout, stderr) says whether it did what it should."""
    result = {}
    for path in ('train_py', 'train_pl'):
        times = []
        for _ in range(repeats):
            seconds, _, out, err, status = timed([SCRIPTS[path], '--config', 'configs/digits.yaml',
                                                  argument])
            if not done(status, out, err):
                raise RuntimeError(f'{path} {argument}: exit status {status}: {err[-2000:]}')
            times.append(seconds)
        result[path] = statistics.median(times)
    return result


def config_error_seconds(repeats):
    """To a config error (a misspelt trainer_params key): the one-line error, exit status 2."""
    return entrypoint_seconds(repeats, '+trainer_params.max_epoch=3',
                              lambda status, out, err: status == 2 and err.startswith('error: '))


def check_seconds(repeats):
    """`--check` of the digits (target: under 5 s), which must pass."""
    return entrypoint_seconds(repeats, '--check',
                              lambda status, out, err: status == 0 and 'check passed' in out)


def progress(line):
    print(f'{time.strftime("%H:%M:%S")} {line}', file=sys.stderr, flush=True)


def verdict(value, key):
    return f"{value:.3f} ({'met' if value <= TARGETS[key] else 'NOT met'}: <= {TARGETS[key]})"


def print_report(report):
    print(f"device {report['device']}; torch {report['versions']['torch']}, pytorch_lightning "
          f"{report['versions']['pytorch_lightning']}, python {report['versions']['python']}; "
          f"{report['repeats']} runs of each path and epoch count, medians; "
          f"{report['threads']} torch thread(s) per process")
    floor = report['import_seconds']
    print(f'python -c "import torch, torchvision": {floor:.2f} s')
    for path, seconds in report['import_libraries'].items():
        print(f'python -c "import {LIBRARIES[path]}", utils/deferred.py applied: '
              f'{seconds:.2f} s')
    print()
    print(f"{'workload':<9} {'path':<12} {'s/epoch':>8} {'start-up':>9} {'first step':>11} "
          f"{'peak MB':>8}  ratio per epoch / start-up over the import")
    for name, w in report['workloads'].items():
        print(f"{name}: epochs {' and '.join(map(str, w['epochs']))}")
        for path, p in w['paths'].items():
            line = (f"{name:<9} {path:<12} {p['per_epoch']:8.3f} {p['startup']:9.2f} "
                    f"{p['first_step']:11.2f} {p['peak_mb']:8.0f}")
            if path == 'lightning':
                line += f"  {w['per_epoch_lightning']:.3f} (no target: Lightning's own loop)"
            elif path != 'handwritten':
                line += (f"  {verdict(w[f'per_epoch_{path}'], f'per_epoch_{path}')} / "
                         f"{verdict(p['startup'] - floor, f'startup_{path}')} s "
                         f"({p['startup'] - report['import_libraries'][path]:+.2f} s over "
                         f"importing {LIBRARIES[path]})")
            if 'per_epoch_train_pl_over_lightning' in w and path == 'train_pl':
                line += (f"; {w['per_epoch_train_pl_over_lightning']:.3f} of the plain "
                         "Lightning script's epoch")
            print(line)
    errors = report['config_error']
    print('\ntime to a config error: ' + ', '.join(
        f"{path} {s:.2f} s, {verdict(s - floor, 'config_error')} s over the import"
        for path, s in errors.items()))
    hand = report['workloads'].get('digits', {}).get('paths', {}).get('handwritten')
    print('--check of configs/digits.yaml: ' + ', '.join(
        f"{path} {verdict(s, 'check')} s" for path, s in report['check'].items()) +
        (f"; the hand-written loop's first step: {hand['first_step']:.2f} s" if hand else ''))


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--device', choices=('cpu', 'cuda'), default='cpu')
    p.add_argument('--repeats', type=int, default=3, help='runs per path and epoch count')
    p.add_argument('--epochs', help='the two epoch counts of every workload, like 1,3 '
                                    f'(default: {EPOCHS})')
    p.add_argument('--workloads', default='digits,mnist,resnet18')
    p.add_argument('--paths', default=','.join(PATHS),
                   help='which of them to run (default: %(default)s; handwritten always)')
    p.add_argument('--out', help='write the results to this JSON file')
    p.add_argument('--threads', type=int, default=1,
                   help='torch threads of every training process (default: %(default)s: on a '
                        'machine shared with other work, more threads than free cores make '
                        'the timings erratic)')
    p.add_argument('--tiny', action='store_true', help='every size shrunk (the test suite)')
    args = p.parse_args(argv)
    if args.epochs:
        args.epochs = [int(e) for e in args.epochs.split(',')]
        if len(args.epochs) != 2 or not 1 <= args.epochs[0] < args.epochs[1]:
            p.error(f'--epochs must be two counts, the first smaller, like 1,3, but got '
                    f'{args.epochs}')
    paths = set(args.paths.split(',')) | {'handwritten'}
    if paths - set(PATHS):
        p.error(f"unknown path {sorted(paths - set(PATHS))[0]!r} (known: {', '.join(PATHS)})")
    args.paths = [path for path in PATHS if path in paths]
    args.workloads = args.workloads.split(',')
    unknown = [w for w in args.workloads if w not in ('digits', 'mnist', 'resnet18')]
    if unknown:
        p.error(f"unknown workload {unknown[0]!r} (known: digits, mnist, resnet18)")
    return args


def main(argv=None):
    args = parse_args(argv)
    import torch  # here, not above: --help stays fast
    import pytorch_lightning as pl
    if args.device == 'cuda' and not torch.cuda.is_available():
        sys.exit('--device cuda: this machine has no CUDA GPU')
    size_key = 'tiny' if args.tiny else args.device
    scratch = Path(tempfile.mkdtemp(prefix='runyard-overhead-'))
    started = time.perf_counter()
    try:
        report = {
            'device': f'cuda ({torch.cuda.get_device_name(0)})' if args.device == 'cuda'
            else f'cpu ({os.cpu_count()} cores)',
            'versions': {'torch': torch.__version__, 'pytorch_lightning': pl.__version__,
                         'python': platform.python_version()},
            'repeats': args.repeats, 'threads': args.threads,
            'import_seconds': import_seconds(args.repeats),
            'import_libraries': {path: import_seconds(args.repeats, modules, deferred=True)
                                 for path, modules in LIBRARIES.items()},
            'config_error': config_error_seconds(args.repeats),
            'check': check_seconds(args.repeats),
            'workloads': {name: measure_workload(name, args, scratch, size_key)
                          for name in args.workloads}}
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    report['wall_seconds'] = time.perf_counter() - started
    print_report(report)
    print(f"\nbenchmark wall time: {report['wall_seconds']:.0f} s")
    if args.out:
        Path(args.out).write_text(json.dumps(report, indent=2, allow_nan=False) + '\n')
        print(f'results: {args.out}')


if __name__ == '__main__':
    main()
