import pytorch_lightning as pl

import callbacks
from models.optim import step_schedulers


class Schedules(pl.Callback):
    """The task's lr schedulers for Lightning (train_pl.py puts it first among the callbacks):
    models.optim.step_schedulers steps them as train.py does, after each optimizer step and
    after each epoch's validation, before any other callback saves that state; and the
    weights' average (models/ema.py) after each optimizer step."""

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self.step = trainer.global_step

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if trainer.global_step != self.step:
            step_schedulers(pl_module.schedules, 'step',
                            trainer.global_step // len(trainer.optimizers))
            if pl_module.task.ema is not None:  # as train.py, before a callback saves it
                pl_module.task.ema.update(pl_module.task)

    def on_train_epoch_end(self, trainer, pl_module):
        if not trainer.sanity_checking:
            step_schedulers(pl_module.schedules, 'epoch', trainer.current_epoch + 1,
                            callbacks.logged(trainer))
