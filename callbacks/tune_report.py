import pytorch_lightning as pl

import callbacks


class TuneReport(pl.Callback):
    """tune.py's trials: every epoch's metrics (after its validation) to Ray Tune, with the
    epoch (1, 2, ...) that ASHA counts in. Ray stops a trial that ASHA drops here."""

    def on_train_epoch_end(self, trainer, pl_module):
        from ray import tune
        if trainer.sanity_checking:
            return
        tune.report({**callbacks.logged(trainer), 'epoch': trainer.current_epoch + 1})
