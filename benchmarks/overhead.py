"""What runyard's entrypoints cost on top of a hand-written loop and a bare Lightning Trainer.

    python benchmarks/overhead.py [--device cpu|cuda] [--repeats 5] [--epochs 3] [--out FILE.json]
                                  [--workloads digits,resnet18,loader] [--threads N] [--tiny]

A workload is a config. Its model, data, batch size, optimizer, lr schedule and seed train four
ways, in this process, interleaved (raw, train_py, bare_lightning, train_pl, raw, ...):

    raw             `raw_loop` below: a hand-written loop, no runyard, no Lightning, slicing
                    batches from tensors already on the device
    train_py        train.main(argv), exactly what `python train.py --config ... K=V` runs
    bare_lightning  a minimal LightningModule on a pl.Trainer without progress bar, logger,
                    checkpoints or model summary, fed by a plain DataLoader of those tensors
                    (by index slices of them on the device for a `loader: memory` config)
    train_pl        train_pl.main(argv) as the config sets it up (ETA line, TensorBoard,
                    checkpoints), with only the progress bar, model summary and test pass off

A run trains --epochs epochs. Its epoch time is the mean time between the ends of consecutive
epochs' validation: the first epoch (lazy initialisation) is left out, and what happens between
two validations counts (checkpoints, logs, the lr schedule). raw and bare_lightning read
time.perf_counter() there; the entrypoints are timed, untouched, by the wall time of the
val/loss scalar they write to TensorBoard at the end of every epoch. The first run of each path
is a warm-up; the table has the median of the others and the ratios train_py/raw (target
<= 1.05) and train_pl/bare_lightning (target <= 1.10).

Workloads: `digits` is configs/digits.yaml as it is; `resnet18` is configs/cifar10-resnet18.yaml
on CIFAR-shaped random data (datasets/synthetic.py); `cifar10_fast` is configs/cifar10-fast.yaml
likewise (by default with --device cuda only, when the config exists). `loader` trains
configs/mnist-classification.yaml (with LeNet-5 at batch 128) with train.py on a temporary MNIST
of random pixels, once through the DataLoader with a per-sample RandomCrop and once through
`loader: memory` with the same crop on the device (target: memory/dataloader <= 0.33).

Also printed: each entrypoint's time to first step (the real command line in a subprocess) and
the speed settings of every workload (utils.speed_settings). Every run writes into a temporary
folder that is deleted at the end. --tiny shrinks every size, for the test suite.
"""
import argparse
import contextlib
import gc
import io
import json
import logging
import math
import os
import platform
import re
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pytorch_lightning as pl
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from torch.utils.data import DataLoader, TensorDataset

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import datasets  # noqa: E402
import datasets.base  # noqa: E402
import losses  # noqa: E402
import models  # noqa: E402
import train  # noqa: E402
import train_pl  # noqa: E402
import utils  # noqa: E402
from models.optim import make_optimizer, make_scheduler  # noqa: E402

PATHS = ('raw', 'train_py', 'bare_lightning', 'train_pl')
TARGETS = {'ratio_train_py_raw': 1.05, 'ratio_train_pl_bare': 1.10,
           'ratio_memory_dataloader': 0.33}
CONFIGS = {'digits': 'configs/digits.yaml', 'resnet18': 'configs/cifar10-resnet18.yaml',
           'cifar10_fast': 'configs/cifar10-fast.yaml',
           'loader': 'configs/mnist-classification.yaml'}
# What every run of an entrypoint gets on top of its workload's overrides: no progress bar or
# model summary (the bare Trainer has neither) and no test pass (not part of an epoch).
QUIET = ['+trainer_params.enable_progress_bar=false', '+trainer_params.enable_model_summary=false',
         '+test=false']
