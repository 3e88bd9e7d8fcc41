from pathlib import Path

import torch
from torch.utils.data import random_split

import datasets
import utils
from datasets.base import DataModule

FILES = ['train-images-idx3-ubyte', 'train-labels-idx1-ubyte',
         't10k-images-idx3-ubyte', 't10k-labels-idx1-ubyte']


@datasets.register('mnist')
class MNIST(DataModule):
    """MNIST through torchvision, read from `root_dir`/MNIST/raw/ (the four uncompressed IDX
    files). `val_size` images of the training set (a count, or a fraction) become val.
    Images become 1x28x28 float tensors normalised with MNIST's mean and std unless the
    config's `transforms` says otherwise."""
    default_transforms = {'pre': [{'name': 'to_tensor'}],
                          'post': [{'name': 'Normalize', 'args': {'mean': [0.1307],
                                                                  'std': [0.3081]}}]}

    def __init__(self, root_dir='load/mnist', download=False, val_size=5000, split_seed=0,
                 **common):
        super().__init__(**common)
        self.root_dir, self.download = root_dir, download
        self.val_size, self.split_seed = val_size, split_seed
        raw = Path(root_dir) / 'MNIST' / 'raw'
        missing = [f for f in FILES if not (raw / f).is_file()]
        if missing and not download:
            raise utils.ConfigError(
                f'MNIST files not found in {raw} (missing {", ".join(missing)}); put the '
                'uncompressed IDX files there, or set data_module.args.download: true',
                key='root_dir')

    def build(self):
        from torchvision import datasets as tv
        full = tv.MNIST(self.root_dir, train=True, download=self.download)
        val = self.val_size if isinstance(self.val_size, int) else round(len(full) * self.val_size)
        train, val = random_split(full, [len(full) - val, val],
                                  generator=torch.Generator().manual_seed(self.split_seed))
        test = tv.MNIST(self.root_dir, train=False, download=self.download)
        return {'train': train, 'val': val, 'test': test}
