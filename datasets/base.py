"""The data module every dataset subclasses, with the two settings any dataset takes:

    data_module:
      name: mnist
      args:
        dataloader:
          default: {batch_size: 64, num_workers: 2}   # every split
          val: {batch_size: 256}                      # on top of default, for one split
        transforms:                                   # specs: torchvision.transforms.v2 names
          pre: [{name: to_tensor}]                    # or registered ones (datasets/transforms.py)
          train: [{name: RandomCrop, args: {size: 28, padding: 2}}]
          post: [{name: Normalize, args: {mean: [0.1307], std: [0.3081]}}]

A split's pipeline is pre + <split> + post; the keys given replace the dataset's
`default_transforms` one by one. `batch_size`, `num_workers` and `pin_memory` directly in args
are shorthand for dataloader.default.

`loader: memory` is the on-device data path for datasets that fit in memory (digits, MNIST,
CIFAR): each split goes through pre (and, for val/test, its own transforms) once, is kept as
one tensor on the training device, and batches are index slices of it. Augmentation then runs
per batch on the device, before post (normalisation):

        loader: memory
        augment: {crop_padding: 2, flip: true}   # random translate by up to 2 px, h-flip

A random transform in `transforms.train` would be drawn once for good, so it is refused there.

`TorchvisionFiles` is the data module of a torchvision dataset read from its files on disk
(MNIST, Fashion-MNIST, CIFAR).
"""
import functools
import pickle
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset, Sampler, random_split

import utils

SPLITS = ('train', 'val', 'test')
LOADER_DEFAULTS = {'batch_size': 32, 'num_workers': 0, 'pin_memory': False,
                   'persistent_workers': None, 'drop_last': False}
PIPELINE_KEYS = ('pre', *SPLITS, 'post')