# Samples per split, and the synthetic images' shape. The CPU sizes keep a default run to
# minutes on two cores: a ResNet-18 step on 128 CIFAR images takes seconds there, so the CPU
# resnet18 workload is one batch of the config's 128 per epoch. --tiny also shrinks the images
# (ResNet-18's pooling takes any size) and leaves the digits as they are (1797 8x8 images).
SIZES = {
    'resnet18': {'cpu': {'train': 128, 'val': 32, 'test': 32},
                 'cuda': {'train': 10000, 'val': 2000, 'test': 128},
                 'tiny': {'train': 16, 'val': 8, 'test': 8}},
    'cifar10_fast': {'cpu': {'train': 512, 'val': 256, 'test': 32},
                     'cuda': {'train': 45000, 'val': 5000, 'test': 128},  # the config's split
                     'tiny': {'train': 64, 'val': 32, 'test': 8}},
    'loader': {'cpu': {'train': 8192, 'val': 1024, 'test': 32},
               'cuda': {'train': 10000, 'val': 2000, 'test': 128},
               'tiny': {'train': 32, 'val': 16, 'test': 8}},
}
SHAPES = {'resnet18': {'tiny': [3, 8, 8]}}  # [3, 32, 32] otherwise
# The synthetic data keeps only how the config loads its data; its per-sample transforms and
# augmentation go, since the raw loop and the bare Trainer could not do the same work.
LOADING_ARGS = ('batch_size', 'num_workers', 'pin_memory', 'dataloader', 'loader')
FIRST_STEP = re.compile(r'first step: ([0-9.]+) s after launch')


def raw_loop(model, loss_fn, optimizer, scheduler, tensors, batch_size, val_batch_size, epochs,
             seed, step_scheduler_every_batch=False, autocast_dtype=None):
    """The floor: the training a reader would write by hand, on tensors already where the model
    is. Returns each epoch's val/loss, val/acc and the time its validation ended."""
    (x_train, y_train), (x_val, y_val) = tensors['train'], tensors['val']
    autocast = torch.autocast(x_train.device.type, dtype=autocast_dtype,
                              enabled=autocast_dtype is not None)
    history = []
    for epoch in range(epochs):
        model.train()
        order = torch.randperm(len(x_train), generator=torch.Generator().manual_seed(seed + epoch))
        for batch in order.to(x_train.device).split(batch_size):
            with autocast:
                loss = loss_fn(model(x_train[batch]), y_train[batch])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if scheduler and step_scheduler_every_batch:
                scheduler.step()
        model.eval()
        val_loss, correct = 0.0, 0
        with torch.no_grad(), autocast:
            for x, y in zip(x_val.split(val_batch_size), y_val.split(val_batch_size)):
                logits = model(x)
                val_loss += loss_fn(logits, y).float() * len(y)
                correct += (logits.argmax(1) == y).sum()
        if scheduler and not step_scheduler_every_batch:
            scheduler.step()
        history.append({'val/loss': val_loss.item() / len(y_val),  # waits for the device
                        'val/acc': correct.item() / len(y_val), 'end': time.perf_counter()})
    return history


class BareModule(pl.LightningModule):
    """The least a LightningModule needs for the same training, logging only val/loss."""

    def __init__(self, model, loss_fn, optimizers):
        super().__init__()
        # built outside, with the model (`optimizers` is a LightningModule method's name)
        self.model, self.loss_fn, self.optimizers_ = model, loss_fn, optimizers

    def training_step(self, batch, batch_idx):
        x, y = batch
        return self.loss_fn(self.model(x), y)

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log('val/loss', self.loss_fn(self.model(x), y))

    def configure_optimizers(self):
        return self.optimizers_


