import os

import loggers
import utils


@loggers.register('tensorboard')
class TensorBoard(loggers.Tracker):
    """Event files in the run folder itself: one TensorBoard run per run folder, continued on
    --resume; the config in the HParams view, its columns the task's summary metrics."""

    def lightning(self, run_dir, run_id):
        from pytorch_lightning.loggers import TensorBoardLogger
        return TensorBoardLogger(str(run_dir), name='', version='', default_hp_metric=False)

    def lightning_config(self, logger, cfg, metric_names):
        utils.write_hparams(logger.experiment, cfg, metric_names)

    def open(self, run_dir, run_id):
        from tensorboardX import SummaryWriter
        # tensorboardX names event files by the second and the host: a resume within the same
        # second would overwrite the first file without a suffix of its own.
        n_files = len(list(run_dir.glob('events.out.tfevents.*')))
        self.writer = SummaryWriter(str(run_dir), filename_suffix=f'.{os.getpid()}.{n_files}')

    def log_metrics(self, metrics, step):
        for name, value in metrics.items():
            self.writer.add_scalar(name, value, step)

    def log_config(self, cfg, metric_names):
        utils.write_hparams(self.writer, cfg, metric_names)

    def close(self):
        self.writer.close()
