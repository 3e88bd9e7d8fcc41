import pytorch_lightning as pl


class TuneReport(pl.Callback):
    """tune.py's trials: every epoch's metrics (after its validation) to Ray Tune, with the
    epoch (1, 2, ...) that ASHA counts in. Ray stops a trial that ASHA drops here."""

    def on_train_epoch_end(self, trainer, pl_module):
        from ray import tune
        if trainer.sanity_checking:
            return
        metrics = {k: v.item() for k, v in trainer.callback_metrics.items() if v.numel() == 1}
        tune.report({**metrics, 'epoch': trainer.current_epoch + 1})