class Slices:
    """The bare Trainer's loader for a `loader: memory` config: index slices of tensors on the
    device, reshuffled every epoch when given a seed."""

    def __init__(self, x, y, batch_size, device, seed=None):
        self.x, self.y, self.batch_size, self.seed = x.to(device), y.to(device), batch_size, seed
        self.epoch = 0

    def __len__(self):
        return -(-len(self.x) // self.batch_size)

    def __iter__(self):
        order = torch.arange(len(self.x)) if self.seed is None else torch.randperm(
            len(self.x), generator=torch.Generator().manual_seed(self.seed + self.epoch))
        self.epoch += 1
        for batch in order.to(self.x.device).split(self.batch_size):
            yield self.x[batch], self.y[batch]


class ValidationEnds(pl.Callback):
    def __init__(self, device):
        self.device, self.ends = device, []

    def on_validation_end(self, trainer, pl_module):
        if not trainer.sanity_checking:
            synchronize(self.device)
            self.ends.append(time.perf_counter())


def synchronize(device):
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def mean_epoch(ends):
    """Seconds per epoch from the end times of a run's epochs, the first epoch left out."""
    return (ends[-1] - ends[0]) / (len(ends) - 1)


class Floor:
    """What raw_loop and the bare Trainer train: the config's data as tensors, and its model,
    loss, optimizer and lr schedule, built fresh for every run from the config's seed."""

    def __init__(self, cfg, device, epochs):
        self.cfg, self.device, self.epochs = cfg, device, epochs
        data = datasets.make(cfg['data_module'])
        data.setup()
        # Whole splits in one batch: the tensors every loader of this config hands out.
        self.tensors = {split: next(iter(DataLoader(data.splits[split],
                                                    batch_size=len(data.splits[split]))))
                        for split in ('train', 'val')}
        self.batch_size = data.loader_settings['train']['batch_size']
        self.val_batch_size = data.loader_settings['val']['batch_size']
        self.sizes = {split: len(data.splits[split]) for split in datasets.base.SPLITS}
        self.in_memory = data.in_memory
        self.params = cfg.get('trainer_params') or {}
        self.precision = str(self.params.get('precision', '32-true'))

    def build(self):
        wrapper_args = self.cfg['train_wrapper']['args']
        utils.seed_everything(self.cfg['seed'])
        if self.params.get('tf32'):  # runyard's switch, which both entrypoints turn on this way
            torch.set_float32_matmul_precision('high')
        # models.make applies the spec's channels_last and compile, as in the entrypoints
        model = models.make(wrapper_args['model_spec']).to(self.device)
        loss_fn = losses.make(wrapper_args['loss_spec'])
        optimizer = make_optimizer(wrapper_args['optim_spec'], model.parameters())
        scheduler = None
        if wrapper_args.get('sched_spec'):
            scheduler = make_scheduler(wrapper_args['sched_spec'], optimizer)
        return model, loss_fn, optimizer, scheduler

    def raw(self):
        model, loss_fn, optimizer, scheduler = self.build()
        torch.backends.cudnn.benchmark = bool(self.params.get('benchmark'))  # as train.py does
        tensors = {split: (x.to(self.device), y.to(self.device))
                   for split, (x, y) in self.tensors.items()}
        history = raw_loop(
            model, loss_fn, optimizer, scheduler and scheduler['scheduler'], tensors,
            self.batch_size, self.val_batch_size, self.epochs, self.cfg['seed'],
            step_scheduler_every_batch=bool(scheduler) and scheduler['interval'] == 'step',
            autocast_dtype=train.AUTOCAST.get(self.precision))
        return mean_epoch([epoch['end'] for epoch in history])

    def bare_lightning(self, root):
        model, loss_fn, optimizer, scheduler = self.build()
        optimizers = {'optimizer': optimizer, 'lr_scheduler': scheduler} if scheduler \
            else optimizer
        if self.in_memory:  # the config's loader: memory, as plain as raw_loop's slicing
            train_loader = Slices(*self.tensors['train'], self.batch_size, self.device,
                                  self.cfg['seed'])
            val_loader = Slices(*self.tensors['val'], self.val_batch_size, self.device)
        else:
            train_loader = DataLoader(TensorDataset(*self.tensors['train']), self.batch_size,
                                      shuffle=True,
                                      generator=torch.Generator().manual_seed(self.cfg['seed']))
            val_loader = DataLoader(TensorDataset(*self.tensors['val']), self.val_batch_size)
        ends = ValidationEnds(self.device)
        trainer = pl.Trainer(
            max_epochs=self.epochs, accelerator='gpu' if self.device.type == 'cuda' else 'cpu',
            devices=1, precision=self.precision, benchmark=bool(self.params.get('benchmark')),
            logger=False, enable_checkpointing=False,
            enable_progress_bar=False, enable_model_summary=False, callbacks=[ends],
            default_root_dir=str(root))
        trainer.fit(BareModule(model, loss_fn, optimizers), train_loader, val_loader)
        return mean_epoch(ends.ends)


def val_loss_times(run_dir):
    """Wall times of the val/loss scalars a run wrote, one per epoch, read by TensorBoard's
    own reader."""
    times = []
    for path in run_dir.glob('events.out.tfevents.*'):
        events = EventAccumulator(str(path), size_guidance={'scalars': 0})
        events.Reload()
        if 'val/loss' in events.Tags()['scalars']:
            times += [e.wall_time for e in events.Scalars('val/loss')]
    return sorted(times)


def run_entrypoint(main, config, overrides, save_dir, name, gpu, epochs):
    """Seconds per epoch of one in-process run of train.main or train_pl.main."""
    argv = ['--config', str(config), '--name', name, '--save-dir', str(save_dir),
            *(['--gpu', '0'] if gpu else []), *overrides]
    with contextlib.redirect_stdout(io.StringIO()):  # the ETA lines: printed, but not shown
        main(argv)
    times = val_loss_times(save_dir / name)
    if len(times) != epochs:
        raise RuntimeError(f'{name}: expected {epochs} val/loss events, found {len(times)}')
    return mean_epoch(times)


def time_to_first_step(script, config, overrides, save_dir, name, gpu, threads):
    """Seconds from launch to the end of the first step, as the entrypoint writes it to
    log.txt."""
    cmd = [sys.executable, script, '--config', str(config), '--name', name,
           '--save-dir', str(save_dir), *(['--gpu', '0'] if gpu else []), *overrides,
           'trainer_params.max_epochs=1', '+trainer_params.limit_train_batches=1',
           '+trainer_params.limit_val_batches=1']
    env = {**os.environ, 'OMP_NUM_THREADS': str(threads)}
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f'{" ".join(cmd)} failed:\n{done.stderr[-2000:]}')
    return float(FIRST_STEP.search((save_dir / name / 'log.txt').read_text())[1])


