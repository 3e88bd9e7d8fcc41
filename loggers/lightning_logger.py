"""A runyard Tracker as a Lightning logger: for a tracker whose files runyard writes itself
(csv), train_pl.py drives the same code as train.py, so both engines write the same files and a
--resume continues them."""
from pathlib import Path

from lightning_fabric.loggers.logger import rank_zero_experiment
from pytorch_lightning.loggers import Logger
from pytorch_lightning.utilities import rank_zero_only


class TrackerLogger(Logger):
    """Lightning calls it on every rank; rank 0 writes (`experiment` is a dummy elsewhere, as in
    Lightning's own loggers). The tracker is opened at its first use: Lightning's loggers are
    made before the run folder exists. Closed by close() at the end of the run (the tracker's
    lightning_close), or by finalize('failed') when an error ends it: Lightning finalizes
    after fit and again after test."""

    def __init__(self, tracker, name, run_dir, run_id):
        super().__init__()
        self.tracker, self._name, self.run_dir, self.run_id = tracker, name, Path(run_dir), run_id
        self.state = 'new'  # then 'open', then 'closed'

    @property
    def name(self):
        return self._name

    @property
    def version(self):
        return ''

    @property
    def save_dir(self):
        return str(self.run_dir)

    @property
    @rank_zero_experiment
    def experiment(self):
        if self.state == 'new':
            self.tracker.open(self.run_dir, self.run_id)
            self.state = 'open'
        return self.tracker

    @rank_zero_only
    def log_metrics(self, metrics, step=None):
        self.experiment.log_metrics(metrics, step)

    @rank_zero_only
    def log_hyperparams(self, params, *args, **kwargs):
        """Lightning's own call with the module's arguments: the config is logged instead
        (Tracker.log_config, from loggers.start_lightning)."""

    @rank_zero_only
    def finalize(self, status):
        if status == 'failed' and self.state == 'open':
            self.state = 'closed'
            self.tracker.fail()

    @rank_zero_only
    def close(self):
        if self.state == 'open':
            self.state = 'closed'
            self.tracker.close()
