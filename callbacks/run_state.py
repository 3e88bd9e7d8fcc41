"""What lets a Lightning run survive being stopped (train_pl.py adds it to every run), with
utils/guards.py and utils/seed.py:

- every checkpoint carries each rank's Python, NumPy and torch RNG states, restored on
  resume right before the first batch, so the random stream continues where it stopped;
- SIGTERM, SIGUSR1 and SIGINT save last.ckpt at the next step boundary, on every rank
  together, then stop the run; when a validation comes after that step (the epoch's end, or
  val_check_interval's), after it (the NaN policy is the adapter's: models/lightning.py).
"""
import signal

import pytorch_lightning as pl

import callbacks
import utils


class Interrupted(Exception):
    def __init__(self, signum):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def validates_next(trainer):
    """Whether Lightning validates after the batch that just ended: its own test, which its
    epoch loop asks next (mid-epoch, with val_check_interval)."""
    loop = trainer.fit_loop.epoch_loop
    return loop._should_check_val_fx(trainer.fit_loop._data_fetcher)


@callbacks.register('run_state')
class RunState(pl.Callback):
    def __init__(self, last_path=None, on_start=None):
        # on_start: what rank 0 does once every rank has joined the run (train_pl.py: rewrite a
        # resumed run's config.yaml, which the other ranks read until then)
        self.last_path, self.on_start, self.pending_rng = last_path, on_start, None
        self.pending, self.last_batch = 0, False  # a stop signal that waits for a validation
        self.signals = utils.StopSignals()

    def on_save_checkpoint(self, trainer, pl_module, checkpoint):
        checkpoint['rng'] = utils.all_rng_states()
        if 'hyper_parameters' in checkpoint:  # its weights are in here: no need of that run
            checkpoint['hyper_parameters'] = utils.without_init_from(checkpoint['hyper_parameters'])

    def on_load_checkpoint(self, trainer, pl_module, checkpoint):
        rngs = checkpoint.get('rng')
        self.pending_rng = rngs[trainer.global_rank] if rngs else None

    def on_sanity_check_start(self, trainer, pl_module):
        # Lightning's own handler has SIGTERM until now, and ends the run with status 0 at it
        self.signals.install()

    def on_train_start(self, trainer, pl_module):
        if self.pending_rng is not None:  # now: nothing else may draw before the first batch
            utils.set_rng_state(self.pending_rng)
            self.pending_rng = None
        self.signals.install()
        connector = trainer._signal_connector
        if connector.received_sigterm:  # before ours were installed: ours, at the first step
            connector.received_sigterm = False
            self.signals.signum = signal.SIGTERM
        if self.on_start and trainer.is_global_zero:
            self.on_start()

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self.step = trainer.global_step

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if trainer.global_step == self.step:  # within an accumulation: at the next step
            return
        # under DDP, agreed at the log steps only: an all-reduce a step stalls the queue
        signum = self.pending or self.signals.agreed(pl_module.device, trainer.global_step,
                                                     trainer.log_every_n_steps)
        if not signum:
            return
        # Lightning resumes a checkpoint of this batch as one whose validation (val_check_interval)
        # has run, and on an epoch's last batch as a finished epoch: when either comes after
        # this batch, the stop waits for it
        self.last_batch = batch_idx + 1 >= trainer.num_training_batches
        if self.last_batch or (not self.pending and validates_next(trainer)):
            self.pending = signum  # (a validation foreseen that did not come: the next step)
        else:
            # what Lightning does after this hook, which the stop skips: the step's logged
            # values go to the loggers (its train/loss, which a resume does not log again)
            trainer._logger_connector.on_batch_end()
            trainer._logger_connector.update_train_step_metrics()
            self.stop(trainer, signum)

    def on_validation_end(self, trainer, pl_module):
        if self.pending and not trainer.sanity_checking and not self.last_batch:
            self.stop(trainer, self.pending)  # mid-epoch: its validation is done

    def on_train_epoch_end(self, trainer, pl_module):
        if self.pending:  # after Checkpoints' save of the epoch (train_pl.py lists it first)
            raise Interrupted(self.pending)

    def stop(self, trainer, signum):
        if self.last_path:
            trainer.save_checkpoint(self.last_path, weights_only=False)
        raise Interrupted(signum)

    def on_train_end(self, trainer, pl_module):
        self.signals.restore()

    def on_exception(self, trainer, pl_module, exception):
        self.signals.restore()
