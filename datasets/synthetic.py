import torch
from torch.utils.data import TensorDataset

import datasets
import utils
from datasets.base import SPLITS, DataModule

SIZES = {'train': 2048, 'val': 512, 'test': 512}


def is_count(value):
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


@datasets.register('synthetic')
class Synthetic(DataModule):
    """Random inputs of `shape` (standard normal floats, like normalised images) and random
    labels below `num_classes`: data for benchmarks and smoke tests, nothing on disk. `sizes`
    counts each split (those left out keep SIZES). Each split has its own generator, seeded
    from `seed` and the split alone: the same seed gives the same tensors in every run, and a
    smaller train split leaves val and test as they were.

        data_module:
          name: synthetic
          args: {shape: [3, 32, 32], num_classes: 10, sizes: {train: 512, val: 128}, seed: 0}
    """

    def __init__(self, shape=(3, 32, 32), num_classes=10, sizes=None, seed=0, **common):
        super().__init__(**common)
        if not isinstance(shape, (list, tuple)) or not shape or not all(map(is_count, shape)):
            raise utils.ConfigError(f'must be a list of positive integers like [3, 32, 32], '
                                    f'but got {shape!r}', key='shape')
        if not is_count(num_classes):
            raise utils.ConfigError(f'must be an integer >= 1, but got {num_classes!r}',
                                    key='num_classes')
        if not isinstance(sizes, (dict, type(None))):
            raise utils.ConfigError(f'must be a mapping of train/val/test counts, but got '
                                    f'{sizes!r}', key='sizes')
        for split, n in (sizes or {}).items():
            if split not in SPLITS:
                raise utils.ConfigError(f"unknown split{utils.close_matches(split, SPLITS)} "
                                        f"(known: {', '.join(SPLITS)})", key=f'sizes.{split}')
            if not is_count(n):
                raise utils.ConfigError(f'must be an integer >= 1, but got {n!r}',
                                        key=f'sizes.{split}')
        self.shape, self.num_classes, self.seed = tuple(shape), num_classes, seed
        self.sizes = {**SIZES, **(sizes or {})}

    def build(self):
        splits = {}
        for i, split in enumerate(SPLITS):
            generator = torch.Generator().manual_seed(self.seed * len(SPLITS) + i)
            n = self.sizes[split]
            x = torch.randn(n, *self.shape, generator=generator)
            y = torch.randint(self.num_classes, (n,), generator=generator)
            splits[split] = TensorDataset(x, y)
        return splits
