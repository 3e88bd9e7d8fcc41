"""Experiment trackers, for both engines: the config's `loggers:` list (TensorBoard alone when
there is none, `loggers: []` for none at all).

    loggers:
      - {name: tensorboard}
      - {name: csv}                                   # <run>/csv/metrics.csv
      - {name: mlflow, args: {tracking_uri: sqlite:///save/mlflow.db}}
      - {name: wandb, args: {offline: true}}

Each name is a Tracker below. train_pl.py gets Lightning's own logger of it (lightning(); the
csv tracker, whose files runyard writes, is driven through loggers/lightning_logger.py);
train.py, which does not import Lightning, the same library's own client (open(), then
log_metrics, log_config, close). Both log the same names at the same steps, and the config,
flattened, as hyper-parameters. The ids of the tracker runs are kept in <run>/trackers.json,
so that --resume continues the same MLflow and W&B runs. mlflow and wandb are optional
(requirements-trackers.txt): imported only when a config names them.
"""
import importlib.util
import json
import sys
from pathlib import Path

import utils

registry = utils.Registry('loggers', folder=__path__[0])
register, list = registry.register, registry.list
DEFAULT = [{'name': 'tensorboard'}]
EXTRAS = 'requirements-trackers.txt'


class Tracker:
    """A tracker of the `loggers:` list. Its __init__ takes the spec's `args` (checked against
    its signature before anything is built) and only keeps them. Then either
      lightning(run_dir, run_id) -> Lightning's logger, for train_pl.py, or
      open(run_dir, run_id)      -> the library's own client, for train.py, and after it
          log_metrics({name: value}, step), log_config(cfg, metric_names), close() (or
          fail(), when an error ended the run, or stop(), when a stop signal did).
    `run_id`: the tracker's own id of the run to continue (None: a new one); after open(),
    `self.run_id` is the one to continue on --resume. `package`: the module it needs (an
    optional extra); `external`: it writes outside the run folder (--check leaves it out)."""
    package, external, run_id = None, False, None

    def __init__(self):  # no args: any given is a mistake, reported by the registry
        self.args = {}

    def lightning(self, run_dir, run_id):
        raise NotImplementedError

    def lightning_id(self, logger):
        """The id that --resume passes back to lightning() (None: nothing to continue)."""
        return None

    def lightning_config(self, logger, cfg, metric_names):
        logger.log_hyperparams(utils.flat_config(cfg))

    def lightning_close(self, logger):
        """After training and testing (Lightning's finalize leaves some runs open)."""

    def lightning_resumed(self, logger):
        """Rank 0, once a resumed run's folder is open again: the tracker run goes on."""

    def lightning_stop(self, logger):
        """After a stop signal, once Lightning has finalized its loggers as 'failed'."""

    def stop(self):
        """close(), after a stop signal ended the run, which --resume continues: where the
        tool keeps a run's status, it says killed (not failed, not finished)."""
        self.close()

    def open(self, run_dir, run_id):
        raise NotImplementedError

    def log_metrics(self, metrics, step):
        raise NotImplementedError

    def log_config(self, cfg, metric_names):
        raise NotImplementedError

    def close(self):
        pass

    def fail(self):
        """close(), after an error ended the run: where the tool keeps a run's status, it
        says failed."""
        self.close()


def from_config(cfg, dry=False):
    """[(name, Tracker)] of the config's `loggers:`, every spec checked and every optional
    package present, before anything is written. `dry` (--check): only those that write into
    the run folder."""
    params = cfg.get('trainer_params') or {}
    if 'logger' in params:  # Lightning's own argument would bypass the list
        raise utils.ConfigError('name the trackers in the `loggers:` section, e.g. loggers: '
                                '[{name: tensorboard}, {name: csv}]', key='trainer_params.logger')
    specs = cfg['loggers'] if cfg.get('loggers') is not None else DEFAULT
    mistakes, trackers = utils.Mistakes(), []
    for i, spec in enumerate(specs):
        with mistakes.part(), utils.at_key(f'loggers.{i}'):
            tracker = registry.make(spec)
            name = spec if isinstance(spec, str) else spec['name']
            if tracker.package and importlib.util.find_spec(tracker.package) is None:
                raise utils.ConfigError(f"logger '{name}' needs the {tracker.package} package: "
                                        f'pip install -r {EXTRAS}', key='name')
            if any(name == other for other, _ in trackers):
                raise utils.ConfigError(f"logger '{name}' is listed twice", key='name')
            trackers.append((name, tracker))
    mistakes.raise_them()
    return [(n, t) for n, t in trackers if not (dry and t.external)]