def synthetic_overrides(workload, size_key):
    """Overrides that replace a workload's data_module by CIFAR-shaped random data (smaller
    images under --tiny)."""
    cfg = utils.load_config(ROOT / CONFIGS[workload])
    args = cfg['data_module'].get('args') or {}
    wrapper_args = cfg['train_wrapper']['args']
    sizes = SIZES[workload][size_key]
    spec = {'name': 'synthetic',
            'args': {**{k: v for k, v in args.items() if k in LOADING_ARGS},
                     'shape': SHAPES.get(workload, {}).get(size_key, [3, 32, 32]),
                     'num_classes': (wrapper_args['model_spec'].get('args') or {}).get(
                         'num_classes', 10),
                     'sizes': sizes, 'seed': 0}}
    overrides = [f'data_module={json.dumps(spec)}']  # JSON is YAML: the override parses it
    if 'steps_per_epoch' in ((wrapper_args.get('sched_spec') or {}).get('args') or {}):
        # OneCycleLR counts the steps of an epoch and fails past them: count the new data's
        settings = datasets.make(spec).loader_settings['train']
        batches = sizes['train'] / settings['batch_size']
        steps = math.floor(batches) if settings['drop_last'] else math.ceil(batches)
        overrides.append(f'train_wrapper.args.sched_spec.args.steps_per_epoch={steps}')
    return overrides


def median_after_warmup(times):
    return statistics.median(times[1:])


