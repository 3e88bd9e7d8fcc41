import time
from pathlib import Path

import pytorch_lightning as pl
import torch

import callbacks
import utils


@callbacks.register('eta')
class ETALogger(pl.Callback):
    """After every epoch, on rank 0: one line with the epoch's metrics, the elapsed time and the
    estimated time left, printed and appended to the run's log.txt. `run_dir` is filled in by
    train_pl.py (None under --check: print only)."""

    def __init__(self, run_dir=None):
        self.log_path = Path(run_dir) / 'log.txt' if run_dir else None

    def on_train_start(self, trainer, pl_module):
        self.start, self.first_epoch = time.time(), trainer.current_epoch
        self.start_step, self.step_started, self.step_timed = trainer.global_step, None, False

    # The first step's time, once per run: time-to-first-step, and the step's own time
    # (torch.compile compiles then, cuDNN autotunes).
    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if self.step_started is None:
            self.step_started = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if self.step_timed or trainer.global_step == self.start_step:  # done, or accumulating
            return
        self.step_timed = True
        if pl_module.device.type == 'cuda':
            torch.cuda.synchronize(pl_module.device)  # the step's kernels have run
        if self.log_path and trainer.is_global_zero:
            with open(self.log_path, 'a') as f:
                f.write(utils.first_step_line(utils.process_age(),
                                              time.perf_counter() - self.step_started) + '\n')

    def on_train_epoch_end(self, trainer, pl_module):
        # Lightning runs the epoch's validation before this hook, so val/* are current.
        if not trainer.is_global_zero or trainer.sanity_checking:
            return
        metrics = {k: v.item() for k, v in trainer.callback_metrics.items() if v.numel() == 1}
        epoch = trainer.current_epoch + 1
        line = utils.eta_line(epoch, trainer.max_epochs, metrics, time.time() - self.start,
                              epoch - self.first_epoch)
        bar = trainer.progress_bar_callback
        if bar is not None:
            bar.print(line)  # through the bar, which keeps it intact
        else:
            print(line, flush=True)
        if self.log_path:
            with open(self.log_path, 'a') as f:
                f.write(line + '\n')
