"""The checkpoint policy of both engines: the `checkpoint:` section.

    checkpoint: {monitor: val/acc, mode: max, save_top_k: 1, every_n_epochs: 1,
                 every_n_train_steps: 0}

ckpt/last.ckpt is written at the end of every epoch (and every `every_n_train_steps` optimizer
steps within one: a mid-epoch resume point); every `every_n_epochs` epochs the state is also
kept as ckpt/epoch=E-step=S.ckpt, the `save_top_k` best by `monitor` (by recency when nothing
is monitored; -1 keeps all, 0 none). Each save writes the state once: when a kept file is
written, last.ckpt is a hard link to it. The engine's `write(path)` writes a file whole or not
at all. Every rank runs the policy alike (the metrics are agreed across ranks), so every rank
knows the best checkpoint; only rank 0 (`master`) touches the files.
"""
import math
import os
from pathlib import Path

from . import writer
from .errors import ConfigError, at_key, close_matches
from .registry import check_args
from .run import atomic_link


class CheckpointPolicy:
    def __init__(self, folder, monitor=None, mode='min', save_top_k=1, every_n_epochs=1,
                 every_n_train_steps=0):
        if mode not in ('min', 'max'):
            raise ConfigError(f"must be 'min' or 'max', but got {mode!r}", key='mode')
        for key, value, least in (('save_top_k', save_top_k, -1),
                                  ('every_n_epochs', every_n_epochs, 1),
                                  ('every_n_train_steps', every_n_train_steps, 0)):
            if isinstance(value, bool) or not isinstance(value, int) or value < least:
                raise ConfigError(f'must be an integer >= {least}, but got {value!r}', key=key)
        if monitor is not None and not isinstance(monitor, str):
            raise ConfigError(f'must be a logged metric name like val/loss, but got {monitor!r}',
                              key='monitor')
        self.folder, self.monitor, self.mode = Path(folder), monitor, mode
        self.save_top_k, self.every_n_epochs = save_top_k, every_n_epochs
        self.every_n_train_steps = every_n_train_steps
        # [(score, file name)], best first: names, so that a run folder copied or moved
        # elsewhere and resumed there keeps its own files, and never touches the original's
        self.kept = []

    @classmethod
    def from_config(cls, cfg, folder):
        """The policy of a config's `checkpoint:` section, its keys checked."""
        section = {**(cfg.get('checkpoint') or {}), 'folder': folder}
        with at_key('checkpoint'):
            check_args(cls, section, 'checkpoint', prefix='')
            return cls(**section)

    @property
    def last_path(self):
        return self.folder / 'last.ckpt'

    @property
    def best_path(self):
        """The best kept file (the newest when nothing is monitored), or None."""
        return self.folder / self.kept[0][1] if self.kept else None

    def due_within_epoch(self, step):
        return bool(self.every_n_train_steps) and step % self.every_n_train_steps == 0

    def save_last(self, write, master=True):
        """last.ckpt of the state now (mid-epoch, or stopped by a signal)."""
        if master:
            self.folder.mkdir(parents=True, exist_ok=True)
        write(self.last_path)

    def end_of_epoch(self, epoch, step, metrics, write, master=True):
        """The saves of epoch `epoch` (from 0), after its validation; `metrics` are its logged
        values (a scalar each)."""
        path, dropped = None, []
        if self.save_top_k != 0 and (epoch + 1) % self.every_n_epochs == 0:
            score = self.score(metrics, step)
            if score is not None:
                path = f'epoch={epoch}-step={step}.ckpt'
                kept = sorted(self.kept + [(score, path)], key=lambda k: k[0],
                              reverse=not self.monitor or self.mode == 'max')
                if self.save_top_k > 0:
                    kept, dropped = kept[:self.save_top_k], [p for _, p in kept[self.save_top_k:]]
                self.kept = kept
        # the state saved below holds the list as it is once these files exist
        if path is None or path in dropped:
            self.save_last(write, master)
        else:
            if master:
                self.folder.mkdir(parents=True, exist_ok=True)
            write(self.folder / path)
            if master:
                atomic_link(self.folder / path, self.last_path)  # the same bytes, a second name
        if master and dropped:
            writer.submit(lambda: self.remove([old for old in dropped if old != path]))

    def remove(self, names):
        for name in names:
            if (self.folder / name).exists():
                os.remove(self.folder / name)

    def score(self, metrics, step):
        """The value to rank this epoch's state by (None: not ranked, no validation ran)."""
        if not self.monitor:
            return step
        if self.monitor in metrics:
            value = float(metrics[self.monitor])
            return None if math.isnan(value) else value
        if any(k.startswith('val/') for k in metrics):  # a validation ran without it: a typo
            raise ConfigError(f"'{self.monitor}' is not a metric this run logs"
                              f"{close_matches(self.monitor, metrics)} (it logs "
                              f"{', '.join(sorted(metrics))})", key='checkpoint.monitor')
        return None

    def state_dict(self):
        # best_path: for utils.best_checkpoint (test.py), which takes the name of it
        return {'kept': list(self.kept), 'best_path': self.kept[0][1] if self.kept else None}

    def load_state_dict(self, state):
        self.kept = [(score, Path(name).name) for score, name in state['kept']]