def measure_workload(name, args, device, save_dir, size_key):
    config = ROOT / CONFIGS[name]
    overrides = [] if name == 'digits' else synthetic_overrides(name, size_key)
    run_overrides = [*overrides, f'trainer_params.max_epochs={args.epochs}', *QUIET]
    floor = Floor(utils.load_config(config, run_overrides), device, args.epochs)
    gpu = device.type == 'cuda'
    times = {path: [] for path in PATHS}
    for repeat in range(args.repeats):
        for path in PATHS:
            run = f'{name}-{path}-{repeat}'
            start_alike(args.threads, device)
            if path == 'raw':
                seconds = floor.raw()
            elif path == 'bare_lightning':
                seconds = floor.bare_lightning(save_dir / run)
            else:
                main = train.main if path == 'train_py' else train_pl.main
                seconds = run_entrypoint(main, config, run_overrides, save_dir, run, gpu,
                                         args.epochs)
            times[path].append(seconds)
            progress(f'{name} {path} run {repeat + 1}/{args.repeats}: {seconds:.4f} s/epoch')
    result = {path: median_after_warmup(t) for path, t in times.items()}
    result['ratio_train_py_raw'] = result['train_py'] / result['raw']
    result['ratio_train_pl_bare'] = result['train_pl'] / result['bare_lightning']
    for script, path in (('train.py', 'train_py'), ('train_pl.py', 'train_pl')):
        result[f'ttfs_{path}'] = time_to_first_step(
            script, config, [*overrides, *QUIET], save_dir, f'{name}-ttfs-{path}', gpu,
            args.threads)
    result.update(describe(floor.cfg, CONFIGS[name], floor.sizes), epoch_times=times)
    return result


def describe(cfg, config, sizes):
    """What the table header says of a workload."""
    shape = (cfg['data_module'].get('args') or {}).get('shape')
    data = cfg['data_module']['name'] + (' ' + 'x'.join(map(str, shape)) if shape else '')
    return {'config': config, 'data': data,
            'model': cfg['train_wrapper']['args']['model_spec']['name'],
            'batch_size': datasets.make(cfg['data_module']).loader_settings['train']['batch_size'],
            'sizes': sizes, 'settings': utils.speed_settings(cfg)}


def start_alike(threads, device):
    # Every run starts from the same state: the same thread count, no TF32 left on by the run
    # before, and its garbage collected now rather than inside this run's epochs.
    torch.set_num_threads(threads)
    torch.set_float32_matmul_precision('highest')  # what a config's tf32: true changes
    # compile: true compiles anew in each run (in its first epoch), rather than reusing or
    # running out of the compiled code of the runs before
    torch.compiler.reset()
    gc.collect()
    if device.type == 'cuda':
        torch.cuda.empty_cache()


def write_idx(path, array):
    # IDX, MNIST's format: two zero bytes, the element type (0x08: unsigned byte), the number
    # of dimensions, each dimension as a big-endian uint32, then the data.
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f'>{array.ndim}I', *array.shape)
    path.write_bytes(header + np.ascontiguousarray(array, dtype=np.uint8).tobytes())


def write_mnist(root, n_train, n_test):
    """An MNIST of random pixels and labels in the real on-disk layout: <root>/MNIST/raw/."""
    raw = root / 'MNIST' / 'raw'
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for prefix, n in (('train', n_train), ('t10k', n_test)):
        write_idx(raw / f'{prefix}-images-idx3-ubyte', rng.integers(0, 256, (n, 28, 28)))
        write_idx(raw / f'{prefix}-labels-idx1-ubyte', rng.integers(0, 10, n))
    return root


