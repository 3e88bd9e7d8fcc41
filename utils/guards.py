"""The guards of a training run, in plain PyTorch for both engines (train.py calls them,
callbacks/run_state.py and models/lightning.py wrap them for Lightning):

- stop signals: SIGTERM and SIGUSR1 (what SLURM and cloud schedulers send before a kill) and
  SIGINT (Ctrl-C) are only noted; the engine saves last.ckpt at the next step and exits;
- the NaN/Inf policy: a loss that is not finite stops the run before its backward pass
  (`trainer_params.nan_policy: stop`, the default; last.ckpt stays the last good state) or
  skips the batch (`skip`);
- agreement: under DDP every rank takes the same decision, or the ranks would deadlock.
"""
import signal
import sys
import threading

import torch
import torch.distributed as dist

from .errors import ConfigError, TrainingStopped

NAN_POLICIES = ('stop', 'skip')


def distributed():
    return dist.is_available() and dist.is_initialized()


def agreed(value, device):
    """The largest of `value` over all ranks (itself without DDP)."""
    if not distributed():
        return value
    flag = torch.tensor([float(value)], device=device)
    dist.all_reduce(flag, op=dist.ReduceOp.MAX)
    return flag.item()


def check_nan_policy(policy):
    if policy not in NAN_POLICIES:
        raise ConfigError(f"must be 'stop' or 'skip', but got {policy!r}",
                          key='trainer_params.nan_policy')
    return policy


def loss_is_usable(loss, policy, epoch, step, batch, last_path, master=True):
    """True when `loss` may be backpropagated. A NaN or Inf loss (on any rank) is skipped
    (False) under `policy: skip`, and stops the run under `stop`. `epoch` counts from 1,
    `step` is the optimizer steps done, `batch` the batch's index in its epoch."""
    if not agreed(not torch.isfinite(loss).all(), loss.device):
        return True
    if policy == 'skip':
        if master:
            print(f'warning: skipped batch {batch} of epoch {epoch}: the loss is {loss.item()}',
                  file=sys.stderr)
        return False
    raise TrainingStopped(f'the loss is {loss.item()} at epoch {epoch}, step {step}; the run '
                          f'stopped and {last_path or "last.ckpt"} is the last good checkpoint')


class StopSignals:
    """Notes SIGTERM, SIGUSR1 and SIGINT instead of dying of them; `signum` is the last one
    (0: none). Installed only in the main thread (a Ray Tune trial runs in another)."""
    SIGNALS = (signal.SIGTERM, signal.SIGUSR1, signal.SIGINT)

    def __init__(self):
        self.signum, self.previous = 0, {}

    def install(self):
        if threading.current_thread() is threading.main_thread():
            self.previous = {s: signal.signal(s, self.note) for s in self.SIGNALS}
        return self

    def note(self, signum, frame):
        self.signum = signum

    def agreed(self, device):
        """The signal any rank received (0: none), the same on every rank."""
        return int(agreed(self.signum, device))

    def restore(self):
        for s, handler in self.previous.items():
            signal.signal(s, handler)
        self.previous = {}


def stopped_message(signum, epoch, step, entry, run_dir):
    return (f'stopped by {signal.Signals(signum).name} at epoch {epoch}, step {step}; continue '
            f'with: python {entry} --resume {run_dir}')
