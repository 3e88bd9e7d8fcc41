"""What both engines print and append to log.txt as a run goes: the first step's time (once
per process: time-to-first-step, and the step's own time, where torch.compile compiles and
cuDNN autotunes) and one ETA line per epoch."""
import time

from .run import eta_line
from .speed import first_step_line, process_age


def steps_reached(step, max_steps):
    """True once `step` optimizer steps have met trainer_params.max_steps (-1 or None: never):
    where both engines end a run."""
    return max_steps not in (None, -1) and step >= max_steps


class Progress:
    """`log(line)` appends to log.txt (None under --check: nothing is written); `max_steps`
    (-1: none) and `first_step` (the optimizer steps done before this process) for the ETA."""

    def __init__(self, max_epochs, first_epoch, log=None, max_steps=-1, first_step=0):
        self.max_epochs, self.first_epoch, self.log = max_epochs, first_epoch, log
        self.max_steps, self.first_step = max_steps, first_step
        self.start = time.time()
        self.step_started, self.step_timed = None, False

    def batch_start(self):
        if self.step_started is None:
            self.step_started = time.perf_counter()

    def step_done(self, device):
        """After an optimizer step: the first one's line."""
        if self.step_timed:
            return
        self.step_timed = True
        if device.type == 'cuda':
            import torch
            torch.cuda.synchronize(device)  # the step's kernels have run
        if self.log:
            self.log(first_step_line(process_age(), time.perf_counter() - self.step_started))

    def epoch_line(self, epoch, metrics, step=0):
        """The line of epoch `epoch` (from 1) ending at optimizer step `step`, logged; the caller
        prints it."""
        steps_left = None if self.max_steps in (None, -1) else max(self.max_steps - step, 0)
        line = eta_line(epoch, self.max_epochs, metrics, time.time() - self.start,
                        epoch - self.first_epoch, step - self.first_step, steps_left)
        if self.log:
            self.log(line)
        return line

    def max_steps_line(self, epoch, batches_done=None):
        """The line of a run that max_steps ended in epoch `epoch` (from 1), after
        `batches_done` of its batches (None: at its end), logged; the caller prints it."""
        line = f'stopped: max_steps={self.max_steps} reached at epoch {epoch}, ' + \
            (f'batch {batches_done}' if batches_done else 'its end')
        if self.log:
            self.log(line)
        return line