def measure_loader(args, device, save_dir, size_key):
    """train.py's epoch time on MNIST through the DataLoader with per-sample transforms versus
    `loader: memory` (the data on the device, augmented there a batch at a time)."""
    sizes = SIZES['loader'][size_key]
    root = write_mnist(save_dir / 'mnist', sizes['train'] + sizes['val'], sizes['test'])
    config = ROOT / CONFIGS['loader']
    # LeNet-5 at batch 128, not the config's ResNet-18: a model light enough that the data path
    # shows beside it (on a CPU, ResNet-18's compute would be nearly all of the epoch)
    common = [f'data_module.args.root_dir={root}', f'+data_module.args.val_size={sizes["val"]}',
              f'trainer_params.max_epochs={args.epochs}', 'data_module.args.batch_size=128',
              'train_wrapper.args.model_spec={name: lenet5, args: {num_classes: 10}}', *QUIET]
    modes = {'dataloader': ['+data_module.args.transforms={train: [{name: RandomCrop, '
                            'args: {size: 28, padding: 2}}]}'],
             'memory': ['+data_module.args.loader=memory',
                        '+data_module.args.augment={crop_padding: 2}']}
    cfg = utils.load_config(config, [*common, *modes['dataloader']])
    result = describe(cfg, CONFIGS['loader'], sizes)
    result['settings_memory'] = utils.speed_settings(
        utils.load_config(config, [*common, *modes['memory']]))
    gpu = device.type == 'cuda'
    times = {mode: [] for mode in modes}
    for repeat in range(args.repeats):
        for mode, extra in modes.items():
            start_alike(args.threads, device)
            seconds = run_entrypoint(train.main, config, [*common, *extra], save_dir,
                                     f'loader-{mode}-{repeat}', gpu, args.epochs)
            times[mode].append(seconds)
            progress(f'loader {mode} run {repeat + 1}/{args.repeats}: {seconds:.4f} s/epoch')
    result.update({mode: median_after_warmup(t) for mode, t in times.items()})
    result['ratio_memory_dataloader'] = result['memory'] / result['dataloader']
    result['epoch_times'] = times
    return result


def progress(line):
    print(f'{time.strftime("%H:%M:%S")} {line}', file=sys.stderr, flush=True)


def verdict(ratio, key):
    met = 'met' if ratio <= TARGETS[key] else 'NOT met'
    return f'{ratio:.3f} ({met}: <= {TARGETS[key]})'


