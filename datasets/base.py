import torch
from torch.utils.data import DataLoader


class DataModule:
    """Train/val/test datasets and their loaders. A subclass implements `build()`, returning
    `{'train': ds, 'val': ds, 'test': ds}`; it runs once, on first `setup()`."""

    def __init__(self, batch_size=32, num_workers=0, pin_memory=False):
        self.batch_size, self.num_workers, self.pin_memory = batch_size, num_workers, pin_memory
        self.splits = None

    def build(self):
        raise NotImplementedError

    def setup(self, stage=None):
        if self.splits is None:
            self.splits = self.build()

    def loader(self, split, shuffle=False, sampler=None):
        self.setup()
        # The shuffle has its own generator, seeded from the run's seed (torch.manual_seed):
        # the batch order depends on the seed alone, not on what else drew random numbers, so
        # train.py and train_pl.py see the same batches.
        generator = torch.Generator().manual_seed(torch.initial_seed()) if shuffle else None
        return DataLoader(self.splits[split], batch_size=self.batch_size, shuffle=shuffle,
                          sampler=sampler, generator=generator, num_workers=self.num_workers,
                          pin_memory=self.pin_memory, persistent_workers=self.num_workers > 0)

    def train_dataloader(self):
        return self.loader('train', shuffle=True)

    def val_dataloader(self):
        return self.loader('val')

    def test_dataloader(self):
        return self.loader('test')

    def predict_dataloader(self):
        return self.loader('test')
