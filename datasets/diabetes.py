import importlib.util
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import TensorDataset

import datasets
from datasets.base import DataModule


@datasets.register('diabetes')
class Diabetes(DataModule):
    """scikit-learn's diabetes regression data (shipped inside the package, no download): 442
    patients, 10 baseline measurements each, and a disease progression score one year later.
    Split at random but reproducibly by `split_seed`. The features, and the target with
    `standardize_target` (mean 152, standard deviation 77), are standardised with the train
    split's statistics, so val/mae is in standard deviations of the score."""

    def __init__(self, val_fraction=0.15, test_fraction=0.2, split_seed=0,
                 standardize_target=True, **common):
        super().__init__(**common)
        self.val_fraction, self.test_fraction, self.split_seed = \
            val_fraction, test_fraction, split_seed
        self.standardize_target = standardize_target

    def build(self):
        x, y = (torch.tensor(a, dtype=torch.float32) for a in read_diabetes())
        order = torch.randperm(len(y), generator=torch.Generator().manual_seed(self.split_seed))
        n_val, n_test = int(len(y) * self.val_fraction), int(len(y) * self.test_fraction)
        parts = {'val': order[:n_val], 'test': order[n_val:n_val + n_test],
                 'train': order[n_val + n_test:]}
        train_x, train_y = x[parts['train']], y[parts['train']]
        x = (x - train_x.mean(0)) / train_x.std(0)
        if self.standardize_target:
            y = (y - train_y.mean()) / train_y.std()
        return {split: TensorDataset(x[idx], y[idx]) for split, idx in parts.items()}


def read_diabetes():
    """(features, target) of load_diabetes, unscaled, read from the files scikit-learn ships
    without importing scikit-learn (its imports take seconds)."""
    package = importlib.util.find_spec('sklearn')  # finds the package without running it
    folder = Path(package.submodule_search_locations[0]) / 'datasets' / 'data'
    if not (folder / 'diabetes_data_raw.csv.gz').is_file():  # another layout: its own reader
        from sklearn.datasets import load_diabetes
        return load_diabetes(return_X_y=True, scaled=False)
    return np.loadtxt(folder / 'diabetes_data_raw.csv.gz'), \
        np.loadtxt(folder / 'diabetes_target.csv.gz')
