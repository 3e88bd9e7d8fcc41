import pytorch_lightning as pl

import callbacks
import utils


@callbacks.register('eta')
class ETALogger(pl.Callback):
    """utils/progress.py for Lightning: the first-step line, then one ETA line per epoch, on
    rank 0, printed and appended to the run's log.txt (`run_dir`: None under --check)."""

    def __init__(self, run_dir=None):
        self.run_dir = run_dir

    def on_train_start(self, trainer, pl_module):
        log = None
        if self.run_dir and trainer.is_global_zero:
            log = lambda line: utils.append_log(self.run_dir, line)  # noqa: E731
        self.progress = utils.Progress(trainer.max_epochs, trainer.current_epoch, log,
                                       trainer.max_steps, trainer.global_step)
        self.start_step = trainer.global_step

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self.progress.batch_start()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if trainer.global_step != self.start_step:  # an optimizer step, not an accumulation
            self.progress.step_done(pl_module.device)

    def on_train_epoch_end(self, trainer, pl_module):
        # Lightning runs the epoch's validation before this hook, so val/* are current.
        if not trainer.is_global_zero or trainer.sanity_checking:
            return
        if callbacks.cut_by_max_steps(trainer):
            line = self.progress.max_steps_line(trainer.current_epoch + 1,
                                                trainer.fit_loop.epoch_loop.batch_idx + 1)
        else:
            line = self.progress.epoch_line(trainer.current_epoch + 1, callbacks.logged(trainer),
                                            trainer.global_step)
            if utils.steps_reached(trainer.global_step, trainer.max_steps):  # at the epoch's end
                line += '\n' + self.progress.max_steps_line(trainer.current_epoch + 1)
        bar = trainer.progress_bar_callback
        if bar is not None:
            bar.print(line)  # through the bar, which keeps it intact
        else:
            print(line, flush=True)
