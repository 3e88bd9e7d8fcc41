import csv

import yaml

import loggers
import utils


@loggers.register('csv')
class CSV(loggers.Tracker):
    """<run>/csv/metrics.csv, a row per logging call (a `step` column and one per metric), and
    the flattened config in <run>/csv/hparams.yaml: Lightning's CSVLogger's files. (The
    metrics_csv callback's <run>/metrics.csv has a row per epoch instead.)"""

    def lightning(self, run_dir, run_id):
        from pytorch_lightning.loggers import CSVLogger
        return CSVLogger(str(run_dir), name='csv', version='')

    def open(self, run_dir, run_id):
        self.folder = run_dir / 'csv'
        self.folder.mkdir(exist_ok=True)
        self.path = self.folder / 'metrics.csv'

    def log_metrics(self, metrics, step):
        rows = []
        if self.path.is_file():
            with open(self.path, newline='') as f:
                rows = [row for row in csv.DictReader(f)]
        rows.append({**metrics, 'step': step})
        columns = list(dict.fromkeys(k for row in rows for k in row))

        def write(tmp):  # a metric first seen late gets a column, empty above
            with open(tmp, 'w', newline='') as f:
                writer = csv.DictWriter(f, columns, restval='')
                writer.writeheader()
                writer.writerows(rows)
        utils.replace_atomically(self.path, write)

    def log_config(self, cfg, metric_names):
        utils.write_text(self.folder / 'hparams.yaml',
                         yaml.safe_dump(utils.flat_config(cfg), sort_keys=False))
