"""What --check adds to the run's own callbacks (train_pl.py): the monitored names, checked
against what the one train and one val batch logged, before any callback acts on them."""
import pytorch_lightning as pl

import callbacks
import utils


class CheckMonitors(pl.Callback):
    def __init__(self, cfg):
        self.cfg, self.done = cfg, False

    def check(self, trainer):
        if not self.done and not trainer.sanity_checking:
            self.done = True
            utils.check_monitors(self.cfg, callbacks.logged(trainer),
                                 trainer.lightning_module.schedules)

    def on_validation_end(self, trainer, pl_module):
        self.check(trainer)

    def on_train_epoch_end(self, trainer, pl_module):  # a task that does not validate
        self.check(trainer)