def print_report(report, args):
    v, workloads = report['versions'], report['workloads']
    print(f"device {report['device']}, {args.threads} torch threads; torch {v['torch']}, "
          f"pytorch_lightning {v['pytorch_lightning']}, python {v['python']}")
    print(f'{args.epochs} epochs per run, {args.repeats} runs per path (the first a warm-up): '
          f'seconds per epoch, median of {args.repeats - 1} runs\n')
    for name, w in workloads.items():
        sizes = ' / '.join(f'{n} {split}' for split, n in w['sizes'].items())
        print(f"{name:<13} {w['config']}: {w['model']} on {w['data']}, batch {w['batch_size']}, "
              f'{sizes}')
    trained = {n: w for n, w in workloads.items() if n != 'loader'}
    if trained:
        print(f"\n{'workload':<13} {'raw':>9} {'train_py':>9} {'bare_pl':>9} {'train_pl':>9}  "
              f"{'train_py/raw':<26} train_pl/bare_pl")
        for name, w in trained.items():
            print(f"{name:<13} {w['raw']:9.4f} {w['train_py']:9.4f} {w['bare_lightning']:9.4f} "
                  f"{w['train_pl']:9.4f}  {verdict(w['ratio_train_py_raw'], 'ratio_train_py_raw'):<26} "
                  f"{verdict(w['ratio_train_pl_bare'], 'ratio_train_pl_bare')}")
    if 'loader' in workloads:
        w = workloads['loader']
        print(f"\nloader, train.py: dataloader {w['dataloader']:.4f}  memory {w['memory']:.4f}  "
              f"memory/dataloader {verdict(w['ratio_memory_dataloader'], 'ratio_memory_dataloader')}")
    if trained:
        print(f"\ntime to first step, s {'train.py':>9} {'train_pl.py':>12}")
        for name, w in trained.items():
            print(f"{name:<21} {w['ttfs_train_py']:9.2f} {w['ttfs_train_pl']:12.2f}")
    print('\nspeed settings (utils.speed_settings)')
    rows = [(n, w['settings']) for n, w in workloads.items()]
    if 'settings_memory' in workloads.get('loader', {}):
        rows.append(('loader memory', workloads['loader']['settings_memory']))
    for name, settings in rows:
        print(f"{name:<13} {', '.join(f'{k} {v}' for k, v in settings.items())}")


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--device', choices=('cpu', 'cuda'), default='cpu')
    p.add_argument('--repeats', type=int, default=5, help='runs per path, the first a warm-up')
    p.add_argument('--epochs', type=int, default=3, help='epochs per run, the first left out')
    p.add_argument('--out', help='write the results to this JSON file')
    p.add_argument('--workloads', help='comma-separated (default: digits,resnet18,loader, and '
                                       'cifar10_fast with --device cuda)')
    p.add_argument('--threads', type=int, default=torch.get_num_threads(),
                   help='torch threads in every run (default: %(default)s)')
    p.add_argument('--tiny', action='store_true', help='every size shrunk (the test suite)')
    args = p.parse_args(argv)
    if args.repeats < 2:
        p.error('--repeats must be at least 2: the first run is a warm-up')
    if args.epochs < 2:
        p.error('--epochs must be at least 2: the first epoch is left out')
    if args.device == 'cuda' and not torch.cuda.is_available():
        p.error('--device cuda: this machine has no CUDA GPU')
    if args.workloads:
        args.workloads = args.workloads.split(',')
        unknown = [w for w in args.workloads if w not in CONFIGS]
        if unknown:
            p.error(f"unknown workload {unknown[0]!r} (known: {', '.join(CONFIGS)})")
    else:
        args.workloads = ['digits', 'resnet18', 'loader']
        if args.device == 'cuda' and (ROOT / CONFIGS['cifar10_fast']).is_file():
            args.workloads.insert(2, 'cifar10_fast')
    for name in args.workloads:
        if not (ROOT / CONFIGS[name]).is_file():
            p.error(f'workload {name}: {CONFIGS[name]} does not exist')
    return args


def main(argv=None):
    args = parse_args(argv)
    # Lightning's INFO lines, and its advice on num_workers and on log_every_n_steps for the
    # few batches of the shrunk data: about the configs and sizes, not the measurement.
    for logger in ('pytorch_lightning', 'lightning.pytorch', 'lightning_fabric'):
        logging.getLogger(logger).setLevel(logging.WARNING)
    warnings.filterwarnings('ignore', message='.*does not have many workers.*')
    warnings.filterwarnings('ignore', message='.*smaller than the logging interval.*')
    device = torch.device('cuda:0' if args.device == 'cuda' else 'cpu')
    size_key = 'tiny' if args.tiny else args.device
    save_dir = Path(tempfile.mkdtemp(prefix='runyard-overhead-'))
    started = time.perf_counter()
    try:
        workloads = {}
        for name in args.workloads:
            if name == 'loader':
                workloads[name] = measure_loader(args, device, save_dir, size_key)
            else:
                workloads[name] = measure_workload(name, args, device, save_dir, size_key)
    finally:
        shutil.rmtree(save_dir, ignore_errors=True)
    report = {
        'device': f'cuda ({torch.cuda.get_device_name(device)})' if device.type == 'cuda'
        else 'cpu',
        'versions': {'torch': torch.__version__, 'pytorch_lightning': pl.__version__,
                     'python': platform.python_version()},
        'workloads': workloads}
    print_report(report, args)
    print(f'\nbenchmark wall time: {time.perf_counter() - started:.0f} s')
    if args.out:
        Path(args.out).write_text(json.dumps(report, indent=2, allow_nan=False) + '\n')
        print(f'results: {args.out}')


if __name__ == '__main__':
    main()
