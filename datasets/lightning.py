import pytorch_lightning as pl


class LightningData(pl.LightningDataModule):
    """A runyard DataModule as Lightning's: the Trainer calls these hooks."""

    def __init__(self, data):
        super().__init__()
        self.data = data

    def setup(self, stage):
        self.data.setup(stage)

    def train_dataloader(self):
        return self.data.train_dataloader()

    def val_dataloader(self):
        return self.data.val_dataloader()

    def test_dataloader(self):
        return self.data.test_dataloader()

    def predict_dataloader(self):
        return self.data.predict_dataloader()