class DataModule:
    """Train/val/test datasets and their loaders. A subclass implements `build()`, returning
    `{'train': ds, 'val': ds, 'test': ds}` of (input, target) samples; it runs once, on first
    `setup()`, and the split's transforms are applied to the inputs."""
    default_transforms = {}

    def __init__(self, dataloader=None, transforms=None, batch_size=None, num_workers=None,
                 pin_memory=None, loader='dataloader', augment=None):
        shorthand = {k: v for k, v in (('batch_size', batch_size), ('num_workers', num_workers),
                                       ('pin_memory', pin_memory)) if v is not None}
        self.loader_settings = loader_settings(dataloader or {}, shorthand)
        if loader not in ('dataloader', 'memory'):
            raise utils.ConfigError(f"must be 'dataloader' or 'memory', but got {loader!r}",
                                    key='loader')
        self.in_memory = loader == 'memory'
        self.augment = check_augment(augment, self.in_memory)
        pipelines = {**self.default_transforms, **(transforms or {})}
        if self.in_memory and pipelines.get('train'):
            raise utils.ConfigError(
                'runs per sample, but loader: memory transforms each image once (its random '
                'draws would be frozen); use augment: {crop_padding: N, flip: true} instead',
                key='transforms.train')
        with utils.at_key('transforms'):
            # transforms: each split's whole per-sample pipeline (also what test.py --predict
            # applies); under loader: memory, load_transforms run once per sample and
            # batch_transform (post) on every batch
            self.transforms, self.load_transforms, self.batch_transform = \
                build_transforms(pipelines)
        self.splits, self.tensors = None, {}

    def build(self):
        raise NotImplementedError

    def setup(self, stage=None):
        if self.splits is None:
            pipelines = self.load_transforms if self.in_memory else self.transforms
            try:
                built = self.build()
            except utils.ConfigError:
                raise
            except (AssertionError, ValueError, OSError, EOFError, RuntimeError,
                    pickle.UnpicklingError) as e:  # files there, but not in the format
                reason = f'{type(e).__name__}: {utils.first_line(e)}' if str(e).strip() else \
                    f'its files are not in the expected format ({type(e).__name__})'
                raise utils.ConfigError(f'cannot read the dataset: {reason}',
                                        key='data_module') from e
            self.splits = {split: Transformed(ds, pipelines[split]) if pipelines.get(split) else ds
                           for split, ds in built.items()}

    def loader(self, split, sampler=None, loader_class=DataLoader, rank=0):
        self.setup()
        # Every loader has its own generator (it seeds the workers): creating one never draws
        # from the global RNG, so a resumed run's random stream matches the uninterrupted one.
        # The workers' RNGs are seeded by seed_worker in both engines (Lightning adds its own
        # only to a loader without one).
        return loader_class(self.splits[split], sampler=sampler,
                            generator=torch.Generator().manual_seed(0),
                            worker_init_fn=functools.partial(seed_worker, rank),
                            **self.loader_settings[split])

    def batches(self, split, world_size=1):
        """The batches of one rank's loader of `split` an epoch (the ranks share the split;
        for val and test, rank 0's share, the largest)."""
        self.setup()
        n = -(-len(self.splits[split]) // world_size)
        settings = self.loader_settings[split]
        return n // settings['batch_size'] if settings['drop_last'] else \
            -(-n // settings['batch_size'])

    def train_batches(self, world_size=1):
        return self.batches('train', world_size)

    def train_dataloader(self, seed=0, rank=0, world_size=1, device='cpu'):
        """The shuffled train split; under DDP, this rank's share of it. Resumable mid-epoch.
        `device`: where loader: memory keeps the split."""
        self.setup()
        sampler = EpochSampler(len(self.splits['train']), seed, rank, world_size)
        if self.in_memory:
            return MemoryLoader(*self.on_device('train', device), sampler=sampler,
                                augment=self.augment, seed=seed, transform=self.batch_transform,
                                **self.memory_settings('train'))
        return self.loader('train', sampler, loader_class=ResumableLoader, rank=rank)

    def val_dataloader(self, rank=0, world_size=1, device='cpu'):
        return self.eval_loader('val', rank, world_size, device)

    def test_dataloader(self, rank=0, world_size=1, device='cpu'):
        return self.eval_loader('test', rank, world_size, device)

    def eval_loader(self, split, rank, world_size, device):
        shard = self.shard(split, rank, world_size)
        if self.in_memory:
            everything = range(len(self.splits[split]))
            return MemoryLoader(*self.on_device(split, device), transform=self.batch_transform,
                                indices=everything if shard is None else shard,
                                **self.memory_settings(split))
        return self.loader(split, shard, rank=rank)

    def on_device(self, split, device):
        """(inputs, targets) of a whole split as two tensors on `device`, made once."""
        device = torch.device(device)
        if not len(self.splits[split]):  # an empty split (val_fraction: 0): no batches
            return torch.empty(0, device=device), torch.empty(0, dtype=torch.long, device=device)
        if split not in self.tensors or self.tensors[split][0].device != device:
            # the per-sample part of the pipeline, once, in batches (with the split's workers)
            settings = {**self.loader_settings[split], 'batch_size': 1024, 'drop_last': False,
                        'pin_memory': False, 'persistent_workers': False}
            # its own generator: iterating it never draws from the global RNG (dropout's)
            loader = DataLoader(self.splits[split], generator=torch.Generator().manual_seed(0),
                                **settings)
            xs, ys = zip(*(batch[:2] for batch in loader))
            self.tensors[split] = (torch.cat(xs).to(device), torch.cat(ys).to(device))
        return self.tensors[split]

    def memory_settings(self, split):
        settings = self.loader_settings[split]
        return {'batch_size': settings['batch_size'], 'drop_last': settings['drop_last']}

    def predict_dataloader(self):
        return self.loader('test')

    def shard(self, split, rank, world_size):
        # Each rank evaluates every world_size-th sample: no padding, so metrics summed over
        # ranks are exactly those of one process.
        self.setup()
        return range(rank, len(self.splits[split]), world_size) if world_size > 1 else None


def seed_worker(rank, worker_id):
    """A DataLoader worker's Python, NumPy and torch RNGs, from torch's seed for it (the
    loader's draw for this pass, plus the worker's id) and the rank: each worker of each rank
    draws its own random transforms, the same again on a resumed run."""
    import random

    import numpy as np
    words = np.random.SeedSequence([torch.initial_seed(), rank]).generate_state(4, np.uint64)
    torch.manual_seed(int(words[0]))
    random.seed(int(words[1]))
    np.random.seed(words[2:].view(np.uint32))


class EpochSampler(Sampler):
    """The train order: a permutation drawn from (seed, epoch) alone, split among ranks as
    DistributedSampler does, starting at `start` when a run resumes mid-epoch."""

    def __init__(self, n, seed, rank=0, world_size=1):
        self.n, self.seed, self.rank, self.world_size = n, seed, rank, world_size
        self.epoch, self.start = 0, 0

    def set_epoch(self, epoch):
        if epoch != self.epoch:  # a resume's start is for its own epoch only: one stopped
            self.start = 0       # after the epoch's last batch serves none of it
        self.epoch = epoch

    def indices(self):
        """This rank's order of the epoch, as a tensor (the memory loader indexes with it)."""
        order = torch.randperm(self.n, generator=torch.Generator().manual_seed(
            self.seed + self.epoch))
        pad = (-self.n) % self.world_size  # to a multiple of world_size, with the first ones
        if pad:
            order = torch.cat([order, order[:pad]])
        return order[self.rank::self.world_size]

    def __iter__(self):
        indices, self.start = self.indices()[self.start:], 0
        return iter(indices.tolist())

    def __len__(self):
        return -(-self.n // self.world_size)


class Resumable:
    """A train loader that knows how many batches of the epoch it has handed out, and can start
    the next iteration after them: Lightning saves `state_dict()` in mid-epoch checkpoints and
    calls `load_state_dict()` on resume; train.py calls `skip()` itself."""
    served = 0

    def skip(self, epoch, batches):
        self.sampler.set_epoch(epoch)
        self.sampler.start = batches * self.batch_size

    def state_dict(self):
        return {'epoch': self.sampler.epoch, 'served': self.served}

    def load_state_dict(self, state):
        self.skip(state['epoch'], state['served'])


class ResumableLoader(Resumable, DataLoader):
    def __iter__(self):
        self.served = self.sampler.start // self.batch_size
        for batch in super().__iter__():
            self.served += 1
            yield batch


class MemoryLoader(Resumable):
    """loader: memory. Batches are index slices of two tensors already on the device. The train
    loader takes its order from an EpochSampler (seeded per epoch, sharded per rank, resumable
    mid-epoch) and augments each batch there; its draws depend on (seed, epoch, sample) alone,
    so a sample is augmented alike whichever rank or resumed process serves it."""
    batch_sampler = None  # Lightning looks for one where there is a `sampler`

    def __init__(self, x, y, batch_size, drop_last=False, sampler=None, indices=None,
                 augment=None, seed=0, transform=None):
        self.x, self.y, self.batch_size, self.drop_last = x, y, batch_size, drop_last
        self.sampler, self.indices = sampler, indices
        self.augment, self.seed, self.transform = augment or {}, seed, transform

    def __len__(self):
        n = len(self.sampler) if self.sampler is not None else len(self.indices)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def __iter__(self):
        if self.sampler is not None:
            start = self.sampler.start
            order = self.sampler.indices()[start:]
            self.sampler.start = 0
            draws = self.draws(self.sampler.epoch)
        else:
            start, order, draws = 0, torch.tensor(list(self.indices), dtype=torch.long), None
        self.served = start // self.batch_size
        order = order.to(self.x.device)
        stop = len(order) - len(order) % self.batch_size if self.drop_last else len(order)
        for i in range(0, stop, self.batch_size):
            index = order[i:i + self.batch_size]
            x = self.x[index]
            if draws is not None:
                x = augment_batch(x, *(d[index] for d in draws), self.augment)
            if self.transform is not None:
                x = self.transform(x)
            self.served += 1
            yield x, self.y[index]

    def draws(self, epoch):
        """This epoch's random shifts and flips of every sample of the split."""
        if not self.augment:
            return None
        # a stream of its own, apart from the sampler's (seed + epoch)
        generator = torch.Generator().manual_seed(2**40 + self.seed * 10007 + epoch)
        n, pad = len(self.x), self.augment.get('crop_padding', 0)
        shifts = torch.randint(0, 2 * pad + 1, (n, 2), generator=generator)
        flips = torch.rand(n, generator=generator) < 0.5
        return shifts.to(self.x.device), flips.to(self.x.device)


def augment_batch(x, shifts, flips, augment):
    """Random translation (a crop of the zero-padded image, as RandomCrop(padding=p) does) and
    horizontal flip of a batch (N, C, H, W), each sample by its own draw, in a few tensor ops."""
    pad = augment.get('crop_padding', 0)
    if pad:
        n, _, h, w = x.shape
        padded = torch.nn.functional.pad(x, (pad, pad, pad, pad)).permute(0, 2, 3, 1)
        rows = shifts[:, :1] + torch.arange(h, device=x.device)          # (N, H)
        cols = shifts[:, 1:] + torch.arange(w, device=x.device)          # (N, W)
        batch = torch.arange(n, device=x.device)[:, None, None]
        # one gather: sample b's pixel (i, j) is padded[b, rows[b, i], cols[b, j]]
        x = padded[batch, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2).contiguous()
    if augment.get('flip'):
        x = torch.where(flips[:, None, None, None], x.flip(-1), x)
    return x


def check_augment(augment, in_memory):
    if augment is None:
        return None
    if not in_memory:
        raise utils.ConfigError('needs loader: memory (with the DataLoader, put per-sample '
                                'transforms in transforms.train)', key='augment')
    if not isinstance(augment, dict):
        raise utils.ConfigError(f'must be a mapping like {{crop_padding: 4, flip: true}}, but got '
                                f'{augment!r}', key='augment')
    known = ('crop_padding', 'flip')
    for key, value in augment.items():
        if key not in known:
            raise utils.ConfigError(f"unknown key{utils.close_matches(key, known)} (known: "
                                    f"{', '.join(known)})", key=f'augment.{key}')
    pad = augment.get('crop_padding', 0)
    if isinstance(pad, bool) or not isinstance(pad, int) or pad < 0:
        raise utils.ConfigError(f'must be an integer >= 0, but got {pad!r}',
                                key='augment.crop_padding')
    if not isinstance(augment.get('flip', False), bool):
        raise utils.ConfigError(f"must be true or false, but got {augment['flip']!r}",
                                key='augment.flip')
    return dict(augment)


def loader_settings(section, shorthand):
    """{split: DataLoader keyword arguments} from `dataloader: {default, train, val, test}`."""
    if not isinstance(section, dict):
        raise utils.ConfigError(f'must be a mapping of default/train/val/test, but got '
                                f'{section!r}', key='dataloader')
    for key, value in section.items():
        if key not in ('default', *SPLITS):
            raise utils.ConfigError(f"unknown key{utils.close_matches(key, ('default', *SPLITS))}"
                                    ' (known: default, train, val, test)',
                                    key=f'dataloader.{key}')
        if not isinstance(value, dict):
            raise utils.ConfigError(f'must be a mapping, but got {value!r}',
                                    key=f'dataloader.{key}')
        for name, setting in value.items():
            check_setting(name, setting, f'dataloader.{key}.{name}')
    for name, setting in shorthand.items():
        check_setting(name, setting, name)
    settings = {}
    for split in SPLITS:
        merged = {**LOADER_DEFAULTS, **shorthand, **section.get('default', {}),
                  **section.get(split, {})}
        if merged['persistent_workers'] is None:  # keep workers between epochs when there are any
            merged['persistent_workers'] = merged['num_workers'] > 0
        if merged['persistent_workers'] and merged['num_workers'] == 0:
            raise utils.ConfigError('persistent_workers needs num_workers > 0',
                                    key=f'dataloader.{split}')
        settings[split] = merged
    return settings


def check_setting(name, value, where):
    if name not in LOADER_DEFAULTS:
        raise utils.ConfigError(f'unknown DataLoader setting'
                                f'{utils.close_matches(name, LOADER_DEFAULTS)} '
                                f"(known: {', '.join(LOADER_DEFAULTS)})", key=where)
    if name in ('batch_size', 'num_workers'):
        least = 1 if name == 'batch_size' else 0
        if not isinstance(value, int) or isinstance(value, bool) or value < least:
            raise utils.ConfigError(f'must be an integer >= {least}, but got {value!r}', key=where)
    elif not isinstance(value, bool):
        raise utils.ConfigError(f'must be true or false, but got {value!r}', key=where)


def build_transforms(section):
    """Three pipelines from lists of transform specs: {split: pre + <split> + post} (per
    sample), {split: pre (+ <split> for val and test)} and post (per batch), for loader: memory.
    A missing pipeline is None."""
    if not isinstance(section, dict):
        raise utils.ConfigError(f"must be a mapping of {', '.join(PIPELINE_KEYS)}, but got "
                                f'{section!r}')
    for key, specs in section.items():
        if key not in PIPELINE_KEYS:
            raise utils.ConfigError(f"unknown key{utils.close_matches(key, PIPELINE_KEYS)} "
                                    f"(known: {', '.join(PIPELINE_KEYS)})", key=key)
        if not isinstance(specs, list):
            raise utils.ConfigError(f'must be a list of transform specs, but got {specs!r}',
                                    key=key)
    if not any(section.values()):
        return {}, {}, None
    from datasets import transforms  # torchvision loads only when a config asks for transforms
    built = {key: [] for key in PIPELINE_KEYS}
    for key, specs in section.items():
        for i, spec in enumerate(specs):
            with utils.at_key(f'{key}.{i}'):
                built[key].append(transforms.make(spec))
    whole = {split: transforms.compose(built['pre'] + built[split] + built['post'])
             for split in SPLITS}
    load = {split: transforms.compose(built['pre'] + (built[split] if split != 'train' else []))
            for split in SPLITS}
    return whole, load, transforms.compose(built['post'])


class Transformed(Dataset):
    """A dataset of (input, target, ...) with `transform` applied to the input."""

    def __init__(self, dataset, transform):
        self.dataset, self.transform = dataset, transform

    def __len__(self):
        return len(self.dataset)

    def __getitem__(self, index):
        x, *rest = self.dataset[index]
        return (self.transform(x), *rest)


def normalised(mean, std):
    """default_transforms: images to float tensors in [0, 1], then standardised per channel."""
    return {'pre': [{'name': 'to_tensor'}],
            'post': [{'name': 'Normalize', 'args': {'mean': mean, 'std': std}}]}


def hold_out(dataset, val_size, seed):
    """(train, val): `val_size` samples of `dataset` (a count, or a fraction) become val, drawn
    at random but the same for the same `seed`."""
    n = round(len(dataset) * val_size) if isinstance(val_size, float) else val_size
    if isinstance(n, bool) or not isinstance(n, int) or not 0 < n < len(dataset):
        # Raised by setup(), outside the config's key context: hence the full key path.
        raise utils.ConfigError(f'must be a count or a fraction that leaves train and val each '
                                f'some of the {len(dataset)} training images, but got '
                                f'{val_size!r}', key='data_module.args.val_size')
    return random_split(dataset, [len(dataset) - n, n],
                        generator=torch.Generator().manual_seed(seed))


class TorchvisionFiles(DataModule):
    """A torchvision dataset shipped as a train and a test set, read from its files in
    `root_dir`/`folder`/ (default root_dir: `default_root`) and downloaded there only with
    `download: true`. `val_size` images of train (a count, or a fraction) become val, drawn by
    `split_seed`. A subclass gives the torchvision class (or its dotted path, imported when
    the data is built), the folder and the files."""
    reader = None            # (root, train=bool, download=bool) -> a dataset; or its path
    title = None             # the dataset's name in messages
    default_root = None
    folder, files = None, ()
    fix = None               # how to put the files in place, {root} for root_dir

    def __init__(self, root_dir=None, download=False, val_size=5000, split_seed=0, **common):
        super().__init__(**common)
        self.root_dir, self.download = root_dir or self.default_root, download
        self.val_size, self.split_seed = val_size, split_seed
        folder = Path(self.root_dir) / self.folder
        missing = [f for f in self.files if not (folder / f).is_file()]
        if missing and not download:
            raise utils.ConfigError(
                f'{self.title} files not found in {folder} (missing {len(missing)}: '
                f'{", ".join(missing[:2])}{", ..." if len(missing) > 2 else ""}); '
                f'{self.fix.format(root=self.root_dir)}, or set data_module.args.download: true',
                key='root_dir')

    def reader_class(self):
        """The reader, its path imported only here: a run without torchvision's datasets or
        models does not import torchvision (models/resnet.py)."""
        return utils.import_path(self.reader) if isinstance(self.reader, str) else self.reader

    def build(self):
        reader = self.reader_class()
        train, val = hold_out(reader(self.root_dir, train=True, download=self.download),
                              self.val_size, self.split_seed)
        test = reader(self.root_dir, train=False, download=self.download)
        return {'train': train, 'val': val, 'test': test}
