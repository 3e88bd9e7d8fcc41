"""`early_stopping` for both engines: stop when `monitor` has not improved by more than
`min_delta` for `patience` validations in a row (Lightning's EarlyStopping's meaning).

    callbacks: [{name: early_stopping, args: {monitor: val/acc, mode: max, patience: 5}}]
"""
from .errors import ConfigError, TrainingStopped


class EarlyStopping:
    def __init__(self, monitor='val/loss', mode='min', patience=3, min_delta=0.0):
        if mode not in ('min', 'max'):
            raise ConfigError(f"must be 'min' or 'max', but got {mode!r}", key='mode')
        if isinstance(patience, bool) or not isinstance(patience, int) or patience < 1:
            raise ConfigError(f'must be an integer >= 1, but got {patience!r}', key='patience')
        self.monitor, self.mode, self.patience = monitor, mode, patience
        self.min_delta = abs(min_delta)
        self.sign = 1 if mode == 'min' else -1  # compare signed values: lower is better
        self.best, self.wait = float('inf'), 0

    def should_stop(self, metrics):
        """After an epoch, with its logged metrics: True when the run should end now."""
        if self.monitor not in metrics:
            if any(k.startswith('val/') for k in metrics):  # a validation ran without it
                raise TrainingStopped(
                    f"early_stopping monitors '{self.monitor}', which this run does not log "
                    f"(it logs {', '.join(sorted(metrics))})")
            return False
        value = self.sign * float(metrics[self.monitor])
        if value < self.best - self.min_delta:
            self.best, self.wait = value, 0
        else:
            self.wait += 1
        return self.stopped

    @property
    def stopped(self):
        """Whether the last epoch's check ended the run (a resume of its checkpoint is done)."""
        return self.wait >= self.patience

    def reason(self):
        return (f'early stopping: {self.monitor} has not improved for {self.patience} '
                f'validations (best {self.sign * self.best:.4g})')

    def state_dict(self):
        return {'best': self.best, 'wait': self.wait}

    def load_state_dict(self, state):
        self.best, self.wait = state['best'], state['wait']
