import csv

import yaml

import loggers
import utils


@loggers.register('csv')
class CSV(loggers.Tracker):
    """<run>/csv/metrics.csv, a row per logging call (a `step` column and one per metric; under
    train_pl.py an `epoch` column too, as Lightning logs it), and the flattened config in
    <run>/csv/hparams.yaml: Lightning's CSVLogger's files, written by this class in both
    engines. A --resume continues the file (Lightning's CSVLogger would delete it); after a
    kill, the steps logged since the last checkpoint appear again, as in MLflow. A row is
    appended in one write; a metric first seen late adds a column, empty above, by rewriting
    the file atomically. (The metrics_csv callback's <run>/metrics.csv has a row per epoch.)"""

    def lightning(self, run_dir, run_id):
        from .lightning_logger import TrackerLogger
        return TrackerLogger(self, 'csv', run_dir, run_id)

    def lightning_config(self, logger, cfg, metric_names):
        logger.experiment.log_config(cfg, metric_names)

    def lightning_close(self, logger):
        logger.close()

    def open(self, run_dir, run_id):
        self.folder = run_dir / 'csv'
        self.folder.mkdir(exist_ok=True)
        self.path = self.folder / 'metrics.csv'
        self.columns = []  # the file's header: a resumed run's rows go on under it
        if self.path.is_file():
            with open(self.path, newline='') as f:
                self.columns = next(csv.reader(f), [])

    def log_metrics(self, metrics, step):
        row = {**metrics, 'step': step}
        if self.columns and set(row) <= set(self.columns) and self.path.is_file():
            utils.append_whole(self.path, utils.csv_line(self.columns, row))
            return
        rows = []
        if self.path.is_file():
            with open(self.path, newline='') as f:
                rows = list(csv.DictReader(f))
        rows.append(row)
        self.columns = list(dict.fromkeys([*self.columns, *(k for r in rows for k in r)]))

        def write(tmp):
            with open(tmp, 'w', newline='') as f:
                writer = csv.DictWriter(f, self.columns, restval='')
                writer.writeheader()
                writer.writerows(rows)
        utils.replace_atomically(self.path, write)

    def log_config(self, cfg, metric_names):
        utils.write_text(self.folder / 'hparams.yaml',
                         yaml.safe_dump(utils.flat_config(cfg), sort_keys=False))
