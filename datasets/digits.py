import importlib.util
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import TensorDataset

import datasets
from datasets.base import DataModule


@datasets.register('digits')
class Digits(DataModule):
    """scikit-learn's 1797 handwritten 8x8 digits (shipped inside the package, no download) as
    1x8x8 tensors in [0, 1], split at random but reproducibly by `split_seed`."""

    def __init__(self, val_fraction=0.1, test_fraction=0.2, split_seed=0, **common):
        super().__init__(**common)
        self.val_fraction, self.test_fraction, self.split_seed = \
            val_fraction, test_fraction, split_seed

    def build(self):
        x, y = read_digits()
        x = torch.tensor(x, dtype=torch.float32).div(16).view(-1, 1, 8, 8)
        y = torch.tensor(y, dtype=torch.long)
        order = torch.randperm(len(y), generator=torch.Generator().manual_seed(self.split_seed))
        n_val, n_test = int(len(y) * self.val_fraction), int(len(y) * self.test_fraction)
        parts = {'val': order[:n_val], 'test': order[n_val:n_val + n_test],
                 'train': order[n_val + n_test:]}
        return {split: TensorDataset(x[idx], y[idx]) for split, idx in parts.items()}


def read_digits():
    """(pixels 0-16, labels) of load_digits, read from the file scikit-learn ships, without
    importing scikit-learn: its imports (scipy, pandas) took 1.8 s of every run's start-up."""
    package = importlib.util.find_spec('sklearn')  # finds the package without running it
    path = Path(package.submodule_search_locations[0]) / 'datasets' / 'data' / 'digits.csv.gz'
    if not path.is_file():  # another scikit-learn layout: its own reader
        from sklearn.datasets import load_digits
        return load_digits(return_X_y=True)
    table = np.loadtxt(path, delimiter=',')
    return table[:, :-1], table[:, -1].astype(np.int64)