def ids_path(run_dir):
    return Path(run_dir) / 'trackers.json'


def read_ids(run_dir):
    """{logger name: its run id} of a run folder; {} for a new run."""
    path = ids_path(run_dir)
    return json.loads(path.read_text()) if path.is_file() else {}


def write_ids(run_dir, ids):
    ids = {name: run_id for name, run_id in ids.items() if run_id is not None}
    if ids:
        utils.write_text(ids_path(run_dir), json.dumps(ids, indent=1) + '\n')


def lightning(trackers, run_dir, resuming):
    """Lightning's loggers of [(name, Tracker)], continuing the runs of trackers.json."""
    ids = read_ids(run_dir) if resuming else {}
    return [tracker.lightning(run_dir, ids.get(name)) for name, tracker in trackers]


def start_lightning(trackers, logger_list, run_dir, cfg, metric_names, resuming):
    """Rank 0, once the run folder exists: the config as hyper-parameters (a new run) and the
    tracker runs' ids into trackers.json."""
    ids = {}
    for (name, tracker), logger in zip(trackers, logger_list, strict=True):
        if not resuming:
            tracker.lightning_config(logger, cfg, metric_names)
        else:
            tracker.lightning_resumed(logger)
        ids[name] = tracker.lightning_id(logger)
    write_ids(run_dir, ids)


def close_lightning(trackers, logger_list):
    for (_, tracker), logger in zip(trackers, logger_list, strict=True):
        tracker.lightning_close(logger)


def stop_lightning(trackers, logger_list):
    for (_, tracker), logger in zip(trackers, logger_list, strict=True):
        tracker.lightning_stop(logger)


class Trackers:
    """train.py's trackers as one: each call goes to every one of them."""

    def __init__(self, trackers, run_dir, resuming):
        ids = read_ids(run_dir) if resuming else {}
        self.run_dir, self.trackers = Path(run_dir), [t for _, t in trackers]
        for name, tracker in trackers:
            tracker.open(run_dir, ids.get(name))
        write_ids(run_dir, {name: t.run_id for name, t in trackers})

    def log_metrics(self, metrics, step):
        for tracker in self.trackers:
            tracker.log_metrics(metrics, step)

    def log_config(self, cfg, metric_names):
        for tracker in self.trackers:
            tracker.log_config(cfg, metric_names)

    def log_images(self, images, epoch):
        """To TensorBoard when it is a tracker, and as PNG files into the run folder always."""
        writer = next((t.writer for t in self.trackers if hasattr(t, 'writer')), None)
        utils.write_images(images, writer, self.run_dir, epoch)

    def log_texts(self, texts, epoch):
        """To TensorBoard's TEXT tab when it is a tracker, and to log.txt always."""
        writer = next((t.writer for t in self.trackers if hasattr(t, 'writer')), None)
        utils.write_texts(texts, writer, self.run_dir, epoch)

    def close(self, failed=False, stopped=False):
        """`failed`: an error ended the run; `stopped`: a stop signal did (Tracker.stop).
        Once: a second call (an error after a signal's stop closed them) does nothing. One
        tracker that cannot close (its server gone) does not keep the others open: a warning
        after a run, nothing after an error (`failed`), which has its own line (a full disk
        stops both the run and TensorBoard's last write)."""
        trackers, self.trackers = self.trackers, []
        for tracker in trackers:
            try:
                tracker.fail() if failed else tracker.stop() if stopped else tracker.close()
            except Exception as e:
                reason = utils.first_line(e)
                if not failed:
                    print(f'warning: logger {type(tracker).__name__} did not close: {reason}',
                          file=sys.stderr)


from . import csv_logger, mlflow_logger, tensorboard, wandb_logger  # noqa: E402
