import json

import pytorch_lightning as pl

import callbacks


class TuneReport(pl.Callback):
    """tune.py's trials: every epoch's metrics (after its validation) to Ray Tune, with the
    epoch (1, 2, ...) that ASHA counts in. Ray stops a trial that ASHA drops here. The last
    report is kept in `path`, for a trial that Ray runs again once it has finished (its
    finish not yet in Ray's saved state): it has nothing left to train, and says it again."""

    def __init__(self, path):
        self.path, self.reported = path, False

    def on_train_epoch_end(self, trainer, pl_module):
        if trainer.sanity_checking:
            return
        metrics = {**callbacks.logged(trainer), 'epoch': trainer.current_epoch + 1}
        if trainer.is_global_zero:
            self.path.write_text(json.dumps(metrics))
        self.reported = True
        from ray import tune
        tune.report(metrics)

    def report_last(self):
        if self.path.is_file():
            from ray import tune
            tune.report(json.loads(self.path.read_text()))
