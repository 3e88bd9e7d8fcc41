"""MNIST and Fashion-MNIST through torchvision, and `TorchvisionFiles`, the data module they
share with CIFAR (datasets/cifar.py): a torchvision dataset read from its files on disk."""
from pathlib import Path

import torch
from torch.utils.data import random_split
from torchvision import datasets as tv

import datasets
import utils
from datasets.base import DataModule


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
    `split_seed`. A subclass gives the torchvision class, the folder and the files."""
    reader = None            # the torchvision class: (root, train=bool, download=bool)
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
                f'{self.title} files not found in {folder} (missing {", ".join(missing)}); '
                f'{self.fix.format(root=self.root_dir)}, or set data_module.args.download: true',
                key='root_dir')

    def build(self):
        train, val = hold_out(self.reader(self.root_dir, train=True, download=self.download),
                              self.val_size, self.split_seed)
        test = self.reader(self.root_dir, train=False, download=self.download)
        return {'train': train, 'val': val, 'test': test}


IDX_FILES = ['train-images-idx3-ubyte', 'train-labels-idx1-ubyte',
             't10k-images-idx3-ubyte', 't10k-labels-idx1-ubyte']


@datasets.register('mnist')
class MNIST(TorchvisionFiles):
    """MNIST, read from `root_dir`/MNIST/raw/ (the four uncompressed IDX files; default root_dir
    load/mnist). Images become 1x28x28 float tensors normalised with MNIST's mean and std
    unless the config's `transforms` says otherwise."""
    reader, title, default_root = tv.MNIST, 'MNIST', 'load/mnist'
    folder, files = 'MNIST/raw', IDX_FILES
    fix = 'put the uncompressed IDX files there'
    default_transforms = normalised(mean=[0.1307], std=[0.3081])


@datasets.register('fashion_mnist')
class FashionMNIST(MNIST):
    """Fashion-MNIST: MNIST's format and sizes, ten kinds of clothing instead of digits, read
    from `root_dir`/FashionMNIST/raw/ (default root_dir load/fashion_mnist)."""
    reader, title, default_root = tv.FashionMNIST, 'Fashion-MNIST', 'load/fashion_mnist'
    folder = 'FashionMNIST/raw'
    default_transforms = normalised(mean=[0.2860], std=[0.3530])
