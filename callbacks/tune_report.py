import json

import pytorch_lightning as pl

import callbacks


class TuneReport(pl.Callback):
    """tune.py's trials: every epoch's metrics (after its validation) to Ray Tune, with the
    epoch (1, 2, ...) that ASHA counts in. Ray stops a trial that ASHA drops here, and one
    that reaches ASHA's max_t: so the last epoch is reported by finish(), after the test
    split, with its metrics. The last report is kept in `path`, for a trial that Ray runs
    again once it has finished (not yet in Ray's saved state): it has nothing left to train,
    and says it again."""

    def __init__(self, path):
        self.path, self.reported, self.last = path, False, None

    def on_train_epoch_end(self, trainer, pl_module):
        if trainer.sanity_checking:
            return
        metrics = {**callbacks.logged(trainer), 'epoch': trainer.current_epoch + 1}
        self.keep(trainer, metrics)
        if trainer.current_epoch + 1 < trainer.max_epochs:
            self.report(metrics)

    def on_test_end(self, trainer, pl_module):
        if self.last is not None:
            self.keep(trainer, {**self.last, **callbacks.logged(trainer)})

    def keep(self, trainer, metrics):
        self.last = metrics
        if trainer.is_global_zero:
            self.path.write_text(json.dumps(metrics))

    def report(self, metrics):
        from ray import tune
        self.reported = True
        tune.report(metrics)

    def finish(self):
        """After train_pl.py: the last epoch's report (with the test metrics), or, for a trial
        that had nothing left to train, the one kept from its earlier run."""
        if self.last is None and self.path.is_file():
            self.last = json.loads(self.path.read_text())
        if self.last is not None:
            self.report(self.last)
