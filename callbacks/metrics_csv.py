import pytorch_lightning as pl

import callbacks
import utils


@callbacks.register('metrics_csv')
class MetricsCSV(pl.Callback):
    """<run>/metrics.csv (utils/logs.py): one row per epoch, one column per logged metric (the
    test metrics join the last epoch's row). For pandas, a spreadsheet or grep; train.py writes
    the same file when its config lists this callback."""

    def __init__(self, run_dir=None):
        self.path = run_dir and utils.metrics_csv_path(run_dir)

    def record(self, trainer, epoch):
        if self.path and trainer.is_global_zero and not trainer.sanity_checking:
            utils.record_metrics(self.path, epoch, trainer.global_step, callbacks.logged(trainer))

    def on_train_epoch_end(self, trainer, pl_module):
        if not callbacks.cut_by_max_steps(trainer):
            self.record(trainer, trainer.current_epoch + 1)

    def on_test_end(self, trainer, pl_module):
        self.record(trainer, trainer.current_epoch)  # after fit: the number of epochs done
