import pytorch_lightning as pl


class LightningData(pl.LightningDataModule):
    """A runyard DataModule as Lightning's: the Trainer calls these hooks. The train order comes
    from the run's seed and this process's rank (set `use_distributed_sampler=False`: the
    loaders shard themselves)."""

    def __init__(self, data, seed):
        super().__init__()
        self.data, self.seed = data, seed

    def setup(self, stage):
        self.data.setup(stage)

    def train_dataloader(self):
        return self.data.train_dataloader(self.seed, *self.where())

    def val_dataloader(self):
        return self.data.val_dataloader(*self.where())

    def test_dataloader(self):
        return self.data.test_dataloader(*self.where())

    def where(self):
        """(rank, world size, device): a loader: memory split goes to this process's device."""
        trainer = self.trainer
        return trainer.global_rank, trainer.world_size, trainer.strategy.root_device

    def predict_dataloader(self):
        return self.data.predict_dataloader()
