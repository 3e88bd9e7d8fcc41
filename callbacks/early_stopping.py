import pytorch_lightning as pl

import callbacks
import utils


@callbacks.register('early_stopping')
class EarlyStopping(pl.Callback):
    """utils/early_stopping.py for Lightning: after every epoch's validation."""

    def __init__(self, monitor='val/loss', mode='min', patience=3, min_delta=0.0, run_dir=None):
        self.rule = utils.EarlyStopping(monitor, mode, patience, min_delta)
        self.run_dir = run_dir

    def on_train_epoch_end(self, trainer, pl_module):
        if not trainer.sanity_checking and self.rule.should_stop(callbacks.logged(trainer)):
            trainer.should_stop = True
            if trainer.is_global_zero:
                print(self.rule.reason(), flush=True)
                if self.run_dir:
                    utils.append_log(self.run_dir, self.rule.reason())

    def on_train_start(self, trainer, pl_module):
        if self.rule.stopped:  # resumed from the checkpoint of the epoch that it ended
            trainer.should_stop = True

    def state_dict(self):
        return self.rule.state_dict()

    def load_state_dict(self, state):
        self.rule.load_state_dict(state)
